"""Reading params.yaml and checking it before any compute is spent.

params.yaml is the one source of settings. Each section is a pydantic model in the settings module of
the stage that reads it (``hseg/settings/<module>.py``), so a stage imports, and dvc.yaml tracks, only
the checks of its own sections. Every key is required (a missing key is an error, not a silent
default), types, ranges and choices are checked and unknown keys are refused. A problem becomes one
:class:`UserError` with one line per problem: ``<key.path> = <value!r>: <what is allowed>``.

This module holds what every section shares: the YAML loader, the model base class, the error
conversion and the small value types (numbers, choices, lists, sides that are multiples of 32).
"""
from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from ..errors import UserError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
SIZE_MULTIPLE = 32  # smp encoders downsample 5 times
SECTIONS = ("data", "classes", "prepare", "study", "train", "variants", "evaluate", "plot")


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-06` (no dot) is a string; DVC writes params with ruamel
    (YAML 1.2), e.g. `-S train.scheduler.eta_min=1.0e-6` becomes `eta_min: 1e-06`. Read it as 1.2 does."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789."))


def load_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml as a dict, its top-level sections checked by name (each stage checks its sections)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the repository root or pass --params")
    return parse_params(path.read_text(), str(path))


def parse_params(text: str, source: str) -> dict:
    """A params mapping from YAML text (``source`` names it in errors), its sections checked by name."""
    try:
        params = yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        raise UserError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise UserError(f"{source}: expected a mapping at the top level")
    unknown = [key for key in params if key not in SECTIONS]
    if unknown:
        raise UserError("\n".join(f"{key} = {params[key]!r}: unknown section; the sections are "
                                  f"{', '.join(SECTIONS)}" for key in unknown))
    return params


def section(params: dict, name: str) -> dict:
    value = params.get(name)
    if not isinstance(value, dict):
        raise UserError(f"params.yaml: missing section '{name}'")
    return value


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` laid over it; nested mappings merge key by key. How a profile is laid over
    params.yaml (hseg/exp.py) and a variant's overrides over the shared recipe (settings/train.py): it lives
    here, with the settings, so the train stage does not depend on the profiles' command."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict)
                    else value)
    return out


class Settings(BaseModel):
    """A section of params.yaml (or a mapping inside one): every field required, unknown keys refused."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    REFUSED: ClassVar[dict[str, str]] = {}  # key -> why it is not a setting here (said in the error)


# --- value types: each refuses with the text that follows `<key.path> = <value!r>: ` -------------

def rule(test: Callable[[Any], bool], allowed: str, convert: Callable | None = None) -> PlainValidator:
    """A validator that lets a value through where ``test(value)`` holds (``convert``-ed), and
    otherwise says ``allowed``."""
    def check(value):
        if not test(value):
            raise PydanticCustomError("not_allowed", allowed)
        return convert(value) if convert else value
    return PlainValidator(check)


def is_int(value) -> bool:
    """An integer, not a bool (YAML's true is not 1) and not a float (2.5 or 2.0)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


PositiveInt = Annotated[int, rule(lambda v: is_int(v) and v > 0, "must be a positive integer")]
NonNegativeInt = Annotated[int, rule(lambda v: is_int(v) and v >= 0, "must be an integer >= 0")]
PositiveFloat = Annotated[float, rule(lambda v: is_number(v) and v > 0, "must be a positive number", float)]
NonNegativeFloat = Annotated[float, rule(lambda v: is_number(v) and v >= 0, "must be a number >= 0", float)]
Bool = Annotated[bool, rule(lambda v: isinstance(v, bool), "must be true or false")]
Text = Annotated[str, rule(lambda v: isinstance(v, str) and v != "", "must be a non-empty string")]


def choice(*allowed: str):
    """One of ``allowed`` (strings)."""
    return Annotated[str, rule(lambda v: isinstance(v, str) and v in allowed,
                               f"allowed values are {', '.join(allowed)}")]


def size_problem(size) -> str | None:
    """Why ``size`` is not a side the models take (a positive multiple of 32), or None."""
    if not is_int(size) or size <= 0:
        return "must be a positive integer"
    if size % SIZE_MULTIPLE:
        lower = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
        return f"the models need a multiple of {SIZE_MULTIPLE} (try {lower} or {lower + SIZE_MULTIPLE})"
    return None


def _size(value):
    problem = size_problem(value)
    if problem:
        raise PydanticCustomError("size", problem)
    return value


Size = Annotated[int, PlainValidator(_size)]  # an image side in pixels: a positive multiple of 32


def listed(item, allowed: str, *, non_empty: bool = False, as_tuple: bool = False):
    """A YAML list of ``item`` (a tuple once read with ``as_tuple``); anything else, or [] where
    ``non_empty``, is refused with ``allowed``. Each item is checked (and named) by its index."""
    def is_list(value):
        if not isinstance(value, list) or (non_empty and not value):
            raise PydanticCustomError("list", allowed)
        return value
    return Annotated[tuple[item, ...] if as_tuple else list[item], BeforeValidator(is_list)]


# --- checking, and pydantic's errors as one line per problem -------------------------------------

Namer = Callable[[tuple], str]  # a readable location inside the checked value -> its key path


def render(path: tuple) -> str:
    """('scheduler', 'name') -> '.scheduler.name'; list positions as [i]."""
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)


