"""Transforms shared by the bundles."""

from . import axial_slices, multiomic, oct, slice_embedding
from .axial_slices import AxialSlices, AxialSlicesd
from .slice_embedding import SliceEmbeddingd
