# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import logging

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import PersistentDataset
from monai.transforms import Compose, EnsureTyped, LoadImaged, Orientationd, Spacingd

from shared.cache import CacheDataset, available_memory, case_bytes, estimate_cache_bytes, memory_aware_dataset

PIXDIM = (1.0, 1.0, 1.5)
DTYPES = {"image": "float32", "label": "uint8"}


def _write_case(folder, name, shape=(10, 12, 8), affine=None):
    affine = np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine
    img = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    nib.save(nib.Nifti1Image(img, affine), folder / f"{name}_img.nii.gz")
    nib.save(nib.Nifti1Image((img > 0).astype(np.uint8), affine), folder / f"{name}_lbl.nii.gz")
    return {"image": str(folder / f"{name}_img.nii.gz"), "label": str(folder / f"{name}_lbl.nii.gz")}


def _pipeline(pixdim=PIXDIM):
    keys = ["image", "label"]
    return Compose(
        [
            LoadImaged(keys, ensure_channel_first=True),
            Orientationd(keys, axcodes="RAS"),
            Spacingd(keys, pixdim=pixdim, mode=["bilinear", "nearest"]),
            EnsureTyped("image", dtype=torch.float32),
            EnsureTyped("label", dtype=torch.uint8),
        ]
    )


def _cached_bytes(item, pixdim=PIXDIM) -> int:
    out = _pipeline(pixdim)(item)
    return sum(out[k].numel() * out[k].element_size() for k in ("image", "label"))


def test_estimate_matches_what_the_pipeline_caches(tmp_path):
    item = _write_case(tmp_path, "a")
    # 10 x 12 x 8 voxels of 2 x 2 x 3 mm to 1 x 1 x 1.5 mm: 19 x 23 x 15; float32 image, uint8 label
    assert case_bytes(item, pixdim=PIXDIM, dtypes=DTYPES) == 19 * 23 * 15 * (4 + 1)
    assert case_bytes(item, pixdim=PIXDIM, dtypes=DTYPES) == _cached_bytes(item)
    assert case_bytes(item, pixdim=None) == 10 * 12 * 8 * (4 + 4)  # no resampling, float32 by default


def test_estimate_follows_the_reorientation(tmp_path):
    # voxel axes stored as (z, y, x) with an LPS-like flip: an anisotropic pixdim must meet the right axis
    affine = np.array([[0, 0, -2.0, 0], [0, 2.0, 0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    item = _write_case(tmp_path, "b", shape=(8, 12, 10), affine=affine)
    assert case_bytes(item, pixdim=PIXDIM, dtypes=DTYPES) == _cached_bytes(item)


def test_estimate_reads_itk_headers(tmp_path):
    import SimpleITK as sitk

    item = {}
    for key, dtype in (("image", np.float32), ("label", np.uint8)):
        img = sitk.GetImageFromArray(np.zeros((8, 12, 10), dtype=dtype))  # (z, y, x) array: size 10 x 12 x 8
        img.SetSpacing((2.0, 2.0, 3.0))
        item[key] = str(tmp_path / f"{key}.nrrd")
        sitk.WriteImage(img, item[key])
    assert case_bytes(item, pixdim=PIXDIM, dtypes=DTYPES) == 19 * 23 * 15 * 5 == _cached_bytes(item)


def test_unreadable_file_is_named(tmp_path):
    item = _write_case(tmp_path, "c")
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    item["label"] = str(tmp_path / "broken.nii.gz")
    with pytest.raises(ValueError, match="broken.nii.gz"):
        estimate_cache_bytes([item], pixdim=PIXDIM)


@pytest.fixture
def cases(tmp_path):
    return [_write_case(tmp_path, f"case{i}") for i in range(4)]


def _decide(cases, caplog, available, **kwargs):
    per_case = case_bytes(cases[0], pixdim=PIXDIM, dtypes=DTYPES)
    with caplog.at_level(logging.INFO, logger="shared.cache"):
        ds = memory_aware_dataset(
            cases, _pipeline(), num_workers=0, pixdim=PIXDIM, dtypes=DTYPES, available=available * per_case, **kwargs
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.cache"]
    assert len(lines) == 1, lines
    return ds, lines[0]


def test_fits_in_memory(cases, caplog):
    ds, line = _decide(cases, caplog, available=100)  # room for 50 cases at memory_fraction 0.5
    assert type(ds) is CacheDataset and ds.cache_num == 4
    assert "in memory" in line and "4 cases" in line


def test_too_big_goes_to_disk(cases, caplog, tmp_path):
    ds, line = _decide(cases, caplog, available=4, cache_dir=tmp_path / "cache")  # room for 2 of 4
    assert isinstance(ds, PersistentDataset) and "on disk" in line and str(tmp_path / "cache") in line
    first = ds[0]
    assert first["image"].shape[1:] == (19, 23, 15)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # written once, whole (MONAI writes then renames)


def test_too_big_without_folder_caches_what_fits(cases, caplog):
    ds, line = _decide(cases, caplog, available=5)  # budget 2.5 cases
    assert type(ds) is CacheDataset and ds.cache_num == 2
    assert "first 2 cases" in line and "cache_dir" in line


def test_cache_rate_counts_only_the_cases_it_caches(cases, caplog):
    ds, line = _decide(cases, caplog, available=4, cache_rate=0.5)  # 2 cases needed, 2 allowed
    assert type(ds) is CacheDataset and ds.cache_num == 2 and "in memory" in line


def test_processes_of_one_machine_share_the_budget(cases, caplog, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    ds, line = _decide(cases, caplog, available=10)  # 5 cases' budget, 2.5 each
    assert ds.cache_num == 2 and "over 2 processes" in line


def test_available_memory_is_positive():
    assert available_memory() > 0


def test_dicom_folder_is_sized_by_loading_it(tmp_path):
    """A DICOM series is a folder, which no header reader opens: MONAI loads it instead."""
    import SimpleITK as sitk

    folder = tmp_path / "series"
    folder.mkdir()
    volume = sitk.GetImageFromArray(np.zeros((4, 12, 10), dtype=np.int16))  # 10 x 12 x 4 voxels
    volume.SetSpacing((2.0, 2.0, 3.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # one series: the same series UID on every slice
    series = "1.2.826.0.1.3680043.2.1125.1"
    for z in range(4):
        sl = volume[:, :, z]
        tags = {"0020|000e": series, "0008|0018": f"{series}.{z + 1}", "0020|0013": str(z + 1)}
        tags.update({"0020|0032": f"0\\0\\{3.0 * z}", "0028|0030": "2\\2", "0018|0050": "3"})
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z}.dcm"))
        writer.Execute(sl)
    assert case_bytes({"image": str(folder)}, keys=["image"], pixdim=None) == 10 * 12 * 4 * 4
