# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Transposed

from shared.errors import InputError
from shared.oct.transforms import CheckOCTVolumed, channel_first_axes


def test_check_volume_errors_name_the_file(tmp_path):
    path = str(tmp_path / "P1_OD.npy")
    vol = np.ones((4, 5, 6), np.float32)
    vol[1, 2, 3] = np.nan
    np.save(path, vol)
    load = Compose(
        [LoadImaged("image"), EnsureChannelFirstd("image", channel_dim="no_channel"), CheckOCTVolumed("image")]
    )
    with pytest.raises(RuntimeError) as err:  # Compose wraps the error; the cause names the file
        load({"image": path})
    assert "P1_OD.npy holds 1 non-finite voxel(s) (1 NaN, 0 Inf), the first at index (0, 1, 2, 3)" in str(
        err.value.__cause__
    )
    with pytest.raises(InputError, match="has 2 channels"):
        CheckOCTVolumed("image")({"image": MetaTensor(torch.rand(2, 4, 4, 4))})
    with pytest.raises(InputError, match="is constant"):
        CheckOCTVolumed("image")({"image": MetaTensor(torch.ones(1, 4, 4, 4))})
    vol = np.arange(120, dtype=np.uint8).reshape(4, 5, 6)
    np.save(path, vol)
    assert load({"image": path})["image"].shape == (1, 4, 5, 6)
    np.save(path, vol[..., None])  # stored singleton axis, accepted by the header check too
    assert load({"image": path})["image"].shape == (1, 4, 5, 6)


def test_axis_reorder():
    idx = channel_first_axes([1, 0, 2])
    assert idx == [0, 2, 1, 3]
    out = Transposed("image", idx)({"image": torch.zeros(1, 4, 5, 6)})["image"]
    assert out.shape == (1, 5, 4, 6)
    with pytest.raises(InputError, match="config id 'axis_order' is \\[0, 0, 2\\]: expected a permutation"):
        channel_first_axes([0, 0, 2])
