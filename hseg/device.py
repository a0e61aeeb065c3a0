"""The one place for device choice, precision and autocast, and the conversion of a uint8 batch
into what every model takes (ImageNet normalisation, channels_last): training, evaluation, predict
and the benchmarks all go through it."""
from __future__ import annotations

import contextlib
import functools

import torch

# the normalisation the ImageNet encoders were trained with; used for every variant
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD x 255 as (1,3,1,1) tensors on ``device``, made once per device: building them per
    batch costs a GPU two small blocking host-to-device copies. Read-only."""
    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255,
            torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float, ImageNet-normalised."""
    mean, std = _mean_std(images_uint8.device)
    return (images_uint8.float() - mean) / std


def wants_cuda(requested: str = "auto") -> bool:
    """Whether a device setting (auto | cpu | cuda) means a GPU on this machine."""
    return requested == "cuda" or (requested == "auto" and torch.cuda.is_available())


def pick_device(requested: str = "auto") -> torch.device:
    """The device to run on, a GPU with its index (``cuda:0``, not ``cuda``): tensors on a GPU always
    report one, and a device compared with theirs must name the same place the same way."""
    if wants_cuda(requested):
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return torch.device("cpu")


def host_to_device(source: torch.device, target: torch.device) -> bool:
    """Whether a tensor on ``source`` is copied from host memory to a GPU for ``target``: decided by
    device type, so a tensor already on ``cuda:0`` is never treated as a host tensor for ``cuda``."""
    return source.type == "cpu" and target.type == "cuda"


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; a host tensor goes to a GPU through pinned memory without blocking the
    host (the copy is ordered on the current stream before any kernel that reads it)."""
    if host_to_device(tensor.device, device):
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def native_bf16(device: torch.device) -> bool:
    """Whether the device does bf16 arithmetic in hardware (Ampere+ GPUs; AVX512-BF16 or AMX CPUs).

    Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return any(getattr(torch.cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported",
                                                                         "_is_amx_tile_supported"))


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device has native bf16; else 'fp16' on a GPU (pre-Ampere, trained
    with a gradient scaler) and 'fp32' on a CPU. An explicit bf16 / fp16 / fp32 is kept."""
    if precision == "auto":
        if native_bf16(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast (AVX512-BF16/AMX on CPU, tensor cores on GPU) or a no-op for fp32.

    On a GPU it also sets cuDNN's TF32 mode for the process: off for fp32, so that fp32 means fp32
    there as on a CPU (cuDNN's default runs float32 convolutions in TF32, a 10-bit mantissa), and
    the default (on) otherwise. Process-wide, because the backward pass runs outside this context."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(resolve_precision(precision, device))
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = dtype is not None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.to(device, memory_format=torch.channels_last)


def model_input(images: torch.Tensor) -> torch.Tensor:
    """A batch in 0..255 (uint8 or float) -> what every model takes: ImageNet-normalised float,
    channels_last. The one place this conversion is written."""
    return normalize(images).contiguous(memory_format=torch.channels_last)


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host or device uint8 batch -> model input on the device (host batches go through pinned memory)."""
    return model_input(upload(images, device))
