# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Atomic file writes: a file either keeps its old content or has the complete new one, never half of it.

Every file a bundle writes (checkpoints, ``model.pt``, fitted preprocessing, thresholds, metrics, predictions) goes
through :func:`atomic_write`: the data is written to a hidden temporary file in the same folder
(``.<name>.<random>.partial``), flushed and fsynced, then renamed over the target (atomic on POSIX and Windows) and
the folder fsynced. A run killed mid-write leaves at most a ``.partial`` file, which :func:`remove_stale_partials`
deletes at the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_save", "write_json", "remove_stale_partials", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"w"`` or ``"wb"``) and, when the block ends
    without an error, move it over ``path``. On an error the temporary file is removed and ``path`` is untouched.
    New files get the usual permissions (0666 less the umask), not the 0600 of temporary files."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}.")
    path = Path(path)
    folder = str(path.parent.absolute())
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def write_json(path: str | os.PathLike, obj: Any, **dump_kwargs: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, **{"indent": 2, **dump_kwargs})
        f.write("\n")


def remove_stale_partials(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files an interrupted :func:`atomic_write` left in ``folder`` (not recursive); return
    their names. Only hidden ``.<name>.<random>.partial`` files are touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith(PARTIAL_SUFFIX) and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p.name)
    return sorted(removed)
