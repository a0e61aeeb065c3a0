"""Which Python packages the GPU check needs that a lent GPU machine lacks, from one list of what that
machine has (tools/gpu_machine_packages.txt) and the pins in requirements.txt.

    python tools/gpu_packages.py missing          # name==version per line: the wheels to carry
    python tools/gpu_packages.py present          # requirements.txt's pins of the machine's own packages
    python tools/gpu_packages.py check            # here: exit 1 with one line naming what is not importable
    python tools/gpu_packages.py lay-out SITE     # link this venv's copies of the machine's packages into SITE

`missing` walks the dependencies of CHECK_ROOTS in this interpreter's installed metadata (a venv from
requirements.txt), stopping at the machine's own packages; `check` walks the same roots in the
interpreter it runs under (the GPU machine's, with the wheels on PYTHONPATH) and names each one not found.
"""
from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MACHINE_LIST = ROOT / "tools" / "gpu_machine_packages.txt"
REQUIREMENTS = ROOT / "requirements.txt"

# What benchmarks/gpu_check.sh imports: hseg (training, evaluation, settings), the GPU tests and the timing.
# dvc and dvclive are left out on purpose: no stage runs through DVC there, and without dvclive training
# logs no per-epoch metrics (hseg/tracking.py), which the check reports.
CHECK_ROOTS = ["torch", "segmentation-models-pytorch", "numpy", "pillow", "pyyaml", "pydantic", "tqdm", "pytest"]


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def machine_packages(path: Path = MACHINE_LIST) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {normalise(line) for line in lines if line}


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """{normalised name: 'Name==version'} for every `name==version` line of requirements.txt."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            found[normalise(line.split("==", 1)[0].split("[", 1)[0])] = line
    return found


def requirements_of(name: str) -> list[str]:
    """The distributions ``name`` needs here (its Requires-Dist whose markers hold without extras)."""
    from packaging.requirements import Requirement
    needed = []
    for text in metadata.requires(name) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needed.append(normalise(req.name))
    return needed


def closure(roots: list[str], present: set[str]) -> tuple[list[str], list[str]]:
    """(needed, not_installed): every distribution reachable from ``roots`` that is not in ``present``,
    walking installed metadata; the ones this interpreter cannot find are listed apart."""
    needed, not_installed, todo, seen = [], [], [normalise(r) for r in roots], set()
    while todo:
        name = todo.pop(0)
        if name in seen or name in present:
            continue
        seen.add(name)
        try:
            todo += requirements_of(name)
        except metadata.PackageNotFoundError:
            not_installed.append(name)
            continue
        needed.append(name)
    return needed, not_installed


def missing_wheels(present: set[str], pinned: dict[str, str]) -> list[str]:
    needed, not_installed = closure(CHECK_ROOTS, present)
    if not_installed:
        raise SystemExit(f"run this in the project's venv (pip install -r requirements.txt): "
                         f"not installed here: {', '.join(not_installed)}")
    unpinned = [name for name in needed if name not in pinned]
    if unpinned:
        raise SystemExit(f"{REQUIREMENTS.name} pins no version of {', '.join(unpinned)}")
    return sorted(pinned[name] for name in needed)


def lay_out(site: Path, present: set[str], pinned: dict[str, str]) -> list[str]:
    """Link into ``site`` (a fresh venv's site-packages) every file of the distributions installed here that
    the GPU machine has and requirements.txt pins, and of what they need at these versions (the machine's own
    versions bring their own needs), so that venv holds those and nothing else: what the CPU rehearsal
    (tools/gpu_rehearsal.sh) runs the check in. Returns the distributions linked."""
    wanted = set(closure(sorted(present & set(pinned)), set())[0])
    linked = []
    for dist in metadata.distributions():
        name = normalise(dist.metadata["Name"])
        if name not in wanted or name not in pinned:   # unpinned: pip and setuptools, the venv's own
            continue
        if pinned[name].split("==", 1)[1] != dist.version:
            raise SystemExit(f"{name} {dist.version} is installed here, requirements.txt pins {pinned[name]}")
        for file in dist.files or []:
            if file.parts[0] == ".." or file.suffix == ".pyc":   # scripts in bin/, bytecode
                continue
            target = site / file
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(Path(dist.locate_file(file)).resolve())
        linked.append(name)
    return sorted(linked)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["missing", "present", "check", "lay-out"])
    parser.add_argument("site", nargs="?", type=Path, help="lay-out: the site-packages folder to fill")
    args = parser.parse_args(argv)
    present = machine_packages()
    if args.what == "missing":
        print("\n".join(missing_wheels(present, pins())))
    elif args.what == "lay-out":
        if args.site is None:
            parser.error("lay-out needs the SITE folder")
        linked = lay_out(args.site, present, pins())
        print(f"linked {len(linked)} distributions into {args.site}")
    elif args.what == "present":
        print("\n".join(line for name, line in sorted(pins().items()) if name in present))
    else:
        _, not_installed = closure(CHECK_ROOTS, set())
        if not_installed:
            print(f"missing Python packages: {', '.join(sorted(not_installed))}: run `bash tools/gpu_wheels.sh` "
                  f"where pip can download and carry .whl/ along", file=sys.stderr)
            return 1
        print(f"every package the check imports is installed ({len(CHECK_ROOTS)} roots and what they need)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
