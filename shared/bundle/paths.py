"""Locating a bundle's folder from the place the runner was started in, and extracting bundle zips safely."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = ["bundle_root", "safe_extract"]


def bundle_root(name: str, cwd: str | os.PathLike | None = None) -> str:
    """Return the folder of bundle ``name`` for its configs' ``bundle_root`` id.

    MONAI's default ``bundle_root: "."`` only works when the runner starts inside the bundle. This resolves, in order:

    - the current folder, when it is a bundle (holds ``configs/metadata.json``): run from inside the bundle or an
      unpacked zip;
    - ``bundles/<name>`` below the current folder: run from the root of the collection's repository.

    Anything else is an error that says how to run; ``--bundle_root <dir>`` on the command line always wins.
    """
    here = Path(cwd or os.getcwd()).absolute()
    if (here / "configs" / "metadata.json").is_file():
        return str(here)
    in_repo = here / "bundles" / name
    if (in_repo / "configs" / "metadata.json").is_file():
        return str(in_repo)
    raise FileNotFoundError(
        f"Cannot find the '{name}' bundle from {here}: run from the repository root, from inside the bundle folder, "
        "or pass --bundle_root <bundle folder>."
    )


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
