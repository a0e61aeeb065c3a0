#!/usr/bin/env bash
# One run of the study (one variant with one seed) on one machine: the whole work of one cluster job.
#
#   tools/run_one.sh INDEX      # INDEX: 0 to `python -m hseg runs --count` - 1 (`python -m hseg runs` lists them)
#
# Run it in a clone of the repository at the study's commit whose default DVC remote every job shares
# (docs/scaling.md). The run cache on that remote is the only coordination between jobs:
#  1. `dvc repro --pull train@<run> evaluate@<run>` pulls the run cache and any missing dependency (the
#     dataset), restores from the run cache every stage some job already ran with the same code, params
#     and inputs (prepare, or this run itself when its index is rerun) and runs the rest. prepare is
#     deterministic, so jobs that run it at the same time make the same bytes and one run-cache entry.
#  2. tools/push_run_cache.py pushes the run cache with every file it names (`dvc push --run-cache` alone
#     leaves out the `cache: false` metrics); also after a failure, so whatever finished is kept.
# A job killed mid-training: rerun its index. In the same workspace the train stage resumes from its last
# validated epoch (models/.resume/, hseg/train.py); in a fresh clone it starts that run over.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
index=${1:?usage: tools/run_one.sh INDEX}
python=${PYTHON:-python}

stages=$("$python" -m hseg runs --index "$index") || exit 2   # a bad index: the error names the valid range
echo "run $index:" $stages
# shellcheck disable=SC2086  # stage names have no spaces: one argument each
"$python" -m dvc repro --pull $stages
status=$?
"$python" tools/push_run_cache.py || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
