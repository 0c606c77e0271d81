"""Shared code of the bundle collection: network definitions, data, losses, metrics, transforms, handlers and
bundle tooling. Every bundle zip carries a copy of this package, so a bundle runs outside this repository.

Subpackages import only light dependencies; heavy optional ones (nilearn, matplotlib) are imported where used.
"""

from . import bundle, data, handlers, losses, metrics, networks, transforms

__version__ = "0.1.0"
