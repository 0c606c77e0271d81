# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from shared.brain.axial_slices import AxialSlicesd
from shared.brain.slice_embedding import SliceEmbeddingd
from shared.networks.dino_atten3d import DinoAtten3D
from shared.networks.dinov2 import DinoV2ViT


def backbone(seed=0):
    torch.manual_seed(seed)
    return DinoV2ViT(img_size=28, embed_dim=24, depth=1, num_heads=2).eval()


def write_volume(path, seed=0, depth=8):
    rng = np.random.default_rng(seed)
    nib.save(nib.Nifti1Image(rng.random((12, 14, depth)).astype(np.float32), np.eye(4)), str(path))
    return str(path)


def test_cache_hit_and_invalidation(tmp_path):
    img = write_volume(tmp_path / "a.nii.gz")
    cache = tmp_path / "cache"
    bb = backbone()
    t = SliceEmbeddingd("image", bb, AxialSlicesd("image", num_slices=4, spatial_size=28), cache_dir=str(cache))
    first = t({"image": img})
    assert first["image"].shape == (24, 4) and first["image_slice_indices"] == "2,3,4,5"
    assert t.cache.misses == 1 and len(list(cache.rglob("*.pt"))) == 1
    second = t({"image": img})
    assert t.cache.hits == 1 and torch.equal(second["image"], first["image"])
    assert second["image"].meta["filename_or_obj"] == img

    # a changed file (same name) is a new entry
    write_volume(tmp_path / "a.nii.gz", seed=1)
    os.utime(img, ns=(1, 1))
    changed = t({"image": img})
    assert t.cache.misses == 2 and not torch.equal(changed["image"], first["image"])

    # changed preprocessing settings and changed weights are new entries too
    t2 = SliceEmbeddingd("image", bb, AxialSlicesd("image", num_slices=2, spatial_size=28), cache_dir=str(cache))
    assert t2({"image": img})["image"].shape == (24, 2) and t2.cache.misses == 1
    t3 = SliceEmbeddingd("image", backbone(seed=5), t.slicer, cache_dir=str(cache))
    t3({"image": img})
    assert t3.cache.misses == 1 and len(list(cache.rglob("*.pt"))) == 4
    t4 = SliceEmbeddingd("image", bb, t.slicer, cache_dir=str(cache), axcodes="LPS")
    t4({"image": img})
    assert t4.cache.misses == 1


def test_cached_embeddings_equal_network_slice_path(tmp_path):
    img = write_volume(tmp_path / "b.nii.gz", depth=6)
    slicer = AxialSlicesd("image", num_slices=3, spatial_size=28)
    net = DinoAtten3D(2, backbone=backbone(), embed_dim=24, attention_hidden=8, hidden_dims=(16, 8)).eval()
    t = SliceEmbeddingd("image", net.backbone, slicer, cache_dir=str(tmp_path / "c"))
    t.precompute([{"image": img}])
    emb = t({"image": img})["image"]
    assert t.cache.hits == 1
    from monai.transforms import LoadImaged, Orientationd

    d = Orientationd("image", "RAS")(LoadImaged("image", ensure_channel_first=True)({"image": img}))
    slices = slicer(d)["image"]
    with torch.no_grad():
        torch.testing.assert_close(net(emb.unsqueeze(0)), net(slices.unsqueeze(0)), rtol=1e-5, atol=1e-6)


def test_corrupt_entry_is_recomputed_and_no_cache_mode(tmp_path):
    img = write_volume(tmp_path / "c.nii.gz")
    t = SliceEmbeddingd(
        "image", backbone(), AxialSlicesd("image", num_slices=2, spatial_size=28), cache_dir=str(tmp_path / "cache")
    )
    ref = t({"image": img})["image"]
    entry = next((tmp_path / "cache").rglob("*.pt"))
    entry.write_bytes(b"truncated")
    torch.testing.assert_close(t({"image": img})["image"], ref)
    assert t.cache.misses == 2
    nocache = SliceEmbeddingd("image", t.backbone, t.slicer, cache_dir=None)
    torch.testing.assert_close(nocache({"image": img})["image"], ref)
    assert nocache.precompute([{"image": img}]) == 0
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        t({"image": str(tmp_path / "missing.nii.gz")})


def test_weights_loaded_later_change_the_key(tmp_path):
    """A checkpoint loaded into the backbone after the transform was built must not reuse the old entries."""
    img = write_volume(tmp_path / "d.nii.gz")
    bb = backbone(seed=0)
    t = SliceEmbeddingd(
        "image", bb, AxialSlicesd("image", num_slices=2, spatial_size=28), cache_dir=str(tmp_path / "c")
    )
    before = t({"image": img})["image"]
    bb.load_state_dict(backbone(seed=7).state_dict())
    after = t({"image": img})["image"]
    assert t.cache.misses == 2 and not torch.equal(before, after)
    torch.testing.assert_close(after, t.compute(img)[0])


def test_precision_is_part_of_the_cache_key(tmp_path, monkeypatch):
    """An fp32 entry is never served to a bf16 run nor the reverse; "auto" shares the entries of what it resolves to."""
    from shared.networks import precision

    img = write_volume(tmp_path / "e.nii.gz")
    bb = backbone()
    t = SliceEmbeddingd(
        "image", bb, AxialSlicesd("image", num_slices=3, spatial_size=28), cache_dir=str(tmp_path / "c")
    )
    fp32 = t({"image": img})["image"]
    bb.precision = "bf16"
    bf16 = t({"image": img})["image"]
    assert t.cache.misses == 2 and len(list((tmp_path / "c").rglob("*.pt"))) == 2
    assert not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, t.compute(img)[0], rtol=0, atol=0)
    assert torch.nn.functional.cosine_similarity(bf16, fp32, dim=0).min() >= 0.999
    bb.precision = "fp32"
    assert torch.equal(t({"image": img})["image"], fp32) and t.cache.hits == 1
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    bb.precision = "auto"
    assert t.settings["precision"] == "bf16"
    assert torch.equal(t({"image": img})["image"], bf16) and t.cache.hits == 2 and t.cache.misses == 2
