"""Device, precision and batched inference shared by training and evaluation."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .models import normalize


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether the device does bf16 arithmetic in hardware (Ampere+ GPUs; AVX512-BF16 or AMX CPUs).

    Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return any(getattr(torch.cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported",
                                                                         "_is_amx_tile_supported"))


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device has native bf16, else 'fp32'; 'bf16'/'fp32' as given."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """bf16 autocast (AVX512-BF16/AMX on CPU, tensor cores on GPU) or a no-op for fp32."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.to(device, memory_format=torch.channels_last)


def to_device(images_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 batch -> normalised float on the device, channels_last."""
    if device.type == "cuda":
        images_uint8 = images_uint8.pin_memory().to(device, non_blocking=True)
    return normalize(images_uint8).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(model, images_uint8: torch.Tensor, device, precision: str) -> torch.Tensor:
    """Float32 logits (N,C,S,S) for a uint8 batch at the cache size."""
    with autocast(device, precision):
        return model(to_device(images_uint8, device)).float()


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
