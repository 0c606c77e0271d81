"""Shared code of the bundle collection: network definitions, data, losses, metrics, transforms, handlers and
bundle tooling. Every bundle zip carries a copy of this package, so a bundle runs outside this repository.

Every subpackage is imported on first use, and heavy optional dependencies (scipy, scikit-learn, nilearn,
matplotlib) only where used: ``import shared`` costs nothing, and a bundle loads only what its configs name.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from . import bundle, data, handlers, losses, metrics, networks, transforms, visualize

__all__ = ["bundle", "data", "handlers", "losses", "metrics", "networks", "transforms", "visualize"]

__getattr__, __dir__ = lazy_exports(__name__, {}, __all__)

__version__ = "0.1.0"
