"""Bundle tooling: where a bundle lives, verification against MONAI's checks, packaging as a zip, ONNX export, the
MONAI Label app builder, cross-validation and the metadata's package requirements. The command-line modules
(``python -m shared.bundle.verify`` / ``.package`` / ``.export`` / ``.requirements``) are imported only when run."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import cross_validation, export, monailabel_app, package, paths, requirements, verify
    from .paths import safe_extract

__all__ = ["safe_extract", "cross_validation", "export", "monailabel_app", "package", "paths", "requirements", "verify"]

__getattr__, __dir__ = lazy_exports(__name__, {"safe_extract": "paths"}, __all__)
