"""The package versions that decide results (decoding, resizing, arithmetic); saved with outputs."""
import platform

import numpy
import PIL
import torch


def environment() -> dict:
    """python, torch, smp, numpy and pillow versions."""
    import segmentation_models_pytorch as smp  # imported here: prepare does not need it otherwise

    return {"python": platform.python_version(), "torch": torch.__version__, "smp": smp.__version__,
            "numpy": numpy.__version__, "pillow": PIL.__version__}
