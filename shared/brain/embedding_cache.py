# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
On-disk cache of frozen-encoder embeddings, keyed by the input file's content, the preprocessing settings and
the encoder weights: a changed file, setting or weight gives a new key, so stale entries are never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import torch

from shared.inputs import file_digest

__all__ = ["EmbeddingCache"]


class EmbeddingCache:
    """
    A folder of ``<key[:2]>/<key>.pt`` files, each ``{"embeddings": Tensor, "info": dict}``, written atomically.

    Args:
        cache_dir: the folder (created on first write).
        version: bump when the stored format or the meaning of an entry changes.
    """

    def __init__(self, cache_dir: str, version: int = 1) -> None:
        self.cache_dir = os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
        self.version = version
        self.hits = 0
        self.misses = 0

    def key(self, source: str, settings: dict[str, Any], weights: str) -> str:
        """Cache key of ``source`` (file or folder) under preprocessing ``settings`` and encoder ``weights`` id."""
        payload = {"v": self.version, "file": file_digest(source), "settings": settings, "weights": weights}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.cache_dir, key[:2], f"{key}.pt")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None (unknown key or unreadable file, which is then recomputed)."""
        p = self.path(key)
        if not os.path.isfile(p):
            self.misses += 1
            return None
        try:
            entry = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a truncated or foreign file is a miss, not a crash
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, key: str, embeddings: torch.Tensor, info: dict[str, Any] | None = None) -> str:
        p = self.path(key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(p), suffix=".tmp")
        os.close(fd)
        try:
            emb = embeddings.detach().cpu().contiguous().as_subclass(torch.Tensor)  # plain tensor: weights_only loads
            torch.save({"embeddings": emb, "info": info or {}}, tmp)
            os.replace(tmp, p)  # atomic: readers never see a half-written entry
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return p
