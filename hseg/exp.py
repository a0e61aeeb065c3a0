"""Run a named profile as a DVC experiment: the committed params.yaml with profiles/<name>.yaml laid
over it, then your own -S overrides.

    python -m hseg exp quick                          # one seed of the CPU study (about an hour, 2 cores)
    python -m hseg exp hour -S 'study.seeds=[43]'     # the one-hour model with another seed
    python -m hseg exp full --queue -S 'train.lr=0.002,0.0005'   # queue a sweep; `dvc queue start` runs it
    python -m hseg exp original --dry-run             # print the dvc command only

The result does not depend on what an earlier experiment (or a hand edit) left in the workspace's
params.yaml: every key that differs from the profile's target is set back with -S (and keys that
the target lacks are removed), and the command that ran is printed. Plain `dvc repro` runs
params.yaml as it stands.
"""
from __future__ import annotations

import argparse
import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import UserError
from .settings.base import deep_merge, load_params, parse_params
from .settings.study import study_variants

PROFILES = Path("profiles")


def profile_names(folder: Path = PROFILES) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_profile(name: str, folder: Path = PROFILES) -> dict:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"profile {name!r}: no {path}; profiles are {', '.join(profile_names(folder)) or 'none'}")
    profile = yaml.safe_load(path.read_text()) or {}
    if not isinstance(profile, dict):
        raise UserError(f"{path}: expected a mapping of params.yaml keys")
    return profile


def committed_params(path: str = "params.yaml") -> dict:
    """params.yaml as committed at HEAD: the base every profile is laid over."""
    try:
        text = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UserError(f"cannot read the committed {path} (`git show HEAD:{path}`): {exc}; run from the "
                        f"repository root of a git checkout") from None
    return parse_params(text, f"HEAD:{path}")


def base_params(path: str = "params.yaml") -> tuple[dict, str]:
    """(params, where they came from): the committed params.yaml in a git checkout; in a copy without
    .git (a lent GPU machine gets one), the tree's file, which is what was committed there."""
    if Path(".git").exists():
        return committed_params(path), f"HEAD:{path}"
    return load_params(path), f"{path} (no .git here: the tree's file)"


def apply_settings(params: dict, settings: list[str]) -> dict:
    """A copy of ``params`` with `-S key=value` settings applied as `dvc exp run -S` applies them (the value
    is YAML; `++key=value` adds a key, `~key` removes one)."""
    out = copy.deepcopy(params)
    for setting in settings:
        remove = setting.startswith("~")
        key, sep, value = setting.lstrip("+~").partition("=")
        if not key or (not sep and not remove):
            raise UserError(f"-S {setting!r}: expected key=value (or ~key)")
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"-S {setting!r}: {part!r} is not a mapping in params.yaml")
        if remove:
            node.pop(last, None)
        else:
            node[last] = yaml.safe_load(value)
    return out


def profile_params(name: str | None, settings: list[str] = ()) -> tuple[dict, str]:
    """(params, source): what `python -m hseg exp NAME -S ...` runs: the committed params.yaml, the profile
    laid over it (none: params.yaml alone), then the settings."""
    base, source = base_params()
    target = base
    if name:
        profile = load_profile(name)
        check_keys(profile, base, f"profiles/{name}.yaml")
        target = deep_merge(base, profile)
    return apply_settings(target, list(settings)), source


def leaves(params: dict, prefix: str = "") -> dict[str, object]:
    """{'train.lr': 0.001, ...}: every leaf by its dotted key (lists and empty mappings are leaves)."""
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, name + "."))
        else:
            out[name] = value
    return out


def check_keys(profile: dict, base: dict, where: str) -> None:
    """A profile sets only keys params.yaml has: a typo would otherwise add a key nothing reads.
    (Values are checked with the settings themselves, by the stages, before any compute.)"""
    for key, value in profile.items():
        if key not in base:
            raise UserError(f"{where}: sets {key!r}, which params.yaml does not have here "
                            f"(it has {', '.join(map(str, base)) or 'nothing'})")
        if isinstance(value, dict) and isinstance(base[key], dict) and base[key]:
            check_keys(value, base[key], f"{where}.{key}")


def overrides_to(target: dict, current: dict) -> list[str]:
    """-S settings (Hydra's grammar, as `dvc exp run` takes them) that turn ``current`` into ``target``."""
    want, have = leaves(target), leaves(current)
    settings = [f"{'' if key in have else '++'}{key}={json.dumps(value)}"
                for key, value in want.items() if key not in have or have[key] != value]
    settings += [f"~{key}" for key in have if key not in want and not any(k.startswith(key + ".") for k in want)]
    return settings


def missing_variants(target: dict, user_settings: list[str]) -> list[str]:
    """`++variants.<variant>={}` for each variant the study will train that has no `variants` entry (a new
    encoder, e.g. -S 'study.encoders=[resnet18]'): dvc.yaml's train stage reads each variant's overrides as a
    param, and DVC stops on a missing one. Nothing for a sweep over the study (DVC expands those itself)."""
    try:
        params = apply_settings(target, user_settings)
        names = study_variants(params)
    except (UserError, ValueError, yaml.YAMLError):
        return []  # the stages report bad settings with their own messages
    have = params.get("variants") or {}
    return [f"++variants.{name}={{}}" for name in names if name not in have]


def experiment_command(name: str, user_settings: list[str], queue: bool, exp_name: str | None) -> list[str]:
    base = committed_params()
    profile = load_profile(name)
    check_keys(profile, base, f"profiles/{name}.yaml")
    target = deep_merge(base, profile)
    # a key the user sets is left to the user's setting: one value per key (a sweep's values included)
    user_keys = {setting.lstrip("+~").partition("=")[0] for setting in user_settings}
    settings = [s for s in overrides_to(target, load_params("params.yaml"))
                if s.lstrip("+~").partition("=")[0] not in user_keys]
    command = ["dvc", "exp", "run"] + (["-n", exp_name] if exp_name else []) + (["--queue"] if queue else [])
    for setting in settings + user_settings + missing_variants(target, user_settings):
        command += ["-S", setting]
    return command


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg exp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help=f"a profile under {PROFILES}/: {', '.join(profile_names()) or 'none found'}")
    parser.add_argument("-S", "--set-param", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override after the profile's, as `dvc exp run -S` takes it (repeatable)")
    parser.add_argument("--queue", action="store_true", help="queue the experiment(s) instead of running now")
    parser.add_argument("-n", "--name", help="the experiment's name (dvc exp run -n)")
    parser.add_argument("--dry-run", action="store_true", help="print the dvc command without running it")
    return parser


def run(args) -> int:
    command = experiment_command(args.profile, args.settings, args.queue, args.name)
    print(shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    return subprocess.run([sys.executable, "-m", *command]).returncode
