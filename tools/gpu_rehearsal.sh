#!/usr/bin/env bash
# The GPU check's rehearsal on a CPU: lay out what a lent GPU machine gets, then run the check there.
#   - the committed tree (`git archive`; uncommitted changes to tracked files included), without .git;
#   - a virtual environment holding only the packages that machine has (tools/gpu_machine_packages.txt),
#     at requirements.txt's versions, linked from this project's venv (no download);
#   - the wheels tools/gpu_wheels.sh fetches for the packages it lacks (for this Python), in .whl/;
# then `bash benchmarks/gpu_check.sh --allow-cpu` in that copy, which installs the wheels as it does on
# the GPU machine. Fails if any part printed FAILED. tests/test_gpu_rehearsal.py runs it.
#
#   bash tools/gpu_rehearsal.sh [WORK_DIR]      # default: a new temporary folder, removed afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
if [ -n "${1:-}" ]; then WORK=$1; mkdir -p "$WORK"; else WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi
REV=$(git stash create)
echo "rehearsal: the tree of ${REV:-HEAD}$([ -n "$REV" ] && echo ' (HEAD with uncommitted changes)') in $WORK/tree"
mkdir -p "$WORK/tree"
git archive "${REV:-HEAD}" | tar -x -C "$WORK/tree"
"$PY" -c "import sys; sys.exit(sys.prefix == sys.base_prefix)" || { echo "run with the project's venv" >&2; exit 2; }
BASE=$("$PY" -c "import sys; print(sys.base_prefix)")/bin/python3
"$BASE" -m venv "$WORK/venv"
SITE=$("$WORK/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$PY" tools/gpu_packages.py lay-out "$SITE"
PY_VERSION=$("$PY" -c "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')") \
    WHEELS_DIR="$WORK/tree/.whl" PYTHON="$PY" bash tools/gpu_wheels.sh
cd "$WORK/tree"
rc=0
PYTHON="$WORK/venv/bin/python" OUT="$WORK/out" TMPDIR="$WORK" bash benchmarks/gpu_check.sh --allow-cpu || rc=$?
if grep -q "FAILED" "$WORK/out/gpu_check.log"; then
    echo "rehearsal FAILED: $(grep FAILED "$WORK/out/gpu_check.log" | tr '\n' ' ')" >&2
    exit 1
fi
[ "$rc" -eq 0 ] || { echo "rehearsal FAILED: the check exited $rc" >&2; exit 1; }
echo "rehearsal passed: every part of the GPU check ran in a copy without .git, with the GPU machine's packages"
