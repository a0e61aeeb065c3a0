#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh installs on a lent GPU machine, which has no
# network and only the packages in tools/gpu_machine_packages.txt (Python 3.12, its own torch). The list is
# computed, not typed: tools/gpu_packages.py walks the dependencies of what the check imports and keeps
# those the machine lacks (pydantic and its parts, segmentation-models-pytorch), at requirements.txt's
# versions. Every wheel is named exactly, without dependencies, so only these travel; they go to .whl/
# (git-ignored), which a device call carries (`carry: [".whl"]`).
#
#   bash tools/gpu_wheels.sh                        # then: bash benchmarks/gpu_check.sh on the GPU machine
#   PY_VERSION=3.11 WHEELS_DIR=/tmp/w bash tools/gpu_wheels.sh   # for another Python (the CPU rehearsal)
#
# Run it with the project's venv active (its installed metadata is what the walk reads).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
PY_VERSION="${PY_VERSION:-3.12}"
WHEELS_DIR="${WHEELS_DIR:-.whl}"
listed=$("$PY" tools/gpu_packages.py missing)
mapfile -t WHEELS <<<"$listed"
[ -n "$listed" ] || { echo "gpu_wheels: nothing to fetch"; exit 0; }
mkdir -p "$WHEELS_DIR"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
    "${platforms[@]}" -d "$WHEELS_DIR" "${WHEELS[@]}"
echo "gpu_wheels: ${WHEELS[*]} -> $WHEELS_DIR (Python $PY_VERSION)"
ls -1 "$WHEELS_DIR"
