"""``train`` (the recipe every variant uses) and ``variants.<variant>`` (its overrides): the train
stage's settings, read into one :class:`TrainConfig` per variant and seed: the checked recipe itself, under
params.yaml's own names, plus the run it trains. Training reads it as it is (no copy under other names)."""
from __future__ import annotations

from typing import Annotated, NamedTuple

from pydantic import BeforeValidator, PlainValidator, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .base import (
    DEVICES,
    PRECISIONS,
    Bool,
    Namer,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Settings,
    Size,
    check,
    choice,
    deep_merge,
    is_int,
    is_number,
    render,
    rule,
    section,
    size_problem,
    under,
)
from .study import decoder_width_problem, parse_variant

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("warmup_cosine", "cosine_restarts")
HEADS = ("flat", "tree")  # one softmax over the leaves | one per level (the tree loss)
LOSS_TERMS = ("ce", "dice", "lovasz", "focal")
CLASS_WEIGHTS = ("none", "inverse_sqrt", "inverse")  # or a number: the power p in w_c ~ share_c^-p


# --- the recipe's sections -----------------------------------------------------------------------

class Scheduler(Settings):
    name: choice(*SCHEDULES)
    warmup_epochs: NonNegativeFloat
    T_0: PositiveInt               # cosine_restarts: epochs per cycle
    eta_min: NonNegativeFloat


class LossWeights(Settings):
    ce: NonNegativeFloat
    dice: NonNegativeFloat
    lovasz: NonNegativeFloat
    focal: NonNegativeFloat

    @model_validator(mode="after")
    def _one_term(self):
        if not any(self.model_dump().values()):
            raise PydanticCustomError("no_term", "at least one term needs a weight above 0")
        return self


class TreeLoss(Settings):
    weight: NonNegativeFloat       # the tree-min term's weight
    gamma: NonNegativeFloat        # its focal exponent


def _zoom(value) -> bool:
    return (isinstance(value, list) and len(value) == 2 and all(is_number(x) and x > 0 for x in value)
            and value[0] <= value[1])


class AugmentSettings(Settings):
    hflip: Bool
    scale: Annotated[tuple, rule(_zoom, "must be a zoom range [min, max] with 0 < min <= max, e.g. [0.5, 2.0]; "
                                        "[1, 1] turns zoom off", lambda v: (float(v[0]), float(v[1])))]
    shift: NonNegativeFloat
    rotate: NonNegativeFloat
    brightness: NonNegativeFloat
    contrast: NonNegativeFloat
    person_crop: Annotated[float, rule(lambda v: is_number(v) and 0 <= v <= 1,
                                       "must be a number from 0 (off) to 1: the share of training views "
                                       "taken around the people's box", float)]


class Stage(NamedTuple):
    """One progressive-resizing stage: its epochs at a smaller side."""
    epochs: PositiveInt
    side: Size


PROGRESSIVE_EXAMPLE = "e.g. [[8, 128], [6, 160]]: 8 epochs at 128 px, 6 at 160, the rest at the full side; [] = off"


def _pairs(value):
    if not isinstance(value, list) or not all(isinstance(v, list) and len(v) == 2 for v in value):
        raise PydanticCustomError("pairs", f"must be a list of [epochs, side] pairs, {PROGRESSIVE_EXAMPLE}")
    return value


def _crop(value):
    if not is_int(value) or value < 0:
        raise PydanticCustomError("crop", "must be 0 (train on the whole cached image) or a positive multiple of 32")
    if value and size_problem(value):
        raise PydanticCustomError("crop", size_problem(value))
    return value


def _namer(info: ValidationInfo) -> Namer:
    return (info.context or {}).get("name") or under("train")


