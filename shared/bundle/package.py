# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Build a bundle's release zip, ``<name>_v<version>.zip`` holding ``<name>/...``, that runs outside this repo.

    python -m shared.bundle.package bundles/spine_seg --out dist

The zip carries the bundle's configs, docs, license, scripts and trained weights (``models/model.pt``,
``models/model.ts`` and fitted ``models/preprocessing.json`` when present) and a real copy of the part of the
``shared`` package the bundle reaches: the common modules (``shared/*.py``, ``shared/handlers/``), its method's room
(``shared/spine/``, ...) and the networks and tooling modules its configs import, directly or through imports
(:func:`shared.bundle.requirements.first_party_modules`). A change to another method's room leaves the zip unchanged.
Run outputs and demo data (``data/``, ``eval/``, checkpoints) stay behind.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.bundle.requirements import first_party_modules

__all__ = ["package_bundle", "bundle_files"]

KEEP_DIRS = ("configs", "docs", "scripts")
KEEP_MODELS = ("model.pt", "model.ts", "preprocessing.json")
SKIP_PARTS = {"__pycache__", ".pytest_cache"}
# subpackages of ``shared`` whose modules travel one by one, as reached; every other subpackage is a method's room
BY_MODULE = ("networks", "bundle")
COMMON = ("handlers",)


def _walk(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP_PARTS.intersection(path.parts) and path.suffix != ".pyc":
            yield path


def bundle_files(bundle: str | os.PathLike) -> Iterator[tuple[Path, str]]:
    """Yield ``(source file, path inside the zip)`` for everything the release zip holds."""
    bundle = Path(bundle).absolute()
    name = bundle.name
    for path in sorted(bundle.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            yield path, f"{name}/{path.name}"
    for sub in KEEP_DIRS:
        if (bundle / sub).is_dir():
            for path in _walk(bundle / sub):
                yield path, f"{name}/{path.relative_to(bundle).as_posix()}"
    for model in KEEP_MODELS:
        if (bundle / "models" / model).is_file():
            yield bundle / "models" / model, f"{name}/models/{model}"
    shared_pkg = (bundle / "shared") if (bundle / "shared").exists() else Path(__file__).resolve().parents[1]
    shared_pkg = shared_pkg.resolve()  # the bundle's `shared` is a link to the repo's package: copy real files
    reached = first_party_modules(bundle)
    for path in _walk(shared_pkg):
        if _carried(path.relative_to(shared_pkg), reached):
            yield path, f"{name}/shared/{path.relative_to(shared_pkg).as_posix()}"


def _carried(relative: Path, reached: set[str]) -> bool:
    """Whether ``shared/<relative>`` belongs in the zip of a bundle that reaches the modules ``reached``."""
    parts = relative.parts
    if len(parts) == 1 or parts[0] in COMMON:
        return True
    module = ".".join(("shared", *relative.with_suffix("").parts)).removesuffix(".__init__")
    if parts[0] in BY_MODULE:
        return module in reached
    return f"shared.{parts[0]}" in reached  # a method's room travels whole


def package_bundle(bundle: str | os.PathLike, out_dir: str | os.PathLike = "dist") -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip`` and return its path."""
    bundle = Path(bundle).absolute()
    meta_file = bundle / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{bundle} is not a bundle: {meta_file} is missing.")
    version = json.loads(meta_file.read_text(encoding="utf-8"))["version"]
    out = Path(out_dir).absolute() / f"{bundle.name}_v{version}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src, arcname in bundle_files(bundle):
            zf.write(src, arcname)
    os.replace(tmp, out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", help="bundle folders, e.g. bundles/spine_seg")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    for b in args.bundles:
        print(package_bundle(b, args.out))


if __name__ == "__main__":
    main()
