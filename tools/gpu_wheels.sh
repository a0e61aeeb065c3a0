#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh installs on a lent GPU machine, which has
# Python 3.12 with its own torch (2.11), torchvision, timm, safetensors, huggingface_hub, tqdm,
# pillow, numpy, pandas, pyyaml and pytest, but no network. The pipeline needs only
# segmentation-models-pytorch on top of those (dvclive is optional: without it training logs nothing
# per epoch, hseg/tracking.py). Every wheel is named exactly, without dependencies, so only these
# travel; they go to .whl/ (git-ignored), which a device call carries (`carry: [".whl"]`).
#
#   bash tools/gpu_wheels.sh          # then: bash benchmarks/gpu_check.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS=(
    segmentation-models-pytorch==0.6.0   # the version requirements.txt pins; pure Python (py3-none-any)
)
mkdir -p .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
