"""Reading params.yaml and checking it before any compute is spent.

Every check raises :class:`UserError` with one line naming the parameter,
the bad value and what is allowed.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .errors import UserError

WEIGHTS = ("scratch", "imagenet")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LOSSES = ("flat", "tree")
SIZE_MULTIPLE = 32  # smp encoders downsample 5 times


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-06` (no dot) is a string; DVC writes params with ruamel
    (YAML 1.2), e.g. `-S train.scheduler.eta_min=1.0e-6` becomes `eta_min: 1e-06`. Read it as 1.2 does."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789."))


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the repository root or pass --params")
    return parse_yaml(path.read_text(), str(path))


def parse_yaml(text: str, source: str) -> dict:
    """A params mapping from YAML text; ``source`` names it in errors."""
    try:
        params = yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        raise UserError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise UserError(f"{source}: expected a mapping at the top level")
    return params


def section(params: dict, name: str) -> dict:
    value = params.get(name)
    if not isinstance(value, dict):
        raise UserError(f"params.yaml: missing section '{name}'")
    return value


def _positive(name: str, value, kind=(int, float)):
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        allowed = "a positive integer" if kind is int else "a positive number"
        raise UserError(f"{name} = {value!r}: must be {allowed}")
    return value


def _non_negative(name: str, value, kind=(int, float), hint: str = ""):
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
        allowed = "an integer >= 0" if kind is int else "a number >= 0"
        raise UserError(f"{name} = {value!r}: must be {allowed}{hint}")
    return value if kind is int else float(value)


def _choice(name: str, value, allowed):
    if value not in allowed:
        raise UserError(f"{name} = {value!r}: allowed values are {', '.join(map(str, allowed))}")
    return value


def check_size(name: str, size) -> int:
    _positive(name, size, int)
    if size % SIZE_MULTIPLE:
        lower = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
        raise UserError(f"{name} = {size}: the models need a multiple of {SIZE_MULTIPLE} "
                        f"(try {lower} or {lower + SIZE_MULTIPLE})")
    return size


@dataclass(frozen=True)
class DataPaths:
    root: Path
    train_ids: Path
    val_ids: Path
    classes_file: Path


def data_paths(params: dict) -> DataPaths:
    """The dataset root and its split/class files, checked to exist."""
    data = section(params, "data")
    root = Path(data.get("root", ""))
    if not root.is_dir():
        raise UserError(f"data.root = '{root}': no such folder; run `dvc pull data/pascal-part.dvc` "
                        f"or point data.root at a Pascal-Part copy")
    paths = {}
    for key in ("train_ids", "val_ids", "classes_file"):
        p = root / str(data.get(key, ""))
        if not p.is_file():
            raise UserError(f"data.{key} = '{data.get(key)}': {p} does not exist")
        paths[key] = p
    return DataPaths(root=root, **paths)


def dev_fraction(params: dict) -> float:
    """The share of train ids held out as the dev split (0 = none: the original study's protocol)."""
    value = section(params, "data").get("dev_fraction")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 0.5:
        raise UserError(f"data.dev_fraction = {value!r}: must be a number from 0 to 0.5 (the share of train ids "
                        f"held out to choose settings on; 0 = none)")
    return float(value)


def study_seeds(params: dict) -> list[int]:
    """The study's seeds: every variant trains once per seed."""
    seeds = section(params, "study").get("seeds")
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise UserError(f"study.seeds = {seeds!r}: must be a non-empty list of integers >= 0, e.g. [42, 43, 44]")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"study.seeds = {seeds!r}: a seed appears twice")
    return seeds


def smp_archs() -> tuple[str, ...]:
    """Every architecture segmentation-models-pytorch provides (its own registry)."""
    import segmentation_models_pytorch as smp
    return tuple(smp.MODEL_ARCHITECTURES_MAPPING)


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


def smp_encoders() -> tuple[str, ...]:
    """Every encoder segmentation-models-pytorch provides (its own registry)."""
    import segmentation_models_pytorch as smp
    return tuple(smp.encoders.encoders)


def _check_name(name: str, value, allowed: tuple[str, ...]):
    if value not in allowed:
        shown = ", ".join(allowed) if len(allowed) <= 12 else ", ".join(allowed[:8]) + f", ... ({len(allowed)} in all)"
        raise UserError(f"{name} = {value!r}: not provided by segmentation-models-pytorch; allowed values are {shown}")
    return value


