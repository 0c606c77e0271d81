# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Frozen-encoder slice embeddings of a volume, read from / written to an on-disk cache."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import LoadImage, MapTransform, Orientation

from shared.brain.axial_slices import AxialSlices, AxialSlicesd
from shared.brain.embedding_cache import EmbeddingCache
from shared.networks.dinov2 import weights_fingerprint

__all__ = ["SliceEmbeddingd"]

logger = logging.getLogger(__name__)


class SliceEmbeddingd(MapTransform):
    """
    Replace an image path by the frozen encoder's embeddings of its axial slices: (D, S) per volume, the layout
    :class:`~shared.networks.dino_atten3d.DinoAtten3D` takes instead of slices.

    The volume is read with ``LoadImage`` (channel first), reoriented to ``axcodes`` and cut into slices by
    ``slicer`` — the same steps the inference preprocessing runs — then embedded by ``backbone`` in eval mode.
    With ``cache_dir`` the result is stored under a key made of the file content, the slicing settings,
    ``axcodes``, the backbone's compute precision and its weights, so a training epoch only reads small tensors
    from disk, and an entry computed in one precision is never served to a run in another.

    Args:
        keys: keys holding image paths (or already loaded channel-first volumes, which are never cached).
        backbone: the slice encoder, (N, 3, H, W) -> (N, D); it runs on its own device.
        slicer: an :class:`AxialSlices` / :class:`AxialSlicesd` holding the slicing settings.
        cache_dir: cache folder; None disables the cache (every call recomputes).
        axcodes: orientation before slicing.
        batch_size: slices per backbone call.
        reader: optional reader name/class for ``LoadImage``.
        allow_missing_keys: do not raise for missing keys.

    Writes ``{key}_slice_indices`` (comma-separated string) next to the embeddings.
    """

    def __init__(
        self,
        keys: KeysCollection,
        backbone: nn.Module,
        slicer: AxialSlices | AxialSlicesd,
        cache_dir: str | None = None,
        axcodes: str = "RAS",
        batch_size: int = 32,
        reader: Any = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.backbone = backbone
        self.slicer = slicer.slicer if isinstance(slicer, AxialSlicesd) else slicer
        self.cache = EmbeddingCache(cache_dir) if cache_dir else None
        self.axcodes = axcodes
        self.batch_size = batch_size
        self.loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)
        self.orient = Orientation(axcodes=axcodes)
        self._fingerprint: str | None = None
        self._state: tuple = ()

    @property
    def settings(self) -> dict[str, Any]:
        """Everything besides the file and the weights that changes the embeddings (part of the cache key)."""
        return {**self.slicer.settings, "axcodes": self.axcodes, "precision": self.precision()}

    def device(self) -> torch.device:
        param = next(self.backbone.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def precision(self) -> str:
        """What the backbone computes in on its device: "bf16" / "fp32" for a :class:`DinoV2ViT` (its
        ``precision`` resolved, so "auto" shares entries with what it resolves to), "native" for an encoder that
        does not say (its parameter dtypes are part of the weights fingerprint)."""
        resolve = getattr(self.backbone, "compute_precision", None)
        return resolve(self.device()) if callable(resolve) else "native"

    def weights_id(self) -> str:
        """Fingerprint of the backbone weights; hashed again only when a tensor was replaced or changed in place
        (e.g. a checkpoint loaded into the network after this transform was built)."""
        state = tuple((t.data_ptr(), t._version) for t in self.backbone.state_dict().values())
        if self._fingerprint is None or state != self._state:
            self._fingerprint, self._state = weights_fingerprint(self.backbone), state
        return self._fingerprint

    @torch.no_grad()
    def embed(self, slices: torch.Tensor) -> torch.Tensor:
        """(3, H, W, S) slices -> (D, S) embeddings."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            device = self.device()
            flat = torch.as_tensor(slices).float().permute(3, 0, 1, 2)
            outs = [
                self.backbone(flat[i : i + self.batch_size].to(device)).float().cpu()
                for i in range(0, flat.shape[0], self.batch_size)
            ]
        finally:
            self.backbone.train(was_training)
        return torch.cat(outs, 0).t().contiguous()

    def compute(self, image: Any) -> tuple[torch.Tensor, list[int]]:
        """Load (if a path), orient, slice and embed one volume."""
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else ""
        img = self.loader(source) if source else image
        if not source:
            source = str(getattr(img, "meta", {}).get("filename_or_obj", "")) or "image"
        img = self.orient(img)
        slices, idx = self.slicer(img, source=source)
        return self.embed(slices), idx

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            is_path = isinstance(image, (str, os.PathLike))
            entry = None
            if self.cache is not None and is_path:
                ckey = self.cache.key(os.fspath(image), self.settings, self.weights_id())
                entry = self.cache.get(ckey)
            if entry is None:
                emb, idx = self.compute(image)
                if self.cache is not None and is_path:
                    self.cache.put(ckey, emb, {"slice_indices": idx, "source": os.fspath(image)})
            else:
                emb, idx = entry["embeddings"], list(entry["info"]["slice_indices"])
            name = os.fspath(image) if is_path else str(getattr(image, "meta", {}).get("filename_or_obj", ""))
            d[key] = MetaTensor(emb, meta={"filename_or_obj": name})
            d[f"{key}_slice_indices"] = ",".join(str(i) for i in idx)
        return d

    def precompute(self, data: Sequence[Mapping[Hashable, Any]]) -> int:
        """
        Fill the cache for every item of a datalist in this process (e.g. on the GPU, before data-loader
        workers start). Returns the number of volumes that had to be computed.
        """
        if self.cache is None:
            return 0
        misses0, t0 = self.cache.misses, time.perf_counter()
        for i, item in enumerate(data):
            self({k: item[k] for k in self.key_iterator(dict(item))})
            if (i + 1) % 10 == 0:
                logger.info(f"slice embeddings: {i + 1}/{len(data)} volumes ready")
        computed = self.cache.misses - misses0
        logger.info(
            f"slice embeddings: {len(data)} volumes, {computed} computed, {len(data) - computed} from cache "
            f"{self.cache.cache_dir} ({time.perf_counter() - t0:.1f} s)"
        )
        return computed
