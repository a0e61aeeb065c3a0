"""``evaluate``: the evaluate stage's settings (also predict's and the benchmarks' test-time augmentation)."""
from __future__ import annotations

from .base import DEVICES, PRECISIONS, Bool, PositiveInt, Settings, Size, check, choice, listed, section

Sides = listed(Size, "must be a list of sides in pixels, e.g. [160, 192]; [] = off", as_tuple=True)


class EvaluateSettings(Settings):
    batch_size: PositiveInt
    precision: choice(*PRECISIONS)
    device: choice(*DEVICES)
    flip_tta: Bool                # average each prediction with that of the mirrored image
    tta_sides: Sides              # multi-scale test-time augmentation: extra input sides (multiples of 32)


def evaluate_settings(params: dict) -> EvaluateSettings:
    return check(section(params, "evaluate"), EvaluateSettings, "evaluate")


def tta_sides(name: str, value) -> tuple[int, ...]:
    """Extra input sides for multi-scale test-time augmentation: a list of multiples of 32."""
    return check(value, Sides, name)
