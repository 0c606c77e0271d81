"""Lazy package faces (PEP 562): a package lists the names it offers and the submodule each lives in; the submodule
is imported on first access, so ``import shared`` (and each config's ``_target_``) loads only what a bundle uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, attributes: Mapping[str, str], names: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        attributes: public name -> submodule (relative to the package) that defines it.
        names: the package's ``__all__``; those that are not ``attributes`` are submodules, reachable as attributes
            (``shared.data.oct``) without an explicit import.
    """
    submodules = frozenset(names) - set(attributes)

    def __getattr__(name: str) -> Any:
        if name in attributes:
            return getattr(importlib.import_module(f"{package}.{attributes[name]}"), name)
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(attributes) | submodules)

    return __getattr__, __dir__
