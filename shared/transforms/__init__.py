"""Transforms shared by the bundles."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import axial_slices, multiomic, oct, slice_embedding, spacing
    from .axial_slices import AxialSlices, AxialSlicesd
    from .slice_embedding import SliceEmbeddingd

__all__ = [
    "AxialSlices",
    "AxialSlicesd",
    "SliceEmbeddingd",
    "axial_slices",
    "multiomic",
    "oct",
    "slice_embedding",
    "spacing",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"AxialSlices": "axial_slices", "AxialSlicesd": "axial_slices", "SliceEmbeddingd": "slice_embedding"},
    __all__,
)
