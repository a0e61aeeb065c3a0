"""Push this clone's DVC run cache and every file its runs produced, `cache: false` outputs included.

    python tools/push_run_cache.py [-r REMOTE]

`dvc push --run-cache` (DVC 3.67) sends the run-cache entries (.dvc/cache/runs) but only the files
of outputs that dvc.lock caches: the dvclive and metrics/runs JSON files (`cache: false` in dvc.yaml)
never reach the remote, so `dvc repro --pull` on another machine finds the entry, misses those files
and trains again. The run cache does keep a copy of them locally; this pushes those copies as DVC's
own restore pulls them (the cached stage's objects), through DVC's Python API. It relies on DVC's
stage-cache internals, checked against the dvc version requirements.txt pins by tests/test_scaling.py.
"""
from __future__ import annotations

import argparse
import sys


def push_run_cache(remote: str | None = None, jobs: int | None = None) -> dict[str, int]:
    """Push the run-cache entries, then the objects of each entry whose outputs are all in this
    clone's cache (entries pulled from the remote without their files are another clone's to push)."""
    from dvc.repo import Repo

    with Repo() as repo, repo.lock:
        entries = repo.stage_cache.push(remote)   # what `dvc push --run-cache` sends first: the runs/ files
        objects, complete, elsewhere = set(), 0, 0
        for key, value in entries:
            entry = repo.stage_cache._load_cache(key, value)
            if not entry:
                continue
            stage = repo.stage_cache._create_stage(entry)   # every output cached, as restore sees it
            if not stage.outs_cached():
                elsewhere += 1
                continue
            complete += 1
            for found in stage.get_used_objs().values():
                objects.update(found)
        result = repo.cloud.push(objects, jobs=jobs, remote=remote)
    return {"entries": len(entries), "complete": complete, "elsewhere": elsewhere,
            "objects": len(objects), "transferred": len(result.transferred), "failed": len(result.failed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--remote", help="DVC remote name (default: the repository's default remote)")
    parser.add_argument("-j", "--jobs", type=int, help="parallel transfers (DVC's default if not given)")
    args = parser.parse_args()
    counts = push_run_cache(args.remote, args.jobs)
    print(f"run cache: {counts['entries']} entries pushed; {counts['complete']} complete here, their "
          f"{counts['objects']} files checked on the remote, {counts['transferred']} uploaded, "
          f"{counts['failed']} failed; {counts['elsewhere']} entries with files only elsewhere")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
