# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Extracting bundle zips safely."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = ["safe_extract"]


def safe_extract(zip_path: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract ``zip_path`` into ``target``, refusing any member that would land outside it (zip-slip)."""
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.infolist():
            dest = (target / member.filename).resolve()
            if dest != target and target not in dest.parents:
                raise ValueError(f"{zip_path}: member '{member.filename}' would extract outside {target}; refusing.")
            if member.external_attr >> 16 & 0o170000 == 0o120000:
                raise ValueError(f"{zip_path}: member '{member.filename}' is a symbolic link; refusing.")
        zf.extractall(target)
    return target
