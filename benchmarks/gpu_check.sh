#!/usr/bin/env bash
# The GPU check: run as-is on a machine with an NVIDIA GPU, from the repository root, in under
# 8 minutes, with no network. It prints the environment, runs the GPU-marked tests and times the
# 8-variant study (random caches of the real data's shape; no dataset or ImageNet weights needed)
# with 1 and with 4 variants at once, and writes every figure to $OUT/gpu_check.json.
#
#   bash benchmarks/gpu_check.sh                 # figures in ./gpu_check/ unless OUT is set
#   EPOCHS=3 bash benchmarks/gpu_check.sh        # epochs per timed variant (default 2)
#
# Python: the active interpreter (a venv from requirements.txt, or the machine's own torch). If
# segmentation-models-pytorch is missing and wheels/ holds its wheel, it is installed from there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check}"
EPOCHS="${EPOCHS:-2}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/gpu_check.log"; }

if ! "$PY" -c "import segmentation_models_pytorch" 2>/dev/null && ls wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --find-links wheels segmentation-models-pytorch 2>&1 | tail -2
fi

log "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/gpu_check.log"
"$PY" - <<'EOF' 2>&1 | tee "$OUT/environment.json" | tee -a "$OUT/gpu_check.log"
import json, torch
import segmentation_models_pytorch as smp
from hseg.runtime import native_bf16, resolve_precision
from hseg.versions import environment
dev = torch.device("cuda")
print(json.dumps({**environment(), "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(),
                  "capability": ".".join(map(str, torch.cuda.get_device_capability())),
                  "native_bf16": native_bf16(dev), "auto_precision": resolve_precision("auto", dev),
                  "gpus": torch.cuda.device_count()}, indent=1))
EOF

log "GPU tests"
start=$(date +%s)
"$PY" -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -15 | tee -a "$OUT/gpu_check.log"
tests_rc=${PIPESTATUS[0]}
log "GPU tests: exit $tests_rc in $(( $(date +%s) - start ))s"

for jobs in 1 4; do
    log "study timing: 8 variants, $EPOCHS epoch(s), $jobs at a time"
    "$PY" benchmarks/study_timing.py --epochs "$EPOCHS" --jobs "$jobs" --json "$OUT/study_jobs$jobs.json" 2>&1 \
        | tail -12 | tee -a "$OUT/gpu_check.log"
done

"$PY" - "$OUT" "$EPOCHS" "$tests_rc" <<'EOF' | tee -a "$OUT/gpu_check.log"
import json, sys
from pathlib import Path
out, epochs, tests_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
runs = {j: json.loads((out / f"study_jobs{j}.json").read_text()) for j in (1, 4) if (out / f"study_jobs{j}.json").exists()}
summary = {"tests_exit": tests_rc, "epochs_timed": epochs, "runs": runs}
if 1 in runs:
    per_epoch = {v["variant"]: v["train_s"] / v["epochs"] for v in runs[1]["variants"]}
    summary["img_per_s"] = {v["variant"]: v["train_img_s"] for v in runs[1]["variants"]}
    summary["projected_20_epoch_study_s_one_at_a_time"] = sum(20 * s for s in per_epoch.values()) + sum(
        v["evaluate_s"] for v in runs[1]["variants"])
    if 4 in runs:
        summary["jobs4_gain"] = runs[1]["wall_s"] / runs[4]["wall_s"]
        summary["projected_20_epoch_study_s_four_at_a_time"] = summary["projected_20_epoch_study_s_one_at_a_time"] / summary["jobs4_gain"]
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
EOF
