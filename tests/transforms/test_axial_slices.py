import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from shared.transforms.axial_slices import IMAGENET_MEAN, IMAGENET_STD, AxialSlices, AxialSlicesd, select_slice_indices


def test_slice_selection():
    assert select_slice_indices(10, 4) == [3, 4, 5, 6]
    assert select_slice_indices(11, 3, slice_stride=2) == [3, 5, 7]
    assert select_slice_indices(10, None, slice_stride=3) == [0, 3, 6, 9]
    assert select_slice_indices(5, 0) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="vol.nii has 5 axial slices, fewer than the 6 requested"):
        select_slice_indices(5, 6, source="vol.nii")


def test_output_layout_range_and_orientation():
    vol = torch.zeros(1, 20, 30, 12)
    vol[0, :, 25:, :] = 5.0  # anterior band (high y in RAS)
    vol[0, 0, 0, :] = -1.0  # one dark voxel: per-slice minimum
    out, idx = AxialSlices(num_slices=4, spatial_size=28)(vol)
    assert out.shape == (3, 28, 28, 4) and out.dtype == torch.float32 and idx == [4, 5, 6, 7]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    raw = out * std + mean
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5  # each slice min-max scaled before normalisation
    assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[0], raw[2], atol=1e-5)
    # display orientation: anterior is at the top rows
    assert raw[0, :4, 14, 0].mean() > 0.9 and raw[0, -8:, 14, 0].mean() < 0.5


def test_dict_version_records_indices_and_file():
    img = MetaTensor(torch.rand(1, 16, 16, 9), meta={"filename_or_obj": "/data/a.nii.gz"})
    d = AxialSlicesd("image", num_slices=None, slice_stride=4, spatial_size=14)({"image": img})
    assert d["image"].shape == (3, 14, 14, 3) and d["image_slice_indices"] == "0,4,8"
    assert d["image"].meta["filename_or_obj"] == "/data/a.nii.gz"


@pytest.mark.parametrize(
    "img, match",
    [
        (torch.rand(1, 16, 16), "2D image"),
        (torch.rand(1, 16, 1, 8), "2D image"),
        (torch.rand(2, 16, 16, 8), "single-channel"),
        (torch.full((1, 8, 8, 8), float("nan")), "NaN"),
        (torch.rand(1, 8, 8, 3), "fewer than the 4 requested"),
    ],
)
def test_bad_inputs_name_the_file(img, match):
    t = AxialSlicesd("image", num_slices=4, spatial_size=14)
    with pytest.raises(ValueError, match=match) as e:
        t({"image": MetaTensor(img, meta={"filename_or_obj": "/data/bad.nii.gz"})})
    assert "/data/bad.nii.gz" in str(e.value)


def test_constant_slice_is_finite():
    out, _ = AxialSlices(num_slices=2, spatial_size=14)(np.ones((1, 10, 10, 4), np.float32))
    assert torch.isfinite(out).all()
