# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Dictionary transforms for OCT volume classification."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from shared.errors import InputError
from shared.inputs import check_volume

__all__ = ["CheckOCTVolumed", "SourceNamed", "channel_first_axes"]


def channel_first_axes(axis_order: Sequence[int]) -> list[int]:
    """``Transposed`` indices for a channel-first volume whose spatial axes are reordered by ``axis_order``.

    ``axis_order[i]`` is the stored axis that becomes axis ``i`` of the network's (B-scan, depth, lateral) order.
    """
    order = list(axis_order)
    if sorted(order) != [0, 1, 2]:
        raise InputError(f"config id 'axis_order' is {order!r}: expected a permutation of [0, 1, 2].")
    return [0] + [int(a) + 1 for a in order]


class CheckOCTVolumed(MapTransform):
    """Fail with the file path when a loaded volume is not a non-empty, finite, non-constant, single-channel 3D
    volume (:func:`shared.inputs.check_volume`: one :class:`~shared.errors.InputError`).

    Expects channel-first data ``(1, S, A, L)`` (after ``EnsureChannelFirstd``); one extra singleton axis (a volume
    stored as ``(S, A, L, 1)``) is dropped. Bundle datalists have checked every file already; this keeps the check
    where other loaders (MONAI Label) feed the same preprocessing.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            meta = getattr(img, "meta", {}) or {}
            where = meta.get("filename_or_obj", key)
            shape = tuple(img.shape)
            if len(shape) == 5 and shape[0] == 1 and 1 in shape[1:] and shape.count(1) >= 2:
                # a stored singleton axis, e.g. a NIfTI of shape (S, A, L, 1): drop it
                axis = 4 if shape[4] == 1 else 1 + shape[1:].index(1)
                img = d[key] = img.squeeze(axis)
                shape = tuple(img.shape)
            check_volume(img, str(where), spatial_dims=3, channels=1, channel_first=True, what="OCT volume")
        return d


class SourceNamed(MapTransform):
    """Store the file name of ``keys``' image (from its metadata) under ``name_key`` as a plain string, so outputs
    can name their source after the image itself is dropped from post-processing."""

    def __init__(self, keys: KeysCollection, name_key: str = "source_file", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.name_key = name_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", None) or d.get(f"{key}_meta_dict", {}) or {}
            d[self.name_key] = str(meta.get("filename_or_obj", ""))
        return d
