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

__all__ = ["file_digest", "EmbeddingCache"]

_CHUNK = 1 << 20
# (path, size, mtime_ns) -> digest, so an epoch does not re-hash unchanged files
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, or of every file below a directory (e.g. a DICOM series), in name order."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        files = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
        if not files:
            raise FileNotFoundError(f"image directory is empty: {path}")
        h = hashlib.sha256()
        for f in files:
            h.update(os.path.relpath(f, path).encode())
            h.update(file_digest(f).encode())
        return h.hexdigest()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


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