class TrainRecipe(Settings):
    """``train`` (and, laid over it, ``variants.<variant>``). Fields in params.yaml's order: the
    checks that read other fields (progressive, level_weight) come after them."""
    REFUSED = {"seed": "not a train setting: seeds are the study axis (study.seeds), each variant trains "
                       "once per seed",
               "loss": "renamed to head (flat | tree: the model's outputs, which decide its loss)"}

    epochs: PositiveInt
    batch_size: PositiveInt
    crop: Annotated[int, PlainValidator(_crop)]  # 0 = whole cached images
    progressive: Annotated[tuple[Stage, ...], BeforeValidator(_pairs)]
    optimizer: choice(*OPTIMIZERS)
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    scheduler: Scheduler
    ema: Annotated[float, rule(lambda v: is_number(v) and 0 <= v < 1,
                               "must be a number from 0 (off) to below 1: the decay per step of the weights' "
                               "exponential moving average, e.g. 0.999", float)]
    head: choice(*HEADS)
    loss_weights: LossWeights
    level_weight: NonNegativeFloat
    class_weights: Annotated[str | float, rule(
        lambda v: (isinstance(v, str) and v in CLASS_WEIGHTS) or (is_number(v) and 0 <= v <= 2),
        f"allowed values are {', '.join(CLASS_WEIGHTS)}, or a number from 0 to 2 (the power p in "
        f"weight ~ pixel share^-p)", lambda v: v if isinstance(v, str) else float(v))]
    tree_loss: TreeLoss
    val_every: PositiveInt
    precision: choice(*PRECISIONS)
    device: choice(*DEVICES)
    processes: PositiveInt
    accumulate: PositiveInt
    compile: Bool
    decoder_width: PositiveFloat
    zero_init_residual: Bool
    augment: AugmentSettings

    @field_validator("progressive")
    @classmethod
    def _leaves_full_side_epochs(cls, stages: list, info: ValidationInfo):
        """At least the last epoch trains at the full side, and each stage's side is below it. (Sides
        against the cache size, when crop is 0, are checked once the cache is read.)"""
        name = _namer(info)
        epochs, crop = info.data.get("epochs"), info.data.get("crop")
        total = sum(s.epochs for s in stages)
        if epochs is not None and total >= epochs:
            raise PydanticCustomError(
                "progressive", f"its {total} epochs leave none of the {name(('epochs',))} = {epochs} epochs at the "
                               f"full training side; shorten the stages or raise {name(('epochs',))} "
                               f"({PROGRESSIVE_EXAMPLE})")
        for i, stage in enumerate(stages):
            if crop and stage.side >= crop:
                raise PydanticCustomError(
                    "progressive", f"not below the full training side, {name(('crop',))} = {crop}; progressive "
                                   f"sides must be smaller ({PROGRESSIVE_EXAMPLE})",
                    {"at": (i, 1), "value": stage.side})
        return stages

    @field_validator("level_weight")
    @classmethod
    def _flat_loss_only(cls, weight: float, info: ValidationInfo):
        if weight and info.data.get("head", "flat") != "flat":
            raise PydanticCustomError(
                "flat_only", f"applies to the flat head only; the tree head's loss already scores every level "
                             f"(set it to 0, or {_namer(info)(('head',))} to flat)")
        return weight

    @field_validator("decoder_width")
    @classmethod
    def _arch_has_decoder_channels(cls, width: float, info: ValidationInfo):
        arch = (info.context or {}).get("arch")
        problem = arch and decoder_width_problem(width, arch)
        if problem:
            raise PydanticCustomError("decoder_width", problem)
        return width


# A variant's overrides: a mapping of train keys (an empty entry, `name:`, overrides nothing).
Overrides = Annotated[dict, rule(lambda v: v is None or isinstance(v, dict),
                                 "must be a mapping of train keys to override (empty: none)", lambda v: v or {})]


def _where(variant: str, overrides: dict) -> Namer:
    """Names a recipe key where the user set it: variants.<variant>.<key> if the override sets it, else train.<key>."""
    def name(path: tuple) -> str:
        node = overrides
        for key in path:
            if not isinstance(node, dict):
                break               # the override set this whole value (a list, a number)
            if key not in node:
                return "train" + render(path)
            node = node[key]
        return (f"variants.{variant}" if path else "train") + render(path)
    return name


class TrainConfig(TrainRecipe):
    """One run's training config: the checked recipe (``train`` with ``variants.<variant>`` laid over it)
    and the run it trains. Built by :func:`train_config` only, from an already checked recipe."""
    variant: str
    arch: str
    encoder: str
    init: str                # scratch | imagenet: how the encoder starts
    seed: int


def train_config(params: dict, variant: str, seed: int) -> TrainConfig:
    """The recipe for one variant and seed: ``train`` deep-merged with ``variants.<variant>``.
    A variant without an entry in ``variants`` has no overrides (any smp arch/encoder can be studied)."""
    arch, encoder, init = parse_variant(variant)
    check(seed, NonNegativeInt, "seed")
    base = section(params, "train")
    overrides = check(section(params, "variants").get(variant), Overrides, f"variants.{variant}")
    if overrides:
        check(base, TrainRecipe, "train")  # the shared recipe is complete and valid on its own
    recipe = check(deep_merge(base, overrides), TrainRecipe, _where(variant, overrides),
                   context={"arch": arch, "name": _where(variant, overrides)})
    # not validated again: the recipe's values are checked (and converted) already
    return TrainConfig.model_construct(**dict(recipe), variant=variant, arch=arch, encoder=encoder, init=init,
                                       seed=seed)
