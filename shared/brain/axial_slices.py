# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Axial slice stacks for 2D foundation encoders (DinoAtten3D preprocessing)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "AxialSlices", "AxialSlicesd", "select_slice_indices"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def select_slice_indices(depth: int, num_slices: int | None, slice_stride: int = 1, source: str = "") -> list[int]:
    """
    Indices of the slices to keep along an axis of length ``depth``: the central ``num_slices`` slices taken
    every ``slice_stride``, or every ``slice_stride``-th slice of the whole axis when ``num_slices`` is None/0.
    """
    if slice_stride < 1:
        raise ValueError(f"slice_stride must be >= 1, got {slice_stride}.")
    if not num_slices:
        return list(range((depth - 1) % slice_stride // 2, depth, slice_stride))
    span = (num_slices - 1) * slice_stride + 1
    if span > depth:
        raise ValueError(
            f"{source or 'volume'} has {depth} axial slices, fewer than the {num_slices} requested "
            f"(stride {slice_stride} needs {span}); lower 'num_slices' or 'slice_stride'."
        )
    start = (depth - span) // 2
    return list(range(start, start + span, slice_stride))


class AxialSlices(Transform):
    """
    Turn a channel-first RAS volume (1, X, Y, Z) into a stack of encoder-ready axial slices (3, size, size, N).

    Each kept slice is put in display orientation (anterior up, patient right on the image left...), min-max
    scaled to [0, 1] on its own, padded to a square with its minimum (keeps the aspect ratio), resized to
    ``spatial_size``, repeated to 3 channels and normalised with ImageNet statistics.

    Args:
        num_slices: central slices to keep (paper: 50); None or 0 keeps all slices every ``slice_stride``.
        slice_stride: step between kept slices.
        spatial_size: output side (224 for DINOv2 at its usual resolution; a multiple of 14).
        keep_aspect: pad each slice to a square before resizing.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.

    Raises ValueError for a 2D image, a multi-channel image, NaN/inf values, or fewer slices than requested.
    """

    def __init__(
        self,
        num_slices: int | None = 50,
        slice_stride: int = 1,
        spatial_size: int = 224,
        keep_aspect: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if spatial_size < 1:
            raise ValueError(f"spatial_size must be >= 1, got {spatial_size}.")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("mean and std need 3 values (one per RGB channel).")
        self.num_slices = int(num_slices) if num_slices else None
        self.slice_stride = int(slice_stride)
        self.spatial_size = int(spatial_size)
        self.keep_aspect = bool(keep_aspect)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @property
    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (part of the embedding cache key)."""
        return {
            "num_slices": self.num_slices,
            "slice_stride": self.slice_stride,
            "spatial_size": self.spatial_size,
            "keep_aspect": self.keep_aspect,
            "mean": list(self.mean),
            "std": list(self.std),
            "orientation": "display_v1",
        }

    def __call__(self, img: torch.Tensor, source: str = "") -> tuple[torch.Tensor, list[int]]:
        """``img`` (1, X, Y, Z) -> slices (3, size, size, N) float32 and the kept Z indices."""
        where = source or "image"
        x = torch.as_tensor(img)
        if isinstance(x, MetaTensor):
            x = x.as_tensor()  # plain tensor: the stack has no spatial meaning the meta data could describe
        if x.dim() == 3:
            raise ValueError(
                f"{where}: expected a channel-first 3D volume (1, X, Y, Z), got shape {list(x.shape)}; "
                "is it a 2D image?"
            )
        if x.dim() != 4:
            raise ValueError(f"{where}: expected a channel-first 3D volume (1, X, Y, Z), got shape {list(x.shape)}.")
        if x.shape[0] != 1:
            raise ValueError(f"{where}: expected a single-channel volume, got {x.shape[0]} channels.")
        if min(x.shape[1:3]) < 2:
            raise ValueError(f"{where}: in-plane size {list(x.shape[1:3])} is a 2D image, not a volume.")
        idx = select_slice_indices(x.shape[3], self.num_slices, self.slice_stride, where)
        # only the kept slices are touched: a strided view, then one copy into (N, Y, X) display orientation
        # (rows run anterior -> posterior, columns left -> right)
        kept = x[0, :, :, idx[0] : idx[-1] + 1 : self.slice_stride]
        s = kept.permute(2, 1, 0).flip(1).to(torch.float32)
        lo, hi = torch.aminmax(s.flatten(1), dim=1)
        # min/max propagate NaN and inf, so checking them checks every kept voxel
        if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
            raise ValueError(f"{where}: volume contains NaN or infinite values in the kept slices.")
        s = s.sub_(lo[:, None, None]).mul_((1.0 / (hi - lo).clamp_min(1e-8))[:, None, None])  # [0, 1] per slice
        side = max(s.shape[1], s.shape[2])
        if self.keep_aspect and s.shape[1] != s.shape[2]:
            ph, pw = side - s.shape[1], side - s.shape[2]
            s = F.pad(s, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)  # 0 = slice minimum
        # anti-aliasing only matters when shrinking; when enlarging it gives the same values, 20x slower
        s = F.interpolate(
            s[:, None],
            size=(self.spatial_size, self.spatial_size),
            mode="bilinear",
            align_corners=False,
            antialias=side > self.spatial_size,
        )[:, 0]
        # ImageNet normalisation written straight into the (3, H, W, N) output, one pass per channel
        hwn = s.permute(1, 2, 0)
        out = torch.empty((3, *hwn.shape), dtype=torch.float32)
        for c, (m, sd) in enumerate(zip(self.mean, self.std)):
            torch.mul(hwn, 1.0 / sd, out=out[c]).sub_(m / sd)
        return out, idx


class AxialSlicesd(MapTransform):
    """
    Dictionary version of :class:`AxialSlices`. Writes the kept slice indices to ``{key}_slice_indices`` as a
    comma-separated string (collates for any slice count).
    Error messages name the file from the image's ``filename_or_obj`` metadata when known.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_slices: int | None = 50,
        slice_stride: int = 1,
        spatial_size: int = 224,
        keep_aspect: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slicer = AxialSlices(num_slices, slice_stride, spatial_size, keep_aspect, mean, std)

    @property
    def settings(self) -> dict[str, Any]:
        return self.slicer.settings

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            source = str(getattr(img, "meta", {}).get("filename_or_obj", "")) or str(key)
            out, idx = self.slicer(img, source=source)
            if hasattr(img, "meta"):
                # keep provenance (file name) but not the volume affine, which no longer describes the stack
                meta = {k: v for k, v in img.meta.items() if k == "filename_or_obj"}
                out = MetaTensor(out, meta=meta)
            d[key] = out
            d[f"{key}_slice_indices"] = ",".join(str(i) for i in idx)
        return d
