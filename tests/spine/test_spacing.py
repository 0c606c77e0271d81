# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""shared.spine.spacing.Spacingd: MONAI's Spacingd that tolerates non-dictionary ``<key>_*`` entries."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged
from monai.transforms import Spacingd as MonaiSpacingd

from shared.spine.spacing import Spacingd


@pytest.fixture
def loaded(tmp_path):
    path = tmp_path / "ct.nii.gz"
    data = np.random.default_rng(0).normal(size=(10, 12, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), str(path))
    return LoadImaged("image", ensure_channel_first=True, image_only=False)({"image": str(path)}), str(path)


def test_string_entry_kept_and_result_same_as_monai(loaded):
    d, path = loaded
    expected = MonaiSpacingd("image", pixdim=(1.0, 1.0, 1.0))(dict(d))
    # what MONAI Label adds to the data: MONAI's own Spacingd fails on it
    with pytest.raises(AttributeError):
        MonaiSpacingd("image", pixdim=(1.0, 1.0, 1.0))({**d, "image_path": path})
    out = Spacingd("image", pixdim=(1.0, 1.0, 1.0))({**d, "image_path": path})
    assert out["image_path"] == path
    assert out["image"].shape == expected["image"].shape
    assert out["image"].shape[1:] != d["image"].shape[1:]  # resampled
    torch.testing.assert_close(out["image"].as_tensor(), expected["image"].as_tensor())
    torch.testing.assert_close(out["image"].affine, expected["image"].affine)
    # meta dicts are still updated as MONAI does
    np.testing.assert_allclose(np.asarray(out["image_meta_dict"]["affine"]), np.asarray(expected["image"].affine))


def test_inverse(loaded):
    d, path = loaded
    t = Spacingd("image", pixdim=(1.0, 1.0, 1.0))
    out = t({**d, "image_path": path})
    back = t.inverse(out)
    assert back["image"].shape == d["image"].shape
    torch.testing.assert_close(back["image"].affine, d["image"].affine)
