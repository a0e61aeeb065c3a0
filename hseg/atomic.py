"""Write outputs under a temporary name and rename them into place.

A crash or kill mid-write therefore leaves either the previous file or the new
one, never a truncated file that DVC could mistake for a finished output.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs should be readable like any file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def save_torch(obj, path: str | os.PathLike) -> None:
    """torch.save, atomically and byte-for-byte reproducibly.

    Saving to a path names the zip's inner folder after the (random) temporary
    file; saving to an open file names it ``archive``, so the same object always
    gives the same bytes and DVC sees an unchanged output."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
