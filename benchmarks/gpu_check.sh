#!/usr/bin/env bash
# The GPU check: run as-is on a machine with an NVIDIA GPU, from any folder, with no network, in
# under 8 minutes (each part has its own time limit; they add up to 8 minutes at most). It prints
# and writes to $OUT (./gpu_check/ unless OUT is set):
#   environment.json  GPU, driver, torch, CUDA, native bf16, smp, whether dvclive is there
#   gpu_check.log     everything below, with one "FAILED: <part>: ..." line for each part that failed
#   study_jobs1.json, study_jobs4.json   benchmarks/study_timing.py with 1 and with 4 variants at a
#                     time: the 8 study variants for $EPOCHS epochs on random caches of the real
#                     data's shape (no dataset or ImageNet weights needed), img/s per variant
#   gpu_check.json    the summary: which parts failed, img/s per variant one at a time and four at
#                     once, and the projected 20-epoch 8-variant study time both ways
#
#   bash tools/gpu_wheels.sh                     # where pip can download: the wheels into .whl/
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, with .whl/ carried along
#   EPOCHS=3 bash benchmarks/gpu_check.sh        # epochs per timed variant (default 2; at least 2)
#
# Python: $PYTHON or python3 with torch (a venv from requirements.txt, or the machine's own). If
# segmentation-models-pytorch is missing, it is installed from .whl/ into a folder on PYTHONPATH.
# dvclive is optional (without it training logs no per-epoch metrics).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check}"
EPOCHS="${EPOCHS:-2}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
FAILED=()
log() { echo "== $*" | tee -a "$LOG"; }

# part NAME SECONDS COMMAND...: run COMMAND (and all it starts) for at most SECONDS, output to the log
part() {
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    log "$name (at most ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        log "FAILED: $name: stopped at its ${limit}s limit"
        FAILED+=("$name: timed out")
    elif [ "$rc" -ne 0 ]; then
        log "FAILED: $name: exit $rc after $(($(date +%s) - start))s"
        FAILED+=("$name: exit $rc")
    else
        log "$name: done in $(($(date +%s) - start))s"
    fi
    return "$rc"
}

if ! "$PY" -c "import segmentation_models_pytorch" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        log "FAILED: install: segmentation-models-pytorch is not installed and .whl/ holds no wheels: run" \
            "bash tools/gpu_wheels.sh where pip can download, and bring .whl/ along"
        exit 1
    fi
    SITE="${TMPDIR:-/tmp}/hseg-gpu-check-site"
    part "install .whl/" 30 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl || exit 1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

part "environment" 45 "$PY" - "$OUT/environment.json" <<'EOF' || exit 1
import json, subprocess, sys
import torch
try:
    import dvclive  # optional: without it training logs no per-epoch metrics
    dvclive = True
except ImportError:
    dvclive = False
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU")
import segmentation_models_pytorch as smp
from hseg.inference import native_bf16, pick_device, resolve_precision
dev = pick_device("cuda")
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=20).stdout.split()
except (OSError, subprocess.TimeoutExpired):
    smi = []
env = {"gpu": torch.cuda.get_device_name(dev), "gpus": torch.cuda.device_count(),
       "memory_gib": round(torch.cuda.get_device_properties(dev).total_memory / 2 ** 30, 1),
       "driver": smi[0] if smi else None, "torch": torch.__version__, "cuda": torch.version.cuda,
       "cudnn": torch.backends.cudnn.version(), "capability": ".".join(map(str, torch.cuda.get_device_capability(dev))),
       "native_bf16": native_bf16(dev), "auto_precision": resolve_precision("auto", dev), "smp": smp.__version__,
       "dvclive": dvclive, "python": sys.version.split()[0]}
open(sys.argv[1], "w").write(json.dumps(env, indent=1))
print(json.dumps(env, indent=1))
EOF

part "GPU tests" 150 "$PY" -m pytest -v -rs -m gpu -p no:cacheprovider tests/test_gpu.py
tests_rc=$?

for jobs in 1 4; do
    limit=$([ "$jobs" -eq 1 ] && echo 165 || echo 90)
    part "study timing, $jobs at a time" "$limit" "$PY" benchmarks/study_timing.py --epochs "$EPOCHS" --jobs "$jobs" \
        --project-epochs 20 --json "$OUT/study_jobs$jobs.json"
done

# the summary, also of what a part stopped at its limit left behind (study_timing writes after each variant)
"$PY" - "$OUT" "$tests_rc" ${FAILED[@]+"${FAILED[@]}"} <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
out, tests_rc, failed = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def read(name):
    return json.loads((out / name).read_text()) if (out / name).exists() else None
runs = {jobs: read(f"study_jobs{jobs}.json") for jobs in (1, 4)}
summary = {"failed_parts": failed, "tests_exit": tests_rc, "environment": read("environment.json"),
           "img_per_s": {}, "projected_20_epoch_study_min": {}}
for jobs, key in ((1, "one_at_a_time"), (4, "four_at_once")):
    run = runs[jobs]
    if not run:
        continue
    for v in run["variants"]:  # train images per second of an epoch after the first (validation included)
        summary["img_per_s"].setdefault(v["variant"], {})[key] = v["epoch_img_s"]
    wall = run["projected_wall_s"]  # None unless every variant finished
    summary["projected_20_epoch_study_min"][key] = wall / 60 if wall else None
    summary["variants_timed"] = max(summary.get("variants_timed", 0), len(run["variants"]))
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
env = summary["environment"] or {}
print(f"\nGPU {env.get('gpu')}, driver {env.get('driver')}, torch {env.get('torch')}, native bf16 "
      f"{env.get('native_bf16')}, GPU tests exit {tests_rc}")
print(f"{'variant':32s} {'img/s alone':>12s} {'img/s 4 at once':>16s}")
for variant, rates in summary["img_per_s"].items():
    cells = [f"{rates[k]:.0f}" if rates.get(k) else "-" for k in ("one_at_a_time", "four_at_once")]
    print(f"{variant:32s} {cells[0]:>12s} {cells[1]:>16s}")
for key, minutes in summary["projected_20_epoch_study_min"].items():
    print(f"projected 20-epoch study of {summary['variants_timed']} variants, {key.replace('_', ' ')}: "
          + (f"{minutes:.1f} min" if minutes else "- (not every variant finished)"))
print("failed parts: " + ("; ".join(failed) if failed else "none"))
EOF
[ ${#FAILED[@]} -eq 0 ]
