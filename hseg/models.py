"""A small factory of smp models, and ImageNet encoder weights from the local HF cache.

smp 0.6 downloads encoder weights from the Hugging Face hub
(``smp-hub/<encoder>.imagenet``: ``config.json`` and ``model.safetensors`` at a
pinned revision). We look them up in the local cache first so a pre-seeded
cache works with no network, and turn a failed download into one actionable
message instead of a traceback from inside the hub client.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file

from .atomic import save_torch
from .errors import UserError
from .hierarchy import num_outputs
from .settings.study import check_decoder_width, default_decoder_channels
from .tree import ClassTree
from .versions import environment, machine

HUB_FILES = ("config.json", "model.safetensors")


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def pretrained_source(encoder: str) -> tuple[str, str]:
    """(repo_id, revision) of the ImageNet weights smp uses for this encoder."""
    settings = smp.encoders.encoders[encoder]["pretrained_settings"]["imagenet"]
    return settings["repo_id"], settings["revision"]


def imagenet_weights_file(encoder: str) -> Path:
    """The cached ``model.safetensors`` for ``encoder``, downloading it if allowed and possible."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    repo_id, revision = pretrained_source(encoder)
    cache = hub_cache_dir()
    found = {f: try_to_load_from_cache(repo_id, f, cache_dir=cache, revision=revision) for f in HUB_FILES}
    missing = [f for f, p in found.items() if not isinstance(p, str)]
    if not missing:
        return Path(found["model.safetensors"])
    if not os.environ.get("HF_HUB_OFFLINE") and _hub_reachable():
        try:
            for f in HUB_FILES:
                found[f] = hf_hub_download(repo_id, f, revision=revision, cache_dir=cache, etag_timeout=5)
            return Path(found["model.safetensors"])
        except Exception:  # noqa: BLE001 - any hub failure means the same thing to the user
            pass
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision
    raise UserError(
        f"ImageNet weights for {encoder} are not in the Hugging Face cache and could not be downloaded; "
        f"missing {', '.join(str(snapshot / f) for f in missing)}. "
        f"On a machine with internet run `python -c \"from huggingface_hub import snapshot_download; "
        f"snapshot_download('{repo_id}', revision='{revision}')\"`, copy its "
        f"models--{repo_id.replace('/', '--')} folder into {cache} (or set HF_HUB_CACHE to a cache that has it), "
        f"or train this variant from scratch (init 'scratch', e.g. unet-resnet34-scratch).")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, so a machine without network fails in seconds
    instead of waiting out the hub client's retries."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def decoder_channels(arch: str, width: float) -> dict:
    """smp keyword arguments scaling ``arch``'s default decoder channels by ``width``
    ({} at width 1, so the default model is built exactly as smp builds it)."""
    if check_decoder_width("decoder_width", width, arch) == 1:
        return {}
    default = default_decoder_channels(arch)
    if isinstance(default, int):
        return {"decoder_channels": max(1, round(default * width))}
    return {"decoder_channels": tuple(max(1, round(c * width)) for c in default)}


def build_model(arch: str, encoder: str, init: str, num_classes: int, decoder_width: float = 1.0) -> torch.nn.Module:
    """An smp model; ``init='imagenet'`` loads the encoder from the local HF cache;
    ``decoder_width`` scales the decoder's channels (1 = smp's default)."""
    if arch not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise UserError(f"arch = {arch!r}: allowed values are {', '.join(smp.MODEL_ARCHITECTURES_MAPPING)}")
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=num_classes,
                             **decoder_channels(arch, decoder_width))
    if init == "imagenet":
        state = load_file(imagenet_weights_file(encoder), device="cpu")
        model.encoder.load_state_dict(state)
    return model


def save_weights(path: Path, net, cfg, tree: ClassTree, size: int, claim: dict | None = None) -> None:
    """The weights file the train stage writes: the state dict and the metadata that rebuilds the
    model (read back by load_weights). ``cfg``: the run's TrainConfig (not imported here: evaluate
    and predict load weights without the train settings). ``claim``: the GPU the run claimed
    (hseg/gpus.py), kept with the machine's facts; nothing is added where none was claimed."""
    meta = {"variant": cfg.variant, "arch": cfg.arch, "encoder": cfg.encoder, "init": cfg.init,
            "decoder_width": cfg.decoder_width, "num_classes": num_outputs(tree, cfg.head), "head": cfg.head,
            "size": size,
            "leaf_names": list(tree.leaf_names), "tree": tree.spec, "background": tree.background,
            "epochs": cfg.epochs, "precision": cfg.precision, "seed": cfg.seed, "versions": environment(),
            "machine": {**machine(), **(claim or {})}}
    # SyncBatchNorm keeps BatchNorm2d's parameter names, so these load into a plain model
    save_torch({"meta": meta, "state_dict": {k: v.cpu() for k, v in net.state_dict().items()}}, path)


def load_weights(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The model and metadata of a weights file written by save_weights."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: train this variant first (`dvc repro train@<variant>-<seed>`)")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    meta = _current_names(saved["meta"])
    model = build_model(meta["arch"], meta["encoder"], "scratch", meta["num_classes"], meta["decoder_width"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), meta


def load_weights_meta(path: str | Path) -> dict:
    """The metadata of a weights file written by save_weights, without reading its tensors (mmap)."""
    if not Path(path).is_file():
        raise UserError(f"{path} not found: train this run first (`dvc repro`)")
    return _current_names(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["meta"])


# Metadata keys of older weights files -> today's names, so files trained before a rename still load.
_RENAMED = {"mode": "head", "weights": "init"}


def _current_names(meta: dict) -> dict:
    meta = {_RENAMED.get(k, k): v for k, v in meta.items()}
    meta.setdefault("decoder_width", 1.0)  # files from before decoder_width: smp's default decoder
    return meta
