# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Record the third-party distributions a bundle's own code and configs import while it runs.

``install(bundle)`` first thing in a fresh interpreter, run the bundle, then ``report()``. Every ``import``
statement, ``importlib.import_module`` and ``importlib.util.find_spec`` call is attributed to the code that made it:
the nearest frame on the stack outside the import machinery (importlib, pydoc, MONAI's ``optional_import`` /
``locate``). It counts when that code is the bundle's (a module it carries, e.g. ``shared``) or MONAI's config
parser running a ``$import`` or locating a ``_target_``; what MONAI, Ignite or any library imports for itself does
not (``import monai.metrics`` importing scikit-learn is MONAI's business, not the bundle's).

Given the distributions a bundle may use (``allowed``: what its metadata declares and their dependencies), every
other installed distribution is made unimportable, as in a clean install of the metadata's packages: a bundle that
needs an undeclared package, itself or through a library's optional backend (MONAI's SwinUNETR needs einops), fails.

Standalone on purpose: the probe that uses it runs where the repository is not importable.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.util
import re
import sys
from importlib import metadata
from pathlib import Path

# modules whose frames are import machinery, looked through to find who asked
_MACHINERY = {"importlib", "importlib.util", "importlib._bootstrap", "importlib._bootstrap_external", "pydoc"}
_MACHINERY |= {"importlib.resources", "importlib.resources._common", "monai.utils.module", __name__}
_CONFIG_PARSER = "monai.bundle.config_item"  # ConfigExpression (``$import``) and ConfigComponent (``_target_``)

_first_party: frozenset[str] = frozenset()
_found: dict[str, set[str]] = {}
_blocked: dict[str, str] = {}  # top-level module -> the undeclared distribution providing it


class _Block(importlib.abc.MetaPathFinder):
    """Refuses the top-level modules of distributions the bundle does not declare."""

    def find_spec(self, name, path=None, target=None):
        if name in _blocked:
            raise ModuleNotFoundError(f"No module named {name!r} ({_blocked[name]} is not declared)", name=name)
        return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _asker() -> str | None:
    """Who asked for an import: a first-party module name, ``"config"``, or ``None`` (a library, for itself)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name not in _MACHINERY and not frame.f_code.co_filename.startswith("<frozen"):
            break
        frame = frame.f_back
    if frame is None:
        return None
    if name is None:  # code compiled by the config parser: a "$" expression
        return "config"
    if name.split(".")[0] in _first_party:
        return name
    if name == _CONFIG_PARSER and frame.f_code.co_name != "<module>":
        return "config"
    return None


def _note(module: str | None) -> None:
    if not module or module.startswith("."):
        return
    top = module.split(".")[0]
    if top in _first_party or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return
    asker = _asker()
    if asker is not None:
        _found.setdefault(top, set()).add(asker)


def install(bundle: str | Path, allowed: list[str] | None = None) -> None:
    """Start recording; ``bundle`` is the bundle folder (its top-level modules and packages are first-party).
    With ``allowed`` (distribution names), the modules of every other installed distribution are blocked."""
    global _first_party
    bundle = Path(bundle)
    _first_party = frozenset(
        p.stem if p.suffix == ".py" else p.name
        for p in bundle.iterdir()
        if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file()
    )
    if allowed is not None:
        allow = {_canonical(d) for d in allowed}
        for module, dists in metadata.packages_distributions().items():
            undeclared = [d for d in dists if _canonical(d) not in allow]
            if len(undeclared) == len(dists) and module not in _first_party and module not in sys.stdlib_module_names:
                _blocked[module] = undeclared[0]
        sys.meta_path.insert(0, _Block())
    real_import, real_import_module, real_find_spec = (
        builtins.__import__,
        importlib.import_module,
        importlib.util.find_spec,
    )

    def __import__(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            _note(name)
        return real_import(name, globals, locals, fromlist, level)

    def import_module(name, package=None):
        _note(name)
        return real_import_module(name, package)

    def find_spec(name, package=None):
        _note(name)
        if name in _blocked:  # as if not installed: probing finds nothing, importing raises
            return None
        return real_find_spec(name, package)

    builtins.__import__, importlib.import_module, importlib.util.find_spec = __import__, import_module, find_spec


def report() -> dict[str, list[str]]:
    """Distribution (as installed) -> the first-party modules or ``"config"`` that imported it; a module no
    installed distribution provides is reported under its own name, prefixed ``?``."""
    providers = metadata.packages_distributions()
    out: dict[str, set[str]] = {}
    for module, askers in _found.items():
        for dist in providers.get(module, [f"?{module}"]):
            out.setdefault(dist, set()).update(askers)
    return {dist: sorted(askers) for dist, askers in sorted(out.items())}
