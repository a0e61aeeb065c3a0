"""The training loop, top to bottom: build the model, optimiser and loss, then epochs of steps on
batches of the uint8 cache (batch augmentation, autocast), validation, and the weights.

Each epoch writes the resume state (checkpoint.py), so an interrupted stage rerun continues from
the last epoch with identical results on CPU. Process placement and DDP: distributed.py; the
learning rate and progressive sides: schedule.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .augment import apply_augment, draw_augment, person_boxes
from .checkpoint import ResumeState, fingerprint, gather_rng_states
from .device import autocast, model_input, prepare_model, resolve_precision, upload
from .distributed import check_processes, seed_process, setup_process, sync_batchnorm
from .errors import UserError
from .hierarchy import class_argmax, leaf_scores, num_outputs
from .inference import predict_logits
from .losses import make_loss
from .metrics import confusion_matrix, hierarchical_scores
from .models import build_model, save_weights
from .schedule import LrFactor, epoch_side
from .settings.train import TrainConfig
from .tracking import EpochLog
from .tree import ClassTree


def check_batching(cfg: TrainConfig, world: int, n: int) -> int:
    """Steps per epoch. Every step is a full global batch (the shuffled remainder of fewer than
    batch_size images is dropped, a different one each epoch) split into processes x accumulate
    micro-batches of at least 2 images, since BatchNorm cannot train on one."""
    parts = world * cfg.accumulate
    if cfg.batch_size % parts or cfg.batch_size // parts < 2:
        raise UserError(f"train.batch_size = {cfg.batch_size} must split into {world} process(es) x "
                        f"{cfg.accumulate} micro-batch(es) (train.processes x train.accumulate) of at least "
                        f"2 images each: use a multiple of {2 * parts}")
    if cfg.batch_size > n:
        raise UserError(f"train.batch_size = {cfg.batch_size} is larger than the {n} training images")
    return n // cfg.batch_size


def make_optimizer(cfg: TrainConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam(W) with torch's fused kernel: the same update rule as the default per-parameter loop (up
    to float rounding), but optimizer.step() took 25-37 ms instead of 43-83 ms for the study's
    networks on 2 CPU cores: 1.01-1.08x per 96 px training step (benchmarks/optimizer.py)."""
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def validate(model, val_cache: dict, tree: ClassTree, loss_fn, head: str, device, precision: str,
             batch_size: int):
    """(val loss, {miou0, miou1, ...}) at the cache resolution. The confusion matrix is
    accumulated on the device; only the small matrix comes back."""
    model.eval()
    n_cls = tree.num_leaves
    cm = torch.zeros(n_cls, n_cls, dtype=torch.int64, device=device)
    loss_sum, n = torch.zeros((), device=device), len(val_cache["ids"])
    images, masks = val_cache["images"], val_cache["masks"]
    for lo in range(0, n, batch_size):
        outputs = predict_logits(model, images[lo:lo + batch_size], device, precision)
        target = masks[lo:lo + batch_size].to(device).long()
        loss_sum += loss_fn(outputs, target) * len(target)
        cm += confusion_matrix(target, class_argmax(leaf_scores(outputs, tree, head)), n_cls)
    scores = hierarchical_scores(cm.cpu().numpy(), tree)
    return loss_sum.item() / n, {k: v for k, v in scores.items() if k.startswith("miou")}


