"""The study: which variants (arch x encoder x init, names from segmentation-models-pytorch's own
registries) and which seeds; how a variant's name reads; which archs have decoder channels to scale.

Read by the plot stage (study.*), by the train and evaluate stages (a variant's name) and by
hseg/models.py (decoder channels), none of which needs the train recipe's checks.
"""
from __future__ import annotations

import inspect
from typing import Annotated

from pydantic import AfterValidator, PlainValidator
from pydantic_core import PydanticCustomError

from ..errors import UserError
from .base import NonNegativeInt, Settings, check, choice, listed, section

INITS = ("scratch", "imagenet")  # how a variant's encoder starts: random, or ImageNet-pretrained


def smp_archs() -> tuple[str, ...]:
    """Every architecture segmentation-models-pytorch provides (its own registry)."""
    import segmentation_models_pytorch as smp
    return tuple(smp.MODEL_ARCHITECTURES_MAPPING)


def smp_encoders() -> tuple[str, ...]:
    """Every encoder segmentation-models-pytorch provides (its own registry)."""
    import segmentation_models_pytorch as smp
    return tuple(smp.encoders.encoders)


def default_decoder_channels(arch: str):
    """smp's default ``decoder_channels`` for ``arch``: an int, a tuple (one per decoder block),
    or None where the architecture has no such argument (e.g. FPN, PSPNet)."""
    import segmentation_models_pytorch as smp
    param = inspect.signature(smp.MODEL_ARCHITECTURES_MAPPING[arch]).parameters.get("decoder_channels")
    default = None if param is None else param.default
    return default if isinstance(default, (int, tuple, list)) and not isinstance(default, bool) else None


def scalable_archs() -> list[str]:
    """The architectures whose decoder ``decoder_width`` can scale."""
    return [a for a in smp_archs() if default_decoder_channels(a) is not None]


def decoder_width_problem(width, arch: str) -> str | None:
    """Why ``width`` cannot apply to ``arch`` (it has no decoder channels to scale), or None."""
    if width != 1 and default_decoder_channels(arch) is None:
        return (f"{arch} has no decoder_channels to scale; set it to 1 for this variant "
                f"(variants.<variant>.decoder_width), or use one of {', '.join(scalable_archs())}")
    return None


def check_decoder_width(name: str, width, arch: str):
    """``width`` where ``arch`` has decoder channels to scale (any arch at width 1)."""
    problem = decoder_width_problem(width, arch)
    if problem:
        raise UserError(f"{name} = {width!r}: {problem}")
    return width


def _not_in_smp(allowed: tuple[str, ...]) -> str:
    shown = ", ".join(allowed) if len(allowed) <= 12 else ", ".join(allowed[:8]) + f", ... ({len(allowed)} in all)"
    return f"not provided by segmentation-models-pytorch; allowed values are {shown}"


def _registered(registry):
    """A name from one of smp's registries (read when checked: importing smp takes seconds)."""
    def validate(value):
        allowed = registry()
        if value not in allowed:
            raise PydanticCustomError("not_in_smp", _not_in_smp(allowed))
        return value
    return Annotated[str, PlainValidator(validate)]


Arch = _registered(smp_archs)
Encoder = _registered(smp_encoders)
Init = choice(*INITS)


def _distinct(values: list) -> list:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise PydanticCustomError("distinct", f"the seeds must be distinct; {', '.join(map(str, twice))} "
                                              f"appear(s) more than once")
    return values


class StudySettings(Settings):
    """``study``: the train matrix (every arch x encoder x init) and the seeds each variant trains with."""
    REFUSED = {"weights": "renamed to inits (scratch | imagenet: how each encoder starts)"}

    archs: listed(Arch, "must be a non-empty list, e.g. ['unet', 'deeplabv3plus']", non_empty=True)
    encoders: listed(Encoder, "must be a non-empty list, e.g. ['resnet34', 'resnet50']", non_empty=True)
    inits: listed(Init, "must be a non-empty list, e.g. ['scratch', 'imagenet']", non_empty=True)
    seeds: Annotated[listed(NonNegativeInt, "must be a non-empty list of distinct integers >= 0, e.g. [42, 43, 44]",
                            non_empty=True), AfterValidator(_distinct)]

    @property
    def variants(self) -> list[str]:
        """The variant names of the train matrix, as DVC names them (arch-encoder-init)."""
        return [f"{a}-{e}-{w}" for a in self.archs for e in self.encoders for w in self.inits]


def study_settings(params: dict) -> StudySettings:
    return check(section(params, "study"), StudySettings, "study")


def study_variants(params: dict) -> list[str]:
    """The variant names of the train matrix, as DVC names them (arch-encoder-init)."""
    return study_settings(params).variants


def parse_variant(name: str) -> tuple[str, str, str]:
    """<arch>-<encoder>-<init>; the encoder may itself contain '-' (e.g. timm-efficientnet-b0)."""
    parts = name.split("-")
    if len(parts) < 3:
        raise UserError(f"variant '{name}': expected <arch>-<encoder>-<init>, e.g. unet-resnet34-scratch")
    arch, encoder, init = parts[0], "-".join(parts[1:-1]), parts[-1]
    for part, value, kind in (("arch", arch, Arch), ("encoder", encoder, Encoder), ("init", init, Init)):
        check(value, kind, f"variant '{name}' {part}")
    return arch, encoder, init
