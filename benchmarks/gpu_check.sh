#!/usr/bin/env bash
# The GPU check: run as-is on a machine with an NVIDIA GPU, from any folder, in a copy of the repository
# with or without .git, with no network, in at most 8 minutes: every part runs under a deadline of
# $BUDGET seconds from the start (default 460; doubled with --allow-cpu), and the summary under 15 more.
# It prints and writes to $OUT (./gpu_check/ unless OUT is set):
#   environment.json  GPU, driver, torch, CUDA, native bf16, smp, dvclive there or not, .git there or not
#   gpu_check.log     everything below, with one "FAILED: <part>: ..." line for each part that failed
#   study_jobs1.json  benchmarks/study_timing.py on the `full` profile, one variant per arch + encoder
#                     (4 of the 8: scratch and ImageNet cost the same), one at a time, 2 epochs each
#   study_jobs4.json  the same with all 8 variants, 4 at a time
#   gpu_check.json    the summary: failed parts, img/s per variant alone and four at once, and the projected
#                     20-epoch study (8 variants x 3 seeds) one at a time and four at once
#
#   bash tools/gpu_wheels.sh                     # where pip can download: the wheels the machine lacks, into .whl/
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, with .whl/ carried along
#   bash benchmarks/gpu_check.sh --allow-cpu     # the rehearsal on a CPU (tools/gpu_rehearsal.sh): every part
#                                                # runs, GPU tests are skipped with their reason, tiny timing
#
# Python: $PYTHON or python3. Packages the machine lacks are installed from .whl/ into a folder put on
# PYTHONPATH, then tools/gpu_packages.py checks that everything the check imports is there.
set -uo pipefail
cd "$(dirname "$0")/.."
ALLOW_CPU=0
case "${1:-}" in
    --allow-cpu) ALLOW_CPU=1 ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--allow-cpu]" >&2; exit 2 ;;
esac
# a rehearsal shares two CPU cores with the test suite (tests/test_gpu_rehearsal.py): its limits are doubled
SCALE=$((ALLOW_CPU + 1))
OUT="${OUT:-gpu_check}"
BUDGET="${BUDGET:-$((460 * SCALE))}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 HSEG_ALLOW_CPU=$ALLOW_CPU
DEADLINE=$(($(date +%s) + BUDGET))
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
FAILED=()
log() { echo "== $*" | tee -a "$LOG"; }