@dataclasses.dataclass
class Learner:
    """What a training step reads and updates. ``model`` is the module to train (DDP-wrapped
    and/or compiled); ``rank``/``world`` place this process in a DistributedDataParallel run."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: object
    gen: torch.Generator
    device: torch.device
    rank: int = 0
    world: int = 1
    ema: AveragedModel | None = None  # the weights' moving average (train.ema), updated after each step
    background: int = 0  # the background's class id: person views (train.augment.person_crop) frame the rest


def train_step(learner: Learner, images: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor,
               cfg: TrainConfig, side: int = 0) -> float:
    """One optimisation step on the global batch ``images[idx]`` (rendered at ``side`` px under
    progressive resizing; 0 = the full side); returns the global mean loss. A loss that is not
    finite on any process makes that mean non-finite on every process, and then none updates.

    The augmentation of the whole global batch is drawn on every process (the same random
    numbers everywhere), but each process reads and augments only its own rows. With
    ``cfg.accumulate`` = A, each process's rows are split further into A micro-batches whose
    gradients are summed; DDP all-reduces gradients once, on the last micro-batch. Each
    micro-batch is normalised by BatchNorm and scored by the loss on its own (Dice, for one, is
    aggregated per micro-batch), so with gloo on CPU N processes x A micro-batches compute the
    same update as 1 process x N*A micro-batches, up to float rounding, for a network without
    dropout (UNet): the same micro-batches, their gradients averaged alike. Not equal: DeepLabV3+'s
    dropout, drawn per process from its own seed (seed_process), and on CUDA, where SyncBatchNorm
    normalises each of the N processes' micro-batches over all N of them together."""
    model, optimizer, scaler, device, rank, world = (learner.model, learner.optimizer, learner.scaler,
                                                     learner.device, learner.rank, learner.world)
    boxes = person_boxes(masks[idx.to(masks.device)], learner.background) if cfg.augment.person_crop else None
    draws = draw_augment(len(idx), cfg.augment, learner.gen, cfg.crop, images.shape[-1], side, boxes)
    # the step's indices and random numbers go to the device once (pinned, non-blocking), not per micro-batch
    draws = {k: upload(v, device) if isinstance(v, torch.Tensor) else v for k, v in draws.items()}
    idx = upload(idx, device)
    stride = world * cfg.accumulate
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    for j in range(cfg.accumulate):
        rows = torch.arange(rank + j * world, len(idx), stride, device=device)
        pick = idx[rows].to(images.device)
        x = images[pick].to(device, non_blocking=True)
        y = masks[pick].to(device, non_blocking=True)
        x, y = apply_augment(x, y, draws, rows)
        x = model_input(x)
        sync = model.no_sync() if dist.is_initialized() and j < cfg.accumulate - 1 else contextlib.nullcontext()
        with sync:
            with autocast(device, cfg.precision):
                loss = learner.loss_fn(model(x), y) / cfg.accumulate
            scaler.scale(loss).backward()
        total += loss.detach()
    if dist.is_initialized():
        # every process reaches this all-reduce, also after a non-finite loss (an early return on one
        # process would leave the others waiting here); a NaN or inf anywhere makes the sum non-finite
        dist.all_reduce(total)
        total /= world
    loss = total.item()  # the step's one read from the device: the finiteness check every process shares
    if math.isfinite(loss):
        scaler.step(optimizer)
        scaler.update()
        if learner.ema is not None:
            learner.ema.update_parameters(model)
    return loss


def train_epoch(learner: Learner, scheduler, images, masks, cfg: TrainConfig, steps: int, bar, epoch: int) -> dict:
    """One pass over a fresh shuffle of the training set; {"lr": the last step's rate, "train_loss"}."""
    learner.model.train()
    order = torch.randperm(len(images), generator=learner.gen)
    side = epoch_side(cfg, epoch)
    loss_sum = 0.0
    for step in range(steps):
        lr = learner.optimizer.param_groups[0]["lr"]  # the rate this step uses
        loss = train_step(learner, images, masks, order[step * cfg.batch_size:(step + 1) * cfg.batch_size], cfg, side)
        if not math.isfinite(loss):
            raise UserError(f"{cfg.variant}: loss became {loss} at epoch {epoch + 1}, batch {step + 1}; "
                            f"lower train.lr (now {cfg.lr}) or use precision fp32. No model was written.")
        scheduler.step()
        loss_sum += loss
        bar.update()
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss:.3f}", **({"px": side} if side else {}))
    return {"lr": lr, "train_loss": loss_sum / steps}


def build_training_model(cfg: TrainConfig, tree: ClassTree, device, world: int):
    """(the plain network, the module to train: DDP-wrapped and/or compiled). torch's global
    generators are seeded with train.seed first, so every process starts from the same weights."""
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.arch, cfg.encoder, cfg.init, num_outputs(tree, cfg.head), cfg.decoder_width)
    if cfg.zero_init_residual and cfg.init == "scratch":
        zero_init_residuals(net.encoder, cfg.encoder)
    net = prepare_model(net, device)
    model = net
    if sync_batchnorm(device, world):
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    if dist.is_initialized():
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile and device.type == "cuda" and not sync_batchnorm(device, world):
        # static shapes: progressive resizing compiles one graph per side, instead of a dynamic-shape
        # recompile that would then also serve the full-size epochs. SyncBatchNorm graph-breaks: not compiled
        model = torch.compile(model, dynamic=False)
    return net, model


def zero_init_residuals(encoder: torch.nn.Module, name: str) -> None:
    """Zero the scale of each residual block's last BatchNorm (train.zero_init_residual), so every block
    starts as the identity: torchvision's ``zero_init_residual``, for smp's ResNet encoders."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    blocks = [m for m in encoder.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    if not blocks:
        raise UserError(f"train.zero_init_residual: the {name} encoder has no ResNet blocks (BasicBlock or "
                        f"Bottleneck); set it to false for this encoder")
    for block in blocks:
        torch.nn.init.zeros_(block.bn3.weight if isinstance(block, Bottleneck) else block.bn2.weight)


def make_ema(cfg: TrainConfig, net: torch.nn.Module) -> AveragedModel | None:
    """torch's AveragedModel holding an exponential moving average (decay ``train.ema`` per step) of
    the parameters and of the BatchNorm statistics (use_buffers, as torchvision's reference recipe
    does), so the averaged model validates as it is; None when train.ema is 0. Its first update
    copies the weights."""
    if not cfg.ema:
        return None
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)


def to_training_device(cache: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The cache's images and masks where training reads them: moved to a GPU once
    (a 256 px cache of both splits is under 1 GB), left in (mmapped) memory on CPU."""
    return cache["images"].to(device), cache["masks"].to(device)


