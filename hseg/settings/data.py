"""``data`` (where the dataset is, and the dev split's share) and ``prepare`` (the cache's side): the
prepare stage's settings."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from ..errors import UserError
from .base import Settings, Size, Text, check, is_int, is_number, rule, section


class DataSettings(Settings):
    root: Text           # the Pascal-Part folder
    train_ids: Text      # these three: files inside root
    val_ids: Text
    classes_file: Text
    dev_fraction: Annotated[float, rule(lambda v: is_number(v) and 0 <= v <= 0.5,
                                        "must be a number from 0 to 0.5 (the share of train ids held out "
                                        "as the dev split)", float)]


class PrepareSettings(Settings):
    size: Size           # training/cache side in pixels
    workers: Annotated[int, rule(lambda v: is_int(v) and v >= 0, "must be an integer >= 0 (0 = all cores)")]


@dataclass(frozen=True)
class DataPaths:
    root: Path
    train_ids: Path
    val_ids: Path
    classes_file: Path


def data_settings(params: dict) -> DataSettings:
    return check(section(params, "data"), DataSettings, "data")


def data_paths(params: dict) -> DataPaths:
    """The dataset root and its split/class files, checked to exist."""
    data = data_settings(params)
    root = Path(data.root)
    if not root.is_dir():
        raise UserError(f"data.root = {data.root!r}: no such folder; run `dvc pull data/pascal-part.dvc` "
                        f"or point data.root at a Pascal-Part copy")
    paths = {}
    for key in ("train_ids", "val_ids", "classes_file"):
        value = getattr(data, key)
        p = root / value
        if not p.is_file():
            raise UserError(f"data.{key} = {value!r}: {p} does not exist")
        paths[key] = p
    return DataPaths(root=root, **paths)


def prepare_settings(params: dict) -> PrepareSettings:
    return check(section(params, "prepare"), PrepareSettings, "prepare")
