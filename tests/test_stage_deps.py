"""Every stage in dvc.yaml depends on exactly the project code its command runs.

The imports are read from the code itself (ast, transitively over project modules),
so adding an import to a library module fails this test until dvc.yaml lists it."""
import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"prepare": "stages/prepare.py", "train": "stages/train.py", "evaluate": "stages/evaluate.py",
          "summarize": "stages/summarize.py",
          "plot": "stages/plot.py"}


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(path: Path) -> set[Path]:
    """Project files imported by ``path`` (absolute and relative imports, also inside functions)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # a package import runs its __init__ too
            f = module_file(".".join(parts[:k]))
            if f:
                found.add(f)
    return found


def code_closure(script: str) -> set[str]:
    seen, todo = set(), [ROOT / script]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(imported_files(f))
    return {str(f.relative_to(ROOT)) for f in seen if f.stat().st_size}  # empty __init__ files run nothing


def declared_code(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if d.endswith(".py")}


def missing_and_extra(stages: dict) -> dict:
    out = {}
    for name, script in STAGES.items():
        needed, declared = code_closure(script), declared_code(stages[name])
        if needed != declared:
            out[name] = {"missing": sorted(needed - declared), "not run": sorted(declared - needed)}
    return out


@pytest.fixture
def stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_each_stage_depends_on_exactly_the_code_it_imports(stages):
    assert missing_and_extra(stages) == {}


def test_the_check_catches_a_missing_module(stages):
    stages["evaluate"]["deps"].remove("hseg/tree.py")
    stages["plot"]["deps"].append("hseg/train.py")
    problems = missing_and_extra(stages)
    assert problems["evaluate"]["missing"] == ["hseg/tree.py"]
    assert problems["plot"]["not run"] == ["hseg/train.py"]


def test_the_closure_follows_imports_inside_functions():
    # stages/train.py imports hseg.models inside main() for the ImageNet check
    assert "hseg/models.py" in code_closure("stages/train.py")
    assert "hseg/plots.py" not in code_closure("stages/train.py")  # editing plots retrains nothing


def test_stage_commands_run_the_scripts_checked_here(stages):
    for name, script in STAGES.items():
        module = re.search(r"python -m (\S+)", stages[name]["cmd"]).group(1)
        assert module.replace(".", "/") + ".py" == script


def test_each_stage_runs_only_its_own_settings_and_no_decoding_code_but_prepare():
    """Rerun boundaries are module boundaries: a stage's settings checks are its own module, and the
    caches are read through hseg/cache.py, so train, evaluate and plot do not run the decoding code."""
    closures = {name: code_closure(script) for name, script in STAGES.items()}
    own = {"prepare": "hseg/settings/data.py", "train": "hseg/settings/train.py",
           "evaluate": "hseg/settings/evaluate.py", "summarize": "hseg/settings/study.py",
           "plot": "hseg/settings/plot.py"}
    assert not {"hseg/cache.py", "hseg/dataset.py", "hseg/prepare.py"} & closures.pop("summarize")  # metrics only
    for name, closure in closures.items():
        assert {f for f in closure if f.startswith("hseg/settings/")} - {own[name]} <= {
            "hseg/settings/base.py", "hseg/settings/classes.py", "hseg/settings/study.py"}, name
        assert own[name] in closure and "hseg/cache.py" in closure
        if name != "prepare":
            assert not {"hseg/dataset.py", "hseg/prepare.py"} & closure, name
    assert "hseg/settings/study.py" not in closures["prepare"]
    assert not (ROOT / "hseg" / "settings" / "__init__.py").stat().st_size  # runs nothing, so tracked by no stage
