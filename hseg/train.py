"""The epoch loop: batches from the uint8 cache, batch augmentation, bf16 autocast.

Each finished epoch writes a resume checkpoint, so an interrupted stage
rerun continues from the last finished epoch with identical results on CPU.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .atomic import atomic_path, write_text
from .augment import augment_batch
from .errors import UserError
from .hierarchy import leaf_scores, loss_fn, num_outputs
from .metrics import confusion_matrix, hierarchical_scores
from .models import build_model, normalize
from .params import TrainConfig
from .runtime import autocast, pick_device, predict_logits, prepare_model, resolve_precision
from .tree import ClassTree

HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_miou0", "val_miou1", "val_miou2", "seconds")


def _fingerprint(cfg: TrainConfig, train_cache: dict) -> str:
    """Identifies a run, so a resume checkpoint from other params or data is not reused."""
    blob = json.dumps(dataclasses.asdict(cfg), sort_keys=True) + str(len(train_cache["ids"])) + str(train_cache["size"])
    return hashlib.sha1(blob.encode()).hexdigest()


def validate(model, val_cache: dict, tree: ClassTree, cfg: TrainConfig, device):
    """(val loss, {miou0, miou1, ...}) at the cache resolution."""
    model.eval()
    n_cls = tree.num_leaves
    cm = torch.zeros(n_cls, n_cls, dtype=torch.int64)
    loss_sum, n = 0.0, len(val_cache["ids"])
    for lo in range(0, n, cfg.batch_size):
        outputs = predict_logits(model, val_cache["images"][lo:lo + cfg.batch_size], device, cfg.precision).cpu()
        target = val_cache["masks"][lo:lo + cfg.batch_size].long()
        loss_sum += _loss(outputs, target, tree, cfg).item() * len(target)
        cm += confusion_matrix(target, leaf_scores(outputs, tree, cfg.loss).argmax(1), n_cls)
    scores = hierarchical_scores(cm.numpy(), tree)
    return loss_sum / n, {k: v for k, v in scores.items() if k.startswith("miou")}


def _loss(outputs, target, tree: ClassTree, cfg: TrainConfig):
    return loss_fn(outputs, target, tree, cfg.loss, cfg.tree_weight, cfg.tree_gamma)


def _history_csv(rows: list[dict]) -> str:
    lines = [",".join(HISTORY_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else (f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]))
                              for c in HISTORY_COLUMNS))
    return "\n".join(lines) + "\n"


def train_step(model, optimizer, images: torch.Tensor, masks: torch.Tensor, tree: ClassTree, cfg: TrainConfig,
               gen: torch.Generator, device, rank: int = 0, world: int = 1) -> float:
    """One optimisation step on a uint8 global batch; returns the global mean loss.

    The whole global batch is augmented on every process (the same random draws
    everywhere) and each process keeps its slice, so N processes compute the
    same update as one process with the same global batch. With
    ``cfg.accumulate`` = A, each slice is further split into A micro-batches
    whose gradients are summed: 1 process x A micro-batches sees exactly the
    BatchNorm batches that A processes see."""
    x = images.to(device, non_blocking=True).float()
    y = masks.to(device, non_blocking=True)
    x, y = augment_batch(x, y, cfg.augment, gen)
    stride = world * cfg.accumulate
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    for j in range(cfg.accumulate):
        xs = normalize(x[rank + j * world::stride]).contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg.precision):
            loss = _loss(model(xs), y[rank + j * world::stride], tree, cfg) / cfg.accumulate
        if not torch.isfinite(loss):
            return float("nan") if torch.isnan(loss) else loss.item()  # stop before any update
        loss.backward()
        total += loss.detach()
    if world > 1:
        dist.all_reduce(total)
        total /= world
    if torch.isfinite(total):
        optimizer.step()
    return total.item()


def _distributed(device_request: str):
    """(rank, world size, device) from torchrun's environment; (0, 1, device) when not launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_request)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def train_variant(cfg: TrainConfig, tree: ClassTree, train_cache: dict, val_cache: dict, *,
                  weights_out: Path, history_out: Path, resume_path: Path, progress: bool = True) -> dict:
    """Train one variant; write its weights and per-epoch history. Returns the last history row.

    Under torchrun (WORLD_SIZE > 1) every process trains on its slice of each
    global batch with DistributedDataParallel; process 0 validates and writes."""
    rank, world, device = _distributed(cfg.device)
    # a concrete precision, so the resume fingerprint and the weights' metadata say what was run
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, device))
    if cfg.batch_size % (world * cfg.accumulate):
        raise UserError(f"train.batch_size = {cfg.batch_size} must divide evenly into {world} process(es) "
                        f"x {cfg.accumulate} micro-batch(es) (train.processes x train.accumulate)")
    torch.manual_seed(cfg.seed)
    net = prepare_model(build_model(cfg.arch, cfg.encoder, cfg.weights, num_outputs(tree, cfg.loss)), device)
    if world > 1:
        if device.type == "cuda":  # batch statistics over the global batch, as in one process (GPU-only in torch)
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        model = net
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg.t0, eta_min=cfg.eta_min)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    start_epoch = 0
    fingerprint = _fingerprint(cfg, train_cache)
    lead = rank == 0
    if lead and progress:
        print(f"{cfg.variant}: training on {device} with {world} process(es), precision {cfg.precision}")

    if resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") == fingerprint:
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            history, start_epoch = state["history"], state["epoch"]
            if lead:
                print(f"resuming {cfg.variant} after epoch {start_epoch} from {resume_path}")

    images, masks = train_cache["images"], train_cache["masks"]
    if device.type == "cuda":
        images, masks = images.pin_memory(), masks.pin_memory()
    n = len(images)
    steps = math.ceil(n / cfg.batch_size)
    bar = tqdm(total=cfg.epochs * steps, initial=start_epoch * steps, desc=cfg.variant, unit="batch",
               disable=not (progress and lead), dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            loss = train_step(model, optimizer, images[idx], masks[idx], tree, cfg, gen, device, rank, world)
            if not math.isfinite(loss):
                bar.close()
                raise UserError(f"{cfg.variant}: loss became {loss} at epoch {epoch + 1}, batch {step + 1}; "
                                f"lower train.lr (now {cfg.lr}) or use precision fp32. No model was written.")
            last_lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            scheduler.step(epoch + (step + 1) / steps)
            loss_sum += loss
            bar.update()
            bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss:.3f}")
        if lead:
            val_loss, val = validate(net, val_cache, tree, cfg, device)
            history.append({"epoch": epoch + 1, "lr": last_lr,
                            "train_loss": loss_sum / steps, "val_loss": val_loss,
                            **{f"val_{k}": v for k, v in val.items()}, "seconds": time.perf_counter() - t0})
            bar.write(f"{cfg.variant} epoch {epoch + 1}/{cfg.epochs}: train loss {loss_sum / steps:.4f}, "
                      f"val loss {val_loss:.4f}, val mIoU " + " / ".join(f"{v:.3f}" if v is not None else "-"
                                                                           for v in val.values()))
            write_text(history_out, _history_csv(history))
            with atomic_path(resume_path) as tmp:
                torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "model": net.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "history": history},
                           tmp)
        if world > 1:
            dist.barrier()
    bar.close()
    if not lead:
        return {}

    meta = {"variant": cfg.variant, "arch": cfg.arch, "encoder": cfg.encoder, "weights": cfg.weights,
            "num_classes": num_outputs(tree, cfg.loss), "mode": cfg.loss, "size": train_cache["size"],
            "leaf_names": list(tree.leaf_names), "tree": tree.spec, "background": tree.background,
            "epochs": cfg.epochs, "precision": cfg.precision}
    # SyncBatchNorm keeps BatchNorm2d's parameter names, so these load into a plain model
    state_dict = {k: v.cpu() for k, v in net.state_dict().items()}
    with atomic_path(weights_out) as tmp:
        torch.save({"meta": meta, "state_dict": state_dict}, tmp)
    write_text(history_out, _history_csv(history))
    resume_path.unlink(missing_ok=True)
    return history[-1]

