# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import torch

from shared.brain.embedding_cache import EmbeddingCache
from shared.inputs import file_digest


def test_file_digest_and_keys(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"abc")
    d1 = file_digest(str(a))
    assert d1 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    series = tmp_path / "series"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"x")
    (series / "2.dcm").write_bytes(b"y")
    s1 = file_digest(str(series))
    (series / "2.dcm").write_bytes(b"z")
    assert file_digest(str(series)) != s1
    cache = EmbeddingCache(str(tmp_path / "c"))
    k = cache.key(str(a), {"n": 50}, "w1")
    assert k == cache.key(str(a), {"n": 50}, "w1")
    assert len({k, cache.key(str(a), {"n": 40}, "w1"), cache.key(str(a), {"n": 50}, "w2")}) == 3


def test_put_get_roundtrip(tmp_path):
    cache = EmbeddingCache(str(tmp_path / "c"))
    assert cache.get("ab" * 32) is None and cache.misses == 1
    path = cache.put("ab" * 32, torch.arange(6.0).view(2, 3), {"slice_indices": [1, 2, 3]})
    assert path.endswith(".pt") and not [p for p in (tmp_path / "c").rglob("*.tmp")]
    entry = cache.get("ab" * 32)
    assert torch.equal(entry["embeddings"], torch.arange(6.0).view(2, 3)) and entry["info"]["slice_indices"] == [
        1,
        2,
        3,
    ]
