"""CUDA checks, run by benchmarks/gpu_check.sh on a GPU machine; skipped where there is no GPU.

Cheapest first: the slow ones (torchrun, torch.compile) come last, so a check cut short by its
time limit has still run the rest."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hseg.checkpoint import rng_state, set_rng_state
from hseg.device import pick_device, prepare_model
from hseg.distributed import check_processes
from hseg.errors import UserError
from hseg.evaluate import evaluate_model
from hseg.inference import predict_logits
from hseg.metrics import confusion_matrix
from hseg.models import build_model, load_weights
from hseg.settings.train import train_config
from hseg.tracking import read_history
from hseg.train import to_training_device, train_variant
from tests.synthetic import prepared_workdir

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ROOT = Path(__file__).resolve().parent.parent
VARIANT = "deeplabv3plus-resnet34-scratch"
RUN = f"{VARIANT}-s42"   # a run: the variant trained with seed 42
try:  # optional: without it training logs no per-epoch metrics; `import dvclive` alone would find the
    from dvclive import Live  # noqa: F401 - repository's dvclive/ folder of logs as a namespace package
    HAS_DVCLIVE = True
except ImportError:
    HAS_DVCLIVE = False


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu")
    prepared_workdir(work, n_train=32, n_val=8, size=64, epochs=2, batch_size=8, crop=32, device="cuda")
    return work


def caches(work):
    return [torch.load(work / "data" / "prepared" / f"{s}.pt", weights_only=True) for s in ("train", "val")]


def train(work, tree, out: str, variant: str = VARIANT, **overrides) -> dict:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"].update(overrides)
    train, val = caches(work)
    last = train_variant(train_config(params, variant, 42), tree, train, val, weights_out=work / out / "w.pt",
                         live_dir=work / out / "live", resume_path=work / out / "r.pt", progress=False)
    state = torch.load(work / out / "w.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    return last, state["meta"]


def test_a_batch_already_on_the_gpu_is_not_pinned_again(tree):
    """The first validation of every single-GPU run: a val cache on cuda:0 read for a device named
    cuda (no index) went through pin_memory(), a RuntimeError on a CUDA tensor."""
    assert pick_device("cuda").index is not None
    model = prepare_model(build_model("unet", "resnet18", "scratch", 7), pick_device("cuda")).eval()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, device="cuda:0")
    for device in (torch.device("cuda"), pick_device("cuda")):
        assert predict_logits(model, images, device, "bf16").is_cuda


def test_confusion_matrix_on_the_gpu_counts_as_on_the_cpu():
    target, pred = torch.randint(0, 7, (2, 375, 500)), torch.randint(0, 7, (2, 375, 500))
    expected = torch.bincount((target * 7 + pred).flatten(), minlength=49).reshape(7, 7)
    assert torch.equal(confusion_matrix(target.cuda(), pred.cuda().to(torch.uint8), 7).cpu(), expected)


def test_more_processes_than_gpus_is_refused(work):
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"].update(processes=torch.cuda.device_count() + 1)
    with pytest.raises(UserError, match=f"but this machine has {torch.cuda.device_count()} GPU"):
        check_processes(train_config(params, VARIANT, 42))


def test_rng_state_of_its_own_gpu_is_saved_and_restored():
    device = pick_device("cuda")
    state = rng_state(device)
    first = torch.rand(4, device=device)
    set_rng_state(state, device)
    assert torch.equal(torch.rand(4, device=device), first)


def test_caches_live_on_the_gpu_and_training_runs_there(work, tree):
    train_cache, _ = caches(work)
    images, masks = to_training_device(train_cache, torch.device("cuda"))
    assert images.is_cuda and masks.is_cuda
    last, _ = train(work, tree, "auto")
    assert 0.0 <= last["val_miou2"] <= 1.0


def test_gpu_evaluation_matches_cpu(work, tree):
    """fp32 on both: TF32 is off for fp32 on the GPU, so the two compute the same function."""
    if not (work / "auto" / "w.pt").exists():
        pytest.skip("needs the trained weights of test_caches_live_on_the_gpu_and_training_runs_there")
    _, val = caches(work)
    scores = {}
    for device in ("cpu", "cuda"):
        model, meta = load_weights(work / "auto" / "w.pt", device)
        scores[device], _ = evaluate_model(model, meta["head"], val, tree, pick_device(device), "fp32", 4,
                                           progress=False)
    assert torch.backends.cudnn.allow_tf32 is False
    for k in range(3):
        assert scores["cuda"][f"miou{k}"] == pytest.approx(scores["cpu"][f"miou{k}"], abs=2e-3)
        assert scores["cuda"][f"pixel_acc{k}"] == pytest.approx(scores["cpu"][f"pixel_acc{k}"], abs=2e-3)


def test_fp16_trains_with_the_gradient_scaler(work, tree):
    last, meta = train(work, tree, "fp16", precision="fp16")
    assert meta["precision"] == "fp16" and 0.0 <= last["val_miou2"] <= 1.0


def test_ddp_with_one_process_and_two_micro_batches_through_the_stage(work):
    """processes=1 under torchrun with train.accumulate 2: the process group, DDP wrapping, no_sync on
    the first micro-batch, the gathered RNG states and shutdown on CUDA."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"].update(accumulate=2)
    (work / "params_acc2.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
           "-m", "stages.train", VARIANT, "42", "--no-progress", "--params", "params_acc2.yaml"]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "models" / f"{RUN}.pt").is_file()
    if HAS_DVCLIVE:
        assert read_history(work / "dvclive" / RUN)["epoch"].tolist() == [1, 2]


def test_compile_trains_through_progressive_resizing(work, tree):
    """torch.compile with static shapes: one graph per side (32 px, then the whole 64 px images)."""
    last, _ = train(work, tree, "compiled", "unet-resnet18-scratch", compile=True, crop=0, progressive=[[1, 32]])
    assert last["epoch"] == 2 and 0.0 <= last["val_miou2"] <= 1.0