def train_variant(cfg: TrainConfig, tree: ClassTree, train_cache: dict, val_cache: dict, *,
                  weights_out: Path, live_dir: Path, resume_path: Path, progress: bool = True,
                  val_name: str = "val") -> dict:
    """Train one variant; write its weights and log each epoch with dvclive to ``live_dir``.
    Returns the last epoch's row.

    ``val_name`` names the split ``val_cache`` holds in what is printed (dev, or val without a dev
    split); dvclive logs it under ``val/`` either way. Under torchrun (WORLD_SIZE > 1) every process
    trains on its slice of each global batch with DistributedDataParallel; process 0 validates and writes."""
    check_processes(cfg)
    rank, world, device, claim = setup_process(cfg.device)
    try:
        return _train(cfg, tree, train_cache, val_cache, rank, world, device, claim, weights_out=weights_out,
                      live_dir=live_dir, resume_path=resume_path, progress=progress, val_name=val_name)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, tree: ClassTree, train_cache: dict, val_cache: dict, rank: int, world: int, device,
           claim: dict, *,
           weights_out: Path, live_dir: Path, resume_path: Path, progress: bool, val_name: str) -> dict:
    # a concrete precision, so the resume fingerprint and the weights' metadata say what was run
    cfg = cfg.model_copy(update={"precision": resolve_precision(cfg.precision, device)})
    n = len(train_cache["ids"])
    steps = check_batching(cfg, world, n)
    if cfg.crop > train_cache["size"]:
        raise UserError(f"train.crop = {cfg.crop} is larger than the cached images ({train_cache['size']} px, "
                        f"prepare.size): use a crop of at most {train_cache['size']}, or 0 for whole images")
    for _, side in cfg.progressive:  # sides below a crop are checked with the params
        if not cfg.crop and side >= train_cache["size"]:
            raise UserError(f"{cfg.variant}: train.progressive side {side} is not below the full training side, "
                            f"the cached {train_cache['size']} px images (prepare.size, as train.crop is 0): "
                            f"progressive sides must be smaller")
    net, model = build_training_model(cfg, tree, device, world)
    seed_process(cfg.seed, rank)
    optimizer = make_optimizer(cfg, net)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LrFactor(cfg, steps))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    loss_fn = make_loss(tree, cfg.head, cfg.loss_weights.model_dump(), cfg.class_weights,
                        train_cache.get("pixel_counts"), cfg.tree_loss.weight, cfg.tree_loss.gamma, cfg.level_weight)
    gen = torch.Generator().manual_seed(cfg.seed)
    ema = make_ema(cfg, net)
    resume = ResumeState(resume_path, fingerprint(cfg, train_cache))
    start_epoch, history = resume.restore(net, optimizer, scheduler, scaler, gen, rank, device, ema)
    learner = Learner(model, optimizer, scaler, loss_fn, gen, device, rank, world, ema,
                      tree.leaf_names.index(tree.background))
    kept = ema.module if ema is not None else net  # what is validated and written
    lead = rank == 0
    if lead and progress:
        print(f"{cfg.variant}: training on {device} with {world} process(es), precision {cfg.precision}"
              + (f" (claimed GPU {claim['gpu_claim']} of {claim['gpus_visible']})" if claim else ""))
    if lead and cfg.compile and sync_batchnorm(device, world):
        print(f"{cfg.variant}: train.compile is not applied with SyncBatchNorm ({world} GPU processes)")
    if lead and start_epoch:
        print(f"resuming {cfg.variant} after epoch {start_epoch} from {resume_path}")

    images, masks = to_training_device(train_cache, device)
    val = dict(val_cache, **dict(zip(("images", "masks"), to_training_device(val_cache, device)))) if lead else None
    log = EpochLog(live_dir, history) if lead else None
    bar = tqdm(total=cfg.epochs * steps, initial=start_epoch * steps, desc=cfg.variant, unit="batch",
               disable=not (progress and lead), dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        try:
            row = {"epoch": epoch + 1, **train_epoch(learner, scheduler, images, masks, cfg, steps, bar, epoch)}
        except UserError:
            bar.close()
            raise
        if lead and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
            val_loss, scores = validate(kept, val, tree, loss_fn, cfg.head, device, cfg.precision, cfg.batch_size)
            row.update(val_loss=val_loss, **{f"val_{k}": v for k, v in scores.items()})
            bar.write(f"{cfg.variant} epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, "
                      f"{val_name} loss {val_loss:.4f}, {val_name} mIoU "
                      + " / ".join(f"{v:.3f}" if v is not None else "-" for v in scores.values()))
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        rng_states = gather_rng_states(device, world)
        if lead:
            log.log(row)
            resume.save(epoch + 1, net, optimizer, scheduler, scaler, gen, history, rng_states, ema)
        if dist.is_initialized():
            dist.barrier()
    bar.close()
    if not lead:
        return {}
    save_weights(weights_out, kept, cfg, tree, train_cache["size"], claim)
    log.close()
    resume_path.unlink(missing_ok=True)
    return history[-1]
