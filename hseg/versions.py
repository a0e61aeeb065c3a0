"""The package versions and the machine that decide results (decoding, resizing, arithmetic); saved
with outputs. bf16 kernels differ between CPU types (AVX512-BF16 vs AMX), so the same run gives
slightly different numbers on each: every result records the CPU it ran on."""
import platform
from pathlib import Path

import numpy
import PIL
import torch


def environment() -> dict:
    """python, torch, smp, numpy and pillow versions."""
    import segmentation_models_pytorch as smp  # imported here: prepare does not need it otherwise

    return {"python": platform.python_version(), "torch": torch.__version__, "smp": smp.__version__,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


# the ISA flags that choose torch's CPU kernels for bf16 / fp32 convolutions and matrix products
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> dict:
    """{"cpu": model name, "isa": the ISA_FLAGS it has, "gpu": CUDA device name or None}."""
    fields = {}
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())          # the first core's
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:  # the model name alone can hide the generation (e.g. "AMD EPYC")
        cpu += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    flags = set(fields.get("flags", "").split())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "isa": [f for f in ISA_FLAGS if f in flags], "gpu": gpu}