# part NAME SECONDS COMMAND...: run COMMAND (and all it starts) for at most SECONDS, and never past the
# deadline; its output goes to the log
part() {
    local name=$1 limit=$2 start rc left
    shift 2
    limit=$((limit * SCALE))
    start=$(date +%s)
    left=$((DEADLINE - start - 5))  # 5 s for timeout's --kill-after
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        log "FAILED: $name: no time left in the check's ${BUDGET}s"
        FAILED+=("$name: no time left")
        return 124
    fi
    log "$name (at most ${limit}s)"
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$LOG"
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

if ls .whl/*.whl >/dev/null 2>&1; then
    SITE="${TMPDIR:-/tmp}/hseg-gpu-check-site"
    part "install .whl/" 40 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
# one clear line naming every package still missing, before anything imports them
part "packages" 30 "$PY" tools/gpu_packages.py check || exit 1

part "environment" 40 "$PY" - "$OUT/environment.json" <<'EOF' || exit 1
import json, os, subprocess, sys
from pathlib import Path
import torch
try:  # optional: without it training logs no per-epoch metrics. (The repository's dvclive/ folder of logs
    from dvclive import Live  # noqa: F401 - imports as an empty namespace package: ask for what tracking uses)
    dvclive = True
except ImportError:
    dvclive = False
import segmentation_models_pytorch as smp
from hseg.device import native_bf16, pick_device, resolve_precision
from hseg.versions import machine
if torch.cuda.is_available():
    dev = pick_device("cuda")
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        smi = []
    gpu = {"gpu": torch.cuda.get_device_name(dev), "gpus": torch.cuda.device_count(),
           "memory_gib": round(torch.cuda.get_device_properties(dev).total_memory / 2 ** 30, 1),
           "driver": smi[0] if smi else None, "cudnn": torch.backends.cudnn.version(),
           "capability": ".".join(map(str, torch.cuda.get_device_capability(dev)))}
elif os.environ.get("HSEG_ALLOW_CPU") == "1":
    dev, gpu = torch.device("cpu"), {"gpu": None, "note": "no CUDA GPU: a CPU rehearsal (--allow-cpu)"}
else:
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU (bash benchmarks/gpu_check.sh --allow-cpu rehearses on a CPU)")
env = {**gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "native_bf16": native_bf16(dev),
       "auto_precision": resolve_precision("auto", dev), "smp": smp.__version__, "dvclive": dvclive,
       "python": sys.version.split()[0], "git_checkout": Path(".git").exists(), "machine": machine()}
open(sys.argv[1], "w").write(json.dumps(env, indent=1))
print(json.dumps(env, indent=1))
EOF

part "GPU tests" 130 "$PY" -m pytest -v -rs -m gpu -p no:cacheprovider tests/test_gpu.py
tests_rc=$?

if [ "$ALLOW_CPU" = 1 ] && "$PY" -c "import torch, sys; sys.exit(torch.cuda.is_available())"; then
    # a tiny budget: the same code paths (profile merge, stage-like processes, projection) in seconds
    TIMING=(-S prepare.size=64 -S train.crop=32 -S train.batch_size=2 -S evaluate.batch_size=2
            --train-images 8 --dev-images 2 --val-images 2 --variants unet-resnet34-scratch unet-resnet34-imagenet)
    JOBS=2
else
    TIMING=()
    JOBS=4
fi
# the timing parts may use what the earlier parts left of the deadline (part() caps each at it); study_timing
# writes its JSON after each variant, so a part stopped at its limit still leaves what it measured
part "study timing, one at a time" 180 "$PY" benchmarks/study_timing.py --profile full --one-per-arithmetic \
    --jobs 1 --json "$OUT/study_jobs1.json" ${TIMING[@]+"${TIMING[@]}"}
part "study timing, $JOBS at a time" 200 "$PY" benchmarks/study_timing.py --profile full --jobs "$JOBS" \
    --json "$OUT/study_jobs4.json" ${TIMING[@]+"${TIMING[@]}"}

# the summary, also of what a part stopped at its limit left behind (study_timing writes after each variant)
timeout 15 "$PY" - "$OUT" "$tests_rc" ${FAILED[@]+"${FAILED[@]}"} <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
out, tests_rc, failed = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def read(name):
    return json.loads((out / name).read_text()) if (out / name).exists() else None
runs = {"one_at_a_time": read("study_jobs1.json"), "several_at_once": read("study_jobs4.json")}
summary = {"failed_parts": failed, "tests_exit": tests_rc, "environment": read("environment.json"),
           "img_per_s": {}, "projected_study_min": {}}
for key, run in runs.items():
    if not run:
        continue
    for v in run["variants"]:  # train images per second of a whole epoch after the first (validation, save)
        summary["img_per_s"].setdefault(v["variant"], {})[key] = v["epoch_img_s"]
    study, wall = run["study"], run["study"]["projected_wall_s"]  # None unless every variant finished
    summary["projected_study_min"][key] = {"jobs": study["jobs"], "runs": study["runs"],
                                           "minutes": wall / 60 if wall else None}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
env = summary["environment"] or {}
print(f"\nGPU {env.get('gpu')}, driver {env.get('driver')}, torch {env.get('torch')}, native bf16 "
      f"{env.get('native_bf16')}, .git {'there' if env.get('git_checkout') else 'absent'}, GPU tests exit {tests_rc}")
print(f"{'variant':32s} {'img/s alone':>12s} {'img/s at once':>14s}")
for variant, rates in summary["img_per_s"].items():
    cells = [f"{rates[k]:.0f}" if rates.get(k) else "-" for k in ("one_at_a_time", "several_at_once")]
    print(f"{variant:32s} {cells[0]:>12s} {cells[1]:>14s}")
for key, p in summary["projected_study_min"].items():
    print(f"projected study, {p['runs']} runs, {p['jobs']} at a time: "
          + (f"{p['minutes']:.1f} min" if p["minutes"] else "- (not every variant finished)"))
print("failed parts: " + ("; ".join(failed) if failed else "none"))
EOF
[ ${#FAILED[@]} -eq 0 ]
