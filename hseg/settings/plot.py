"""``plot``: the plot stage's settings."""
from __future__ import annotations

from .base import NonNegativeInt, PositiveInt, Settings, check, section


class PlotSettings(Settings):
    dpi: PositiveInt
    grid_images: NonNegativeInt   # val images in the prediction grid
    worst_cases: NonNegativeInt   # lowest-scoring val images per variant


def plot_settings(params: dict) -> PlotSettings:
    return check(section(params, "plot"), PlotSettings, "plot")