def under(prefix: str) -> Namer:
    """Key paths below ``prefix`` (e.g. 'evaluate' -> 'evaluate.tta_sides[1]')."""
    return lambda path: prefix + render(path)


def check(value, kind, name: str | Namer, context: dict | None = None):
    """``value`` read as ``kind`` (a Settings model or an annotated type); a UserError with one
    line per problem, each named by its key path (``name`` is the prefix, or a Namer)."""
    namer = under(name) if isinstance(name, str) else name
    try:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind.model_validate(value, context=context)
        return TypeAdapter(kind).validate_python(value, context=context)
    except ValidationError as exc:
        raise UserError("\n".join(_problem(error, kind, namer) for error in exc.errors())) from None


def _problem(error: dict, kind, namer: Namer) -> str:
    loc, value, ctx = tuple(error["loc"]), error.get("input"), error.get("ctx") or {}
    if "at" in ctx:  # a check on a whole value that names one part of it (see TrainRecipe)
        loc, value = loc + tuple(ctx["at"]), ctx["value"]
    path, parent, here = _walk(kind, loc)
    name = namer(path)
    if error["type"] == "missing":
        return f"{name}: missing; params.yaml must set it (every key is required: the code has no defaults)"
    if error["type"] == "extra_forbidden" and _is_model(parent):
        reason = parent.REFUSED.get(path[-1])
        return f"{name} = {value!r}: " + (reason or f"unknown key; allowed keys are {', '.join(parent.model_fields)}")
    if error["type"] in ("model_type", "model_attributes_type", "dict_type") and _is_model(here):
        return f"{name} = {value!r}: must be a mapping of {', '.join(here.model_fields)}"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{name} = {value!r}: must be a mapping"
    return f"{name} = {value!r}: {error['msg']}"


def _is_model(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, Settings)


def _unwrap(kind):
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) is Union and type(None) in get_args(kind):
            kind = next(k for k in get_args(kind) if k is not type(None))
        else:
            return kind


def _walk(kind, loc: tuple):
    """pydantic's error location -> (the readable path, the type holding its last key, the type at
    it). Named-tuple positions read as their field names: progressive[0].side, not [0][1]."""
    path, parent, here = [], None, _unwrap(kind)
    for key in loc:
        parent, step = here, None
        if _is_model(here):
            field = here.model_fields.get(key)
            step = field.annotation if field else None
        elif isinstance(here, type) and issubclass(here, tuple) and hasattr(here, "_fields"):
            if isinstance(key, int) and key < len(here._fields):
                key = here._fields[key]
                step = typing.get_type_hints(here, include_extras=True).get(key)
        elif get_origin(here) in (list, tuple):
            step = get_args(here)[0]
        elif get_origin(here) is dict:
            step = get_args(here)[1]
        path.append(key)
        here = _unwrap(step)
    return tuple(path), parent, here