def study_variants(params: dict) -> list[str]:
    """The variant names of the train matrix, as DVC names them (arch-encoder-weights)."""
    study = section(params, "study")
    axes = []
    for key, allowed in (("archs", smp_archs()), ("encoders", smp_encoders()), ("weights", WEIGHTS)):
        values = study.get(key)
        if not isinstance(values, list) or not values:
            raise UserError(f"study.{key} = {values!r}: must be a non-empty list, e.g. {list(allowed[:2])}")
        for v in values:
            _check_name(f"study.{key}", v, allowed) if key != "weights" else _choice(f"study.{key}", v, allowed)
        axes.append(values)
    return [f"{a}-{e}-{w}" for a in axes[0] for e in axes[1] for w in axes[2]]


def parse_variant(name: str) -> tuple[str, str, str]:
    """<arch>-<encoder>-<weights>; the encoder may itself contain '-' (e.g. timm-efficientnet-b0)."""
    parts = name.split("-")
    if len(parts) < 3:
        raise UserError(f"variant '{name}': expected <arch>-<encoder>-<weights>, e.g. unet-resnet34-scratch")
    arch, encoder, weights = parts[0], "-".join(parts[1:-1]), parts[-1]
    _check_name(f"variant '{name}' arch", arch, smp_archs())
    _check_name(f"variant '{name}' encoder", encoder, smp_encoders())
    _choice(f"variant '{name}' weights", weights, WEIGHTS)
    return arch, encoder, weights


@dataclass
class Augment:
    hflip: bool = True
    scale: tuple = (1.0, 1.0)  # random zoom range [min, max], drawn log-uniformly (0.5, 2.0: the standard recipe)
    shift: float = 0.0       # extra random shift, fraction of the image side
    rotate: float = 0.0      # random rotation in degrees, +-
    brightness: float = 0.0  # additive, +- in units of the [0,1] intensity range
    contrast: float = 0.0    # multiplicative, 1 +- contrast


@dataclass
class TrainConfig:
    variant: str
    arch: str
    encoder: str
    weights: str
    epochs: int
    batch_size: int
    crop: int                # training crop side in pixels; 0 = the cache size (no cropping)
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str            # warmup_cosine | cosine_restarts
    warmup_epochs: float
    t0: int
    eta_min: float
    seed: int
    precision: str
    device: str
    loss: str
    loss_weights: dict       # term -> weight, terms from LOSS_TERMS
    class_weights: str       # none | inverse_sqrt | inverse
    tree_weight: float
    tree_gamma: float
    level_weight: float      # flat loss: weight of the terms on the coarser levels' summed probabilities
    val_every: int
    processes: int
    accumulate: int
    compile: bool            # torch.compile the model (CUDA only)
    decoder_width: float = 1.0  # scales smp's default decoder channels (1 = the default model)
    augment: Augment = field(default_factory=Augment)
    progressive: tuple = ()  # ((epochs, side), ...): progressive resizing, the first epochs at smaller sides


def check_decoder_width(name: str, width, arch: str):
    """``width`` where ``arch`` has decoder channels to scale (any arch at width 1)."""
    if width != 1 and default_decoder_channels(arch) is None:
        raise UserError(f"{name} = {width!r}: {arch} has no decoder_channels to scale; set it to 1 for this "
                        f"variant (variants.<variant>.decoder_width), or use one of {', '.join(scalable_archs())}")
    return width


def _decoder_width(name: str, value, arch: str) -> float:
    return float(check_decoder_width(name, _positive(name, value), arch))


def _level_weight(name: str, value, loss: str) -> float:
    weight = _non_negative(name, value)
    if weight and loss != "flat":
        raise UserError(f"{name} = {value!r} applies to the flat loss only; the tree loss already scores every "
                        f"level (set it to 0, or train.loss to flat)")
    return float(weight)


def epoch_side(cfg: TrainConfig, epoch: int) -> int:
    """The side epoch ``epoch`` (0-based) trains at under ``cfg.progressive``; 0 = the full side."""
    end = 0
    for epochs, side in cfg.progressive:
        end += epochs
        if epoch < end:
            return side
    return 0


OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("warmup_cosine", "cosine_restarts")
LOSS_TERMS = ("ce", "dice", "lovasz", "focal")
CLASS_WEIGHTS = ("none", "inverse_sqrt", "inverse")


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` laid over it; nested mappings merge key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{name} = {value!r}: must be true or false")
    return value


def _mapping(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{name} = {value!r}: must be a mapping")
    return value


def _known_keys(name: str, value: dict, allowed) -> dict:
    unknown = set(value) - set(allowed)
    if unknown:
        raise UserError(f"{name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return value


def _augment(name: str, augment: dict) -> Augment:
    _known_keys(name, augment, {f.name for f in fields(Augment)})
    values = {}
    for k, v in augment.items():
        if k == "hflip":
            values[k] = _boolean(f"{name}.hflip", v)
        elif k == "scale":
            if (not isinstance(v, (list, tuple)) or len(v) != 2
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)
                    or v[0] > v[1]):
                raise UserError(f"{name}.scale = {v!r}: must be a zoom range [min, max] with 0 < min <= max, "
                                f"e.g. [0.5, 2.0]; [1, 1] turns zoom off")
            values[k] = (float(v[0]), float(v[1]))
        else:
            values[k] = _non_negative(f"{name}.{k}", v)
    return Augment(**values)


def _progressive(where, value, epochs: int, crop: int) -> tuple:
    """[[epochs, side], ...] -> ((epochs, side), ...), leaving at least the last epoch at the full
    training side. ``where(key)`` names a train key as the user set it. (Sides against the cache
    size, when crop is 0, are checked once the cache is read.)"""
    name = where("progressive")
    if value is None:
        return ()
    example = "e.g. [[8, 128], [6, 160]]: 8 epochs at 128 px, 6 at 160, the rest at the full side; [] = off"
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        raise UserError(f"{name} = {value!r}: must be a list of [epochs, side] pairs, {example}")
    stages = tuple((_positive(f"{name} epochs", e, int), check_size(f"{name} side", side)) for e, side in value)
    if sum(e for e, _ in stages) >= epochs:
        raise UserError(f"{name} = {value!r}: its {sum(e for e, _ in stages)} epochs leave none of the "
                        f"{where('epochs')} = {epochs} epochs at the full training side; shorten the stages or "
                        f"raise {where('epochs')} ({example})")
    for _, side in stages:
        if crop and side >= crop:
            raise UserError(f"{name}: side {side} is not below the full training side, {where('crop')} = {crop}; "
                            f"progressive sides must be smaller ({example})")
    return stages


def train_config(params: dict, variant: str, seed: int) -> TrainConfig:
    """The recipe for one variant and seed: ``train`` deep-merged with ``variants.<variant>``."""
    arch, encoder, weights = parse_variant(variant)
    base = section(params, "train")
    overrides = (params.get("variants") or {}).get(variant) or {}
    if not isinstance(overrides, dict):
        raise UserError(f"variants.{variant} = {overrides!r}: must be a mapping of train keys")
    _known_keys(f"variants.{variant}", overrides, base)
    recipe = deep_merge(base, overrides)

    def where(key):
        return f"variants.{variant}.{key}" if key in overrides else f"train.{key}"

    sched = _known_keys(where("scheduler"), _mapping(where("scheduler"), recipe.get("scheduler")),
                        ("name", "warmup_epochs", "T_0", "eta_min"))
    tree_loss = _mapping(where("tree_loss"), recipe.get("tree_loss"))
    loss_weights = _known_keys(where("loss_weights"), _mapping(where("loss_weights"), recipe.get("loss_weights", {"ce": 1.0})),
                               LOSS_TERMS)
    loss_weights = {k: _non_negative(f"{where('loss_weights')}.{k}", v) for k, v in loss_weights.items()}
    if not any(loss_weights.values()):
        raise UserError(f"{where('loss_weights')} = {loss_weights}: at least one term needs a weight above 0")
    if "seed" in recipe:
        raise UserError(f"{where('seed')}: seeds are a study axis now; list them in study.seeds")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed {seed!r}: must be an integer >= 0 (study.seeds)")
    crop = recipe.get("crop", 0)
    if crop:
        check_size(where("crop"), crop)
    else:
        _non_negative(where("crop"), crop, int, " (0 = train on the whole cached image)")
    schedule = _choice(f"{where('scheduler')}.name", sched.get("name", "cosine_restarts"), SCHEDULES)
    epochs = _positive(where("epochs"), recipe.get("epochs"), int)
    loss = _choice(where("loss"), recipe.get("loss", "flat"), LOSSES)
    return TrainConfig(
        variant=variant, arch=arch, encoder=encoder, weights=weights,
        epochs=epochs,
        batch_size=_positive(where("batch_size"), recipe.get("batch_size"), int),
        crop=crop,
        optimizer=_choice(where("optimizer"), recipe.get("optimizer", "adam"), OPTIMIZERS),
        lr=float(_positive(where("lr"), recipe.get("lr"))),
        weight_decay=_non_negative(where("weight_decay"), recipe.get("weight_decay", 0.0)),
        schedule=schedule,
        warmup_epochs=_non_negative(f"{where('scheduler')}.warmup_epochs", sched.get("warmup_epochs", 0.0)),
        t0=_positive(f"{where('scheduler')}.T_0", sched.get("T_0", 1), int),
        eta_min=_non_negative(f"{where('scheduler')}.eta_min", sched.get("eta_min", 0.0)),
        seed=seed,
        precision=_choice(where("precision"), recipe.get("precision", "auto"), PRECISIONS),
        device=_choice(where("device"), recipe.get("device", "auto"), ("auto", "cpu", "cuda")),
        loss=loss,
        loss_weights=loss_weights,
        class_weights=_choice(where("class_weights"), recipe.get("class_weights", "none"), CLASS_WEIGHTS),
        tree_weight=_non_negative(f"{where('tree_loss')}.weight", tree_loss.get("weight", 1.0)),
        tree_gamma=_non_negative(f"{where('tree_loss')}.gamma", tree_loss.get("gamma", 2.0)),
        level_weight=_level_weight(where("level_weight"), recipe.get("level_weight", 0.0), loss),
        val_every=_positive(where("val_every"), recipe.get("val_every", 1), int),
        processes=_positive(where("processes"), recipe.get("processes", 1), int),
        accumulate=_positive(where("accumulate"), recipe.get("accumulate", 1), int),
        compile=_boolean(where("compile"), recipe.get("compile", False)),
        decoder_width=_decoder_width(where("decoder_width"), recipe.get("decoder_width", 1.0), arch),
        augment=_augment(where("augment"), _mapping(where("augment"), recipe.get("augment"))),
        progressive=_progressive(where, recipe.get("progressive"), epochs, crop),
    )


@dataclass(frozen=True)
class EvaluateSettings:
    batch_size: int
    precision: str
    device: str
    flip_tta: bool
    tta_sides: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlotSettings:
    dpi: int
    grid_images: int
    worst_cases: int


@dataclass(frozen=True)
class PrepareSettings:
    size: int
    workers: int


def evaluate_settings(params: dict) -> EvaluateSettings:
    ev = section(params, "evaluate")
    return EvaluateSettings(
        batch_size=_positive("evaluate.batch_size", ev.get("batch_size", 16), int),
        precision=_choice("evaluate.precision", ev.get("precision", "auto"), PRECISIONS),
        device=_choice("evaluate.device", ev.get("device", "auto"), ("auto", "cpu", "cuda")),
        flip_tta=_boolean("evaluate.flip_tta", ev.get("flip_tta", False)),
        tta_sides=tta_sides("evaluate.tta_sides", ev.get("tta_sides", [])))


def tta_sides(name: str, value) -> tuple[int, ...]:
    """Extra input sides for multi-scale test-time augmentation: a list of multiples of 32."""
    if not isinstance(value, list):
        raise UserError(f"{name} = {value!r}: must be a list of sides in pixels, e.g. [160, 192]; [] = off")
    return tuple(check_size(f"{name}[{i}]", side) for i, side in enumerate(value))


def plot_settings(params: dict) -> PlotSettings:
    plot = section(params, "plot")
    return PlotSettings(dpi=_positive("plot.dpi", plot.get("dpi", 100), int),
                        grid_images=_non_negative("plot.grid_images", plot.get("grid_images", 4), int),
                        worst_cases=_non_negative("plot.worst_cases", plot.get("worst_cases", 4), int))


def prepare_settings(params: dict) -> PrepareSettings:
    prep = section(params, "prepare")
    return PrepareSettings(size=check_size("prepare.size", prep.get("size")),
                           workers=_non_negative("prepare.workers", prep.get("workers", 0), int, " (0 = all cores)"))
