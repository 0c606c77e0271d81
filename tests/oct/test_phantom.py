# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
import os

import numpy as np
import pytest

from shared.oct import phantom as oct_phantom
from shared.oct.phantom import phantom_settings, synthesize_oct_volume, write_oct_phantom_dataset


def _rnfl_thickness(vol):
    """Voxels per A-scan brighter than the RNFL band threshold just below the inner surface, per hemiretina."""
    v = vol.astype(float)
    n_s = v.shape[0]
    bright = v > 150
    # count bright voxels in the inner part of the macula-side columns (away from the cup)
    cols = slice(0, v.shape[2] // 2)
    return bright[: n_s // 2, :, cols].sum() / (n_s // 2), bright[n_s - n_s // 2 :, :, cols].sum() / (n_s // 2)


def test_volume_shape_layers_and_glaucoma_asymmetry():
    rng = np.random.default_rng(0)
    healthy = synthesize_oct_volume((32, 64, 32), glaucoma=False, rng=rng)
    assert healthy.shape == (32, 64, 32) and healthy.dtype == np.uint8
    profile = healthy.astype(float).mean(axis=(0, 2))
    assert profile[:8].mean() < 20  # dark vitreous above the retina
    assert profile.max() > 3 * profile[:8].mean()  # bright layers
    asym_h, asym_g = [], []
    for seed in range(6):
        h = _rnfl_thickness(synthesize_oct_volume((32, 64, 32), False, np.random.default_rng(seed)))
        g = _rnfl_thickness(synthesize_oct_volume((32, 64, 32), True, np.random.default_rng(seed)))
        asym_h.append(abs(h[0] - h[1]) / max(h))
        asym_g.append(abs(g[0] - g[1]) / max(g))
    # glaucoma thins one hemiretina more than the other; healthy eyes are nearly symmetric
    assert np.mean(asym_g) > 2 * np.mean(asym_h)


def test_dataset_writer(tmp_path):
    items = write_oct_phantom_dataset(str(tmp_path), num_patients=4, shape=(16, 24, 16), seed=1)
    assert len(items) == 8
    assert sorted(os.listdir(tmp_path)) == ["datalist.json", "glaucoma", "non_glaucoma"]
    assert {i["label"] for i in items} == {0, 1}
    for i in items:
        assert os.path.basename(i["image"]).startswith(i["patient_id"] + "_")
        assert np.load(i["image"]).shape == (16, 24, 16)
    with open(tmp_path / "datalist.json") as f:
        assert len(json.load(f)["data"]) == 8
    assert phantom_settings(str(tmp_path)) == {
        "num_patients": 4,
        "shape": [16, 24, 16],
        "seed": 1,
        "eyes_per_patient": 2,
        "fmt": "npy",
    }
    with pytest.raises(FileExistsError, match="is not empty"):
        write_oct_phantom_dataset(str(tmp_path), num_patients=2, shape=(8, 8, 8))
    nii = write_oct_phantom_dataset(str(tmp_path / "nii"), num_patients=2, shape=(8, 8, 8), fmt="nii.gz")
    assert nii[0]["image"].endswith(".nii.gz") and os.path.isfile(nii[0]["image"])


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return synthesize_oct_volume(*args, **kwargs)

    monkeypatch.setattr(oct_phantom, "synthesize_oct_volume", failing)
    with pytest.raises(KeyboardInterrupt):
        write_oct_phantom_dataset(str(tmp_path / "demo"), num_patients=4, shape=(8, 8, 8))
    assert os.listdir(tmp_path) == []  # neither a partial dataset nor its hidden temporary folder
