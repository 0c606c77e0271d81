# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from shared.brain.axial_slices import IMAGENET_MEAN, IMAGENET_STD, AxialSlices, AxialSlicesd, select_slice_indices


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


def plain_axial_slices(vol, idx, size, keep_aspect=True):
    """The slicing recipe written step by step (every slice, anti-aliased resize): the reference of the fast path."""
    s = vol[0].double()[:, :, idx].permute(2, 1, 0).flip(1)
    lo, hi = s.amin((1, 2), keepdim=True), s.amax((1, 2), keepdim=True)
    s = (s - lo) / (hi - lo)
    if keep_aspect:
        side = max(s.shape[1:])
        ph, pw = side - s.shape[1], side - s.shape[2]
        s = torch.nn.functional.pad(s, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    s = torch.nn.functional.interpolate(s[:, None].float(), size=(size, size), mode="bilinear", antialias=True)[:, 0]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    return (s.permute(1, 2, 0)[None] - mean) / std


@pytest.mark.parametrize(
    "shape, dtype, kwargs",
    [
        ((1, 20, 30, 12), torch.float32, dict(num_slices=4, spatial_size=56)),  # enlarged
        ((1, 60, 40, 15), torch.int16, dict(num_slices=None, slice_stride=3, spatial_size=28)),  # shrunk, int data
        ((1, 30, 20, 9), torch.float64, dict(num_slices=3, slice_stride=2, spatial_size=42, keep_aspect=False)),
    ],
)
def test_matches_the_plain_recipe_and_leaves_the_input_alone(shape, dtype, kwargs):
    torch.manual_seed(0)
    vol = (torch.rand(shape) * 1000 - 200).to(dtype)
    before = vol.clone()
    out, idx = AxialSlices(**kwargs)(vol)
    expected = plain_axial_slices(vol, idx, kwargs["spatial_size"], kwargs.get("keep_aspect", True))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(vol, before)


def test_only_kept_slices_must_be_finite():
    vol = torch.rand(1, 10, 10, 8)
    vol[0, 3, 3, 0] = float("nan")  # outside the central 4 slices: not used, not an error
    assert torch.isfinite(AxialSlices(num_slices=4, spatial_size=14)(vol)[0]).all()
    vol[0, 3, 3, 4] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        AxialSlices(num_slices=4, spatial_size=14)(vol, source="/data/inf.nii.gz")
