"""Time a profile's training steps under runtime settings that change no arithmetic: a memory allocator
(jemalloc through LD_PRELOAD) and OpenMP thread placement, against the process as it starts by default.

    python benchmarks/runtime.py                                # the hour profile, every setting, 3 rounds
    python benchmarks/runtime.py --settings default jemalloc --rounds 5 --steps 4 --json runtime.json

Each setting trains in a process of its own (an allocator is chosen when a process starts): the profile's
first variant and seed on random tensors of its caches' shape, one untimed step and then ``--steps``
timed steps at each of its sides (the progressive sides and the full one), as `python -m hseg plan` times
them. Rounds alternate the settings, so machine drift hits all alike. Printed per setting: seconds per
step at each side, the epoch-weighted mean (each side counted by the profile's epochs there), its ratio
to ``default`` in the same run, and whether the weights after the steps are those of ``default``, bit
for bit (a runtime setting must not change the result). Run it alone: anything beside it skews the times.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
            "/usr/lib64/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
PLACEMENT = {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}


def jemalloc_path() -> str | None:
    return next((p for p in JEMALLOC if Path(p).is_file()), None)


def setting_env(name: str) -> dict:
    """The environment variables of a setting (added to this process's own)."""
    library = {"LD_PRELOAD": jemalloc_path()} if "jemalloc" in name else {}
    return {**library, **(PLACEMENT if "placement" in name else {})}


SETTINGS = ("default", "jemalloc", "placement", "jemalloc+placement")


def child(args) -> None:
    """In the setting's process: time the steps; print one JSON line."""
    import torch

    from hseg.device import pick_device, resolve_precision
    from hseg.exp import profile_params
    from hseg.settings.classes import class_tree
    from hseg.settings.data import prepare_settings
    from hseg.settings.study import study_settings, study_variants
    from hseg.settings.train import train_config
    from hseg.timing import LEAF_NAMES, timed_round_robin, training_rig

    params, _ = profile_params(args.profile, args.set)
    cfg = train_config(params, study_variants(params)[0], study_settings(params).seeds[0])
    cfg = cfg.model_copy(update={"init": "scratch", "precision": resolve_precision(cfg.precision, pick_device("cpu"))})
    size = prepare_settings(params).size
    rig = training_rig(cfg, class_tree(params, LEAF_NAMES), torch.device("cpu"), size, args.steps + 1,
                       torch.Generator().manual_seed(0))
    sides = [side for _, side in cfg.progressive] + [0]
    epochs = [n for n, _ in cfg.progressive] + [cfg.epochs - sum(n for n, _ in cfg.progressive)]
    step_s = timed_round_robin({side: rig.step_at(side) for side in sides}, args.steps)
    seconds = [step_s[side] for side in sides]
    net = rig.net
    digest = hashlib.sha1(b"".join(t.detach().float().contiguous().numpy().tobytes()
                                   for t in net.state_dict().values())).hexdigest()
    print(json.dumps({"sides": [side or size for side in sides], "epochs": epochs, "step_s": seconds,
                      "weights": digest, "threads": torch.get_num_threads()}))


def run_setting(name: str, args) -> dict:
    command = [sys.executable, __file__, "--child", "--profile", args.profile, "--steps", str(args.steps)]
    for setting in args.set:
        command += ["-S", setting]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **setting_env(name)}, capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"setting {name}: the timing process failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="hour", help="the profile whose recipe is timed (default hour)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting laid over the profile, as `python -m hseg exp -S` takes it (repeatable)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS,
                        help="runtime settings to compare; default is always timed first (the baseline)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, in turn (default 3)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side in each process (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    names = ["default"] + [s for s in args.settings if s != "default"]
    if any("jemalloc" in n for n in names) and not jemalloc_path():
        sys.exit(f"jemalloc is not installed (looked for {', '.join(JEMALLOC)}): e.g. `apt-get install "
                 f"libjemalloc2`, or leave it out with --settings default placement")
    runs = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            runs[name].append(run_setting(name, args))
            print(f"round {r + 1}/{args.rounds} {name}: {' '.join(f'{s:.3f}' for s in runs[name][-1]['step_s'])} "
                  f"s a step", flush=True)
    first = runs["default"][0]
    weights = [e / sum(first["epochs"]) for e in first["epochs"]]
    results = {}
    for name, rows in runs.items():
        per_side = [statistics.median(row["step_s"][k] for row in rows) for k in range(len(first["sides"]))]
        results[name] = {"env": setting_env(name), "step_s": per_side,
                         "weighted_step_s": sum(w * s for w, s in zip(weights, per_side)),
                         "same_weights": all(row["weights"] == first["weights"] for row in rows)}
    base = results["default"]["weighted_step_s"]
    print(f"\n{args.profile}: sides {first['sides']} px, epochs {first['epochs']}, {first['threads']} threads, "
          f"median of {args.rounds} processes x {args.steps} steps")
    for name, row in results.items():
        row["ratio"] = row["weighted_step_s"] / base
        print(f"  {name:20s} {row['weighted_step_s']:.3f} s a step (epoch-weighted), {row['ratio']:.3f}x default, "
              f"weights {'identical' if row['same_weights'] else 'DIFFERENT'}")
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "settings": args.set, "rounds": args.rounds,
                                         "steps": args.steps, "sides": first["sides"], "epochs": first["epochs"],
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
