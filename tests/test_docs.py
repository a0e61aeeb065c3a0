"""The documents against what they describe: the README's and results/hour-dev's tables are the report of
the committed metrics, and the README's override example works through DVC."""
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from hseg.report import END, START, mean_sd, report
from hseg.settings.base import load_params
from hseg.settings.train import train_config
from tests.conftest import committed_files, committed_text

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "unet-resnet34-scratch"


@pytest.mark.parametrize("readme, summary", [
    ("README.md", "metrics/summary.json"),
    ("results/cpu-study-2026-12-02/README.md", "results/cpu-study-2026-12-02/summary.json"),
    ("results/hour-dev/README.md", "results/hour-dev/summary.json"),
    ("results/hour-r18crop/README.md", "results/hour-r18crop/summary.json"),
])
def test_committed_tables_are_the_report_of_their_summary(readme, summary, tmp_path):
    """From git, not the workspace: an experiment (`python -m hseg exp quick`) rewrites metrics/."""
    (tmp_path / summary).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / summary).write_text(committed_text(summary))
    found = re.search(f"{re.escape(START)}\n(.*?)\n{re.escape(END)}", committed_text(readme), re.S)
    assert found, f"{readme} has no {START} ... {END} block"
    expected = report(tmp_path / summary, markdown=True)
    assert found.group(1).strip() == expected.strip(), (
        f"regenerate it: python -m hseg report --summary {summary} --update {readme}, then `git add` both")


@pytest.mark.parametrize("readme, metrics_dir", [
    ("results/hour-dev/README.md", "results/hour-dev/metrics"),
    ("results/hour-dev/README.md", "results/hour-dev/intel/metrics"),
    ("results/hour-r18crop/README.md", "results/hour-r18crop/metrics"),
])
def test_per_seed_rows_of_the_hour_model_are_its_runs_metrics(readme, metrics_dir):
    """The hour models' per-seed tables are copied from the runs' metrics: each run has its row."""
    text = (ROOT / readme).read_text()
    files = sorted((ROOT / metrics_dir).glob("*-s*.json"))
    assert files, f"no per-seed metrics in {metrics_dir}"
    for path in files:
        m = json.loads(path.read_text())
        seed = re.search(r"-s(\d+)\.json$", path.name).group(1)
        leaves = ", ".join(f"{v:.3f}" for v in list(m["iou2"].values())[1:])   # background first
        row = f"| {seed} | {m['miou0']:.4f} / {m['miou1']:.4f} / {m['miou2']:.4f} | {leaves} |"
        assert row in text, f"{path}: {readme} has no row {row}"


def test_the_readmes_hour_model_row_is_its_results_summary():
    """The README's hour-model table is results/hour-r18crop's summary.json: mean ± sd per level, per seed."""
    summary = json.loads(committed_text("results/hour-r18crop/summary.json"))
    (variant, s), = summary["variants"].items()
    assert len(set(s["epochs"])) == 1
    cells = [variant, str(s["epochs"][0])] + [mean_sd(s[f"miou{k}"]) for k in range(3)]
    cells.append(", ".join(f"{v:.3f}" for v in s["miou2"]["values"]))
    row = "| " + " | ".join(cells) + " | "
    assert row in committed_text("README.md"), f"README.md has no row starting {row}"


def apply_overrides(params: dict, command: str, folder: Path) -> dict:
    """params after DVC's own `-S` handling (Hydra's override grammar) of ``command``'s settings."""
    from dvc.utils.hydra import apply_overrides as dvc_apply_overrides
    words = shlex.split(command)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_apply_overrides(str(path), [setting for flag, setting in zip(words, words[1:]) if flag == "-S"])
    return load_params(path)   # as the stages read it


def test_readme_variant_override_example_works_through_dvc(params, tmp_path):
    example = re.search(r"`(dvc exp run -S '\+\+variants[^`]+)`", (ROOT / "README.md").read_text()).group(1)
    params = apply_overrides(params, example, tmp_path)
    cfg = train_config(params, VARIANT, 42)
    assert cfg.lr == 0.0005 and cfg.scheduler.warmup_epochs == 2
    assert cfg.scheduler.name == params["train"]["scheduler"]["name"]          # the other scheduler keys kept
    assert train_config(params, "unet-resnet50-scratch", 42).lr == params["train"]["lr"]


def test_ci_runs_the_readmes_test_line_and_the_install_command_appears_once():
    """CI's .ci/run calls the README's test command and nothing else, so a green CI means a newcomer's
    setup works; the install command stands in the README once, inside that line."""
    ci_line = committed_text(".ci/run").strip().splitlines()[-1]
    readme = committed_text("README.md")
    assert ci_line.startswith("python3 -m venv .venv") and "pytest" in ci_line
    assert readme.count(ci_line) == 1
    assert readme.count("pip install") == 1


def test_the_plan_calibration_table_is_its_accuracy_json_and_zen4_equals_zen5():
    """results/plan-zen4-2026-12-04: each row of the README's predicted-vs-measured table is accuracy.json's
    seconds in minutes, and its val metrics equal the Zen 5 seed-42 hour run's in every key but `machine`."""
    folder = "results/plan-zen4-2026-12-04"
    readme = committed_text(f"{folder}/README.md")
    for row in json.loads(committed_text(f"{folder}/accuracy.json"))["rows"]:
        predicted, measured = row["predicted_s"] / 60, row["measured_s"] / 60
        cells = f"| {predicted:.2f} | {measured:.2f} | {measured / predicted:.3f} |"
        assert cells in readme, (row["what"], cells)
    zen4 = json.loads(committed_text(f"{folder}/metrics/unet-resnet34-scratch-s42.json"))
    zen5 = json.loads(committed_text("results/hour-dev/metrics/unet-resnet34-scratch-s42.json"))
    assert "family 25" in zen4.pop("machine")["train"]["cpu"] and "family 26" in zen5.pop("machine")["train"]["cpu"]
    assert zen4 == zen5


def test_main_s_cpu_study_scores_as_its_2026_12_02_run():
    """Main re-ran the CPU study after a code change meant to change no arithmetic: each of its 12 runs
    scores what the same run scored on 2026-12-02, value for value (the CPU and the keys added or dropped
    since, epochs and consistency, aside)."""
    kept = "results/cpu-study-2026-12-02/metrics"
    names = sorted(p.name for p in (ROOT / kept).glob("*-s*.json"))
    runs = [path for name in names for path in committed_files("metrics/runs", name)]
    assert len(names) == len(runs) == 12, runs
    for path in runs:
        now, then = json.loads(committed_text(path)), json.loads(committed_text(f"{kept}/{Path(path).name}"))
        scores = [k for k in then if k.startswith(("miou", "iou", "tta"))]
        assert len(scores) >= 7 and {k: now[k] for k in scores} == {k: then[k] for k in scores}, path
