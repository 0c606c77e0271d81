# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Dictionary transforms for multi-omic subjects: mid-sagittal slicing of RAS volumes, stacking the image
modalities as channels, and encoding SNP / clinical vectors with a fitted :class:`FeaturePreprocessor`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from shared.errors import InputError

__all__ = ["MidSagittalSliced", "EncodeMultiomicd", "MultiomicPrepareBatch"]


def _source_name(img: Any) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", "<in-memory image>"))


class MidSagittalSliced(MapTransform):
    """
    Take one sagittal slice of a channel-first RAS volume ``(C, X, Y, Z)`` -> ``(C, Y, Z)`` (anterior-posterior by
    inferior-superior). Run ``Orientationd(axcodes="RAS")`` first so axis 1 is left-right.

    Args:
        keys: image keys.
        slice_index: voxel index along left-right; ``None`` takes the middle slice ``X // 2``.
        allow_missing_keys: skip absent keys.
    """

    def __init__(self, keys: KeysCollection, slice_index: int | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slice_index = slice_index

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim != 4:
                raise InputError(
                    f"image '{key}' from '{_source_name(img)}' has shape {tuple(img.shape)} after channel-first; "
                    "a 3D volume (C, X, Y, Z) is required."
                )
            n = int(img.shape[1])
            idx = n // 2 if self.slice_index is None else int(self.slice_index)
            if not 0 <= idx < n:
                raise InputError(
                    f"config id 'slice_index' is {idx}, outside [0, {n}) for '{_source_name(img)}' (its left-right "
                    "size after RAS): use null for the middle slice."
                )
            sl = img[:, idx]
            if isinstance(img, MetaTensor):
                # keep the in-plane part of the affine (axes y, z and translation) so 2D transforms stay consistent
                aff = img.affine
                aff2 = aff[[1, 2, 3]][:, [1, 2, 3]].clone()
                aff2[:2, 2] = aff[1:3, 3] + aff[1:3, 0] * idx
                meta = dict(img.meta)
                meta["affine"] = aff2
                meta["sagittal_index"] = idx
                sl = MetaTensor(sl.as_tensor(), meta=meta)
            d[key] = sl
        return d


class EncodeMultiomicd(MapTransform):
    """
    Replace the ``snp`` source path by the imputed dosage vector ``(n_snps,)`` and the raw clinical row
    (``clinical_raw``) by the encoded vector ``clinical (out_features,)``, using a fitted preprocessing.

    Args:
        preprocessor: a fitted :class:`shared.multiomic.preprocessing.FeaturePreprocessor`.
    """

    def __init__(self, preprocessor: Any, keys: KeysCollection = ("snp", "clinical")) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.preprocessor = preprocessor

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        encoded = self.preprocessor.encode(d)
        d.pop("clinical_raw", None)
        for k, v in encoded.items():
            d[k] = torch.as_tensor(np.asarray(v, np.float32))
        return d


# not MONAI's PrepareBatchExtraInput, which needs an ``image`` and every extra key in each batch: a run on SNP and
# clinical data alone has no image
class MultiomicPrepareBatch:
    """
    ``prepare_batch`` for MONAI engines: ``image`` (when present) is the network input, ``label`` the target and the
    enabled non-imaging vectors go in as keyword arguments (``snp=``, ``clinical=``). Not MONAI's
    ``PrepareBatchExtraInput``: it needs an ``image`` and every extra key, while a run may switch MRI and PET, SNPs or
    the clinical data off.

    Args:
        extra_keys: batch keys passed as keyword arguments of the same name.
    """

    def __init__(self, extra_keys: Sequence[str] = ("snp", "clinical")) -> None:
        self.extra_keys = [str(k) for k in extra_keys]

    def __call__(
        self,
        batchdata: dict[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple, dict[str, torch.Tensor]]:
        def _to(x: Any) -> Any:
            return x.to(device=device, non_blocking=non_blocking, **kwargs) if isinstance(x, torch.Tensor) else x

        image = _to(batchdata["image"]) if "image" in batchdata else None
        label = _to(batchdata["label"]) if "label" in batchdata else None
        extra = {k: _to(batchdata[k]) for k in self.extra_keys if k in batchdata}
        return image, label, (), extra
