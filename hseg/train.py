"""The epoch loop: batches from the uint8 cache, batch augmentation, bf16 autocast.

Each finished epoch writes a resume checkpoint, so an interrupted stage
rerun continues from the last finished epoch with identical results on CPU.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .atomic import atomic_path, write_text
from .augment import augment_batch
from .errors import UserError
from .hierarchy import leaf_scores, loss_fn, num_outputs
from .metrics import confusion_matrix, hierarchical_scores
from .models import build_model, normalize
from .params import TrainConfig
from .runtime import autocast, pick_device, predict_logits, prepare_model
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


def train_variant(cfg: TrainConfig, tree: ClassTree, train_cache: dict, val_cache: dict, *,
                  weights_out: Path, history_out: Path, resume_path: Path, progress: bool = True) -> dict:
    """Train one variant; write its weights and per-epoch history. Returns the last history row."""
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model = prepare_model(build_model(cfg.arch, cfg.encoder, cfg.weights, num_outputs(tree, cfg.loss)), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg.t0, eta_min=cfg.eta_min)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    start_epoch = 0
    fingerprint = _fingerprint(cfg, train_cache)

    if resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            history, start_epoch = state["history"], state["epoch"]
            print(f"resuming {cfg.variant} after epoch {start_epoch} from {resume_path}")

    images, masks = train_cache["images"], train_cache["masks"]
    n = len(images)
    steps = math.ceil(n / cfg.batch_size)
    bar = tqdm(total=cfg.epochs * steps, initial=start_epoch * steps, desc=cfg.variant, unit="batch",
               disable=not progress, dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = images[idx].to(device, non_blocking=True).float()
            y = masks[idx].to(device, non_blocking=True)
            x, y = augment_batch(x, y, cfg.augment, gen)
            x = normalize(x).contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.precision):
                loss = _loss(model(x), y, tree, cfg)
            if not torch.isfinite(loss):
                bar.close()
                raise UserError(f"{cfg.variant}: loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1}; "
                                f"lower train.lr (now {cfg.lr}) or use precision fp32. No model was written.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step(epoch + (step + 1) / steps)
            loss_sum += loss.item()
            bar.update()
            bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss.item():.3f}")
        val_loss, val = validate(model, val_cache, tree, cfg, device)
        history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / steps,
                        "val_loss": val_loss, **{f"val_{k}": v for k, v in val.items()},
                        "seconds": time.perf_counter() - t0})
        bar.write(f"{cfg.variant} epoch {epoch + 1}/{cfg.epochs}: train loss {loss_sum / steps:.4f}, "
                  f"val loss {val_loss:.4f}, val mIoU " + " / ".join(f"{v:.3f}" if v is not None else "-"
                                                                       for v in val.values()))
        write_text(history_out, _history_csv(history))
        with atomic_path(resume_path) as tmp:
            torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "history": history}, tmp)
    bar.close()

    meta = {"variant": cfg.variant, "arch": cfg.arch, "encoder": cfg.encoder, "weights": cfg.weights,
            "num_classes": num_outputs(tree, cfg.loss), "mode": cfg.loss, "size": train_cache["size"],
            "leaf_names": list(tree.leaf_names), "tree": tree.spec, "background": tree.background,
            "epochs": cfg.epochs}
    with atomic_path(weights_out) as tmp:
        torch.save({"meta": meta, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, tmp)
    write_text(history_out, _history_csv(history))
    resume_path.unlink(missing_ok=True)
    return history[-1]
