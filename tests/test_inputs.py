# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import numpy as np
import pytest
import torch

from shared.errors import InputError, MissingInputError
from shared.inputs import check_folder, check_image_size, check_label_values, check_volume, read_json, read_volume
from tests.crafted import claiming_nifti, claiming_npy


def test_a_good_volume_passes():
    check_volume(np.random.rand(8, 8, 8).astype(np.float32), "ct.nii.gz")
    check_volume(torch.rand(1, 8, 8, 8), "ct.nii.gz", channel_first=True)
    check_volume(np.random.rand(8, 8, 8, 1), "ct.nii.gz")  # a stored trailing singleton axis


@pytest.mark.parametrize(
    "array, kwargs, message",
    [
        (np.random.rand(8, 8), {}, r"has shape \(8, 8\): expected a 3D volume"),
        (np.random.rand(8, 8, 8, 3), {}, r"has 3 channels \(shape \(8, 8, 8, 3\)\): expected 1"),
        (np.random.rand(2, 8, 8, 8), {"channel_first": True}, "has 2 channels"),
        (np.zeros((4, 4, 4)), {}, r"is constant \(every voxel is 0.0\)"),
    ],
)
def test_wrong_rank_channels_and_constant_volumes(array, kwargs, message):
    with pytest.raises(InputError, match=message) as e:
        check_volume(array, "/data/ct.nii.gz", **kwargs)
    assert "/data/ct.nii.gz" in str(e.value)


def test_non_finite_voxels_are_counted_and_located():
    a = np.random.rand(6, 6, 6).astype(np.float32)
    a[1, 2, 3], a[4, 4, 4], a[5, 0, 0] = np.nan, np.inf, np.nan
    with pytest.raises(InputError, match=r"3 non-finite voxel\(s\) \(2 NaN, 1 Inf\), the first at index \(1, 2, 3\)"):
        check_volume(a, "ct.nii.gz")


def test_label_values():
    check_label_values(np.array([0, 1, 2, 2]), "seg.nii.gz", range(3))
    with pytest.raises(InputError, match=r"values \[7\] outside the configured classes \[0, 1, 2\]: check num_classes"):
        check_label_values(np.array([0, 7]), "seg.nii.gz", range(3), hint="check num_classes")
    with pytest.raises(InputError, match=r"non-integer values, e.g. \[0.5\]"):
        check_label_values(np.array([0.0, 0.5, 1.0]), "seg.nii.gz", range(3))


def test_json_errors_name_the_file_line_and_column(tmp_path):
    bad = tmp_path / "datalist.json"
    bad.write_text('{\n  "training": [\n    {"image": "a.nii.gz",}\n  ]\n}\n')
    with pytest.raises(InputError, match=r"datalist.json is not valid JSON: .* at line 3, column 26"):
        read_json(bad)
    with pytest.raises(MissingInputError, match="does not exist"):
        read_json(tmp_path / "absent.json")
    (tmp_path / "ok.json").write_text('{"training": []}')
    assert read_json(tmp_path / "ok.json") == {"training": []}


def _nifti(path, array=None):
    import nibabel as nib

    array = np.arange(512, dtype=np.int16).reshape(8, 8, 8) if array is None else array
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def _noise():
    return np.random.default_rng(0).integers(-1000, 1000, (24, 24, 24)).astype(np.int16)


def test_read_volume_decodes_every_voxel(tmp_path):
    data, affine = read_volume(_nifti(tmp_path / "ct.nii.gz"))
    assert data.shape == (8, 8, 8) and data[7, 7, 7] == 511 and affine[0, 0] == 2.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
        (
            lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64)),
            "is not gzip-compressed although its name ends in .gz",
        ),
        (lambda p: p.write_bytes(__import__("gzip").compress(b"hello" * 100)), "is not a NIfTI image"),
        (lambda p: p.write_bytes(_nifti(p).read_bytes()[:40]), "is truncated or corrupt: its gzip stream ends early"),
        (lambda p: p.write_bytes(_nifti(p, _noise()).read_bytes()[:9000]), "is truncated or corrupt: its header reads"),
    ],
)
def test_read_volume_tells_empty_mislabelled_and_truncated_files_apart(tmp_path, make, message):
    path = tmp_path / "ct.nii.gz"
    make(path)
    with pytest.raises(InputError, match=message) as e:
        read_volume(path, "image")
    assert str(path) in str(e.value)


def test_read_volume_uncompressed_and_other_formats(tmp_path):
    path = _nifti(tmp_path / "ct.nii")
    path.write_bytes(path.read_bytes()[:600])  # header (352 bytes) and part of the voxels
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_volume(path)
    (tmp_path / "ct.nrrd").write_text("not an image")
    with pytest.raises(InputError, match=r"Cannot read the image .*ct.nrrd"):
        read_volume(tmp_path / "ct.nrrd")
    with pytest.raises(MissingInputError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")


def test_an_image_claiming_more_than_the_limit_is_refused_before_decoding(tmp_path):
    """A 16 GiB claim in a file of a few hundred bytes: refused from the header, nothing allocated."""
    path = claiming_nifti(tmp_path / "huge.nii.gz", (2048, 2048, 1024))
    with pytest.raises(InputError, match=r"claims 2048 x 2048 x 1024 float32 voxels, 16.0 GiB as float32") as e:
        read_volume(path, max_gib=4.0)
    assert str(path) in str(e.value) and "max_image_gib" in str(e.value)


def test_the_limit_never_exceeds_the_memory_available(tmp_path, monkeypatch):
    import shared.cache as cache

    monkeypatch.setattr(cache, "available_memory", lambda: 2**30)  # 1 GiB free
    path = claiming_nifti(tmp_path / "big.nii", (1024, 1024, 512))  # 2 GiB as float32
    with pytest.raises(InputError, match=r"the 1.0 GiB of memory available \(max_image_gib is 4\)"):
        check_image_size(path, 4.0)
    check_image_size(claiming_nifti(tmp_path / "fits.nii", (512, 512, 256)), 4.0)  # 0.25 GiB


def test_a_small_gzip_that_inflates_past_the_limit_is_refused(tmp_path):
    """The header claims 8^3 voxels; the gzip stream holds 64 MiB more, which no reader would decode but which
    says the file is not what it claims."""
    path = claiming_nifti(tmp_path / "bomb.nii.gz", (8, 8, 8), data=bytes(64 * 2**20))
    assert path.stat().st_size < 2**20
    with pytest.raises(InputError, match=r"inflates to 0.1 GiB, more than the 0.05 GiB limit"):
        check_image_size(path, 0.05)
    check_image_size(path, 1.0)


def test_npy_headers_are_sized_too(tmp_path):
    path = claiming_npy(tmp_path / "oct.npy", (4096, 4096, 4096))
    with pytest.raises(InputError, match=r"claims 4096 x 4096 x 4096 uint8 voxels, 256.0 GiB"):
        check_image_size(path, 4.0)


def test_a_folder_id_that_names_a_file_says_so(tmp_path):
    afile = tmp_path / "scans.nii.gz"
    afile.write_bytes(b"x")
    with pytest.raises(InputError, match=r"dataset_dir .*scans.nii.gz is a file, not a folder; expected images/"):
        check_folder(afile, "dataset_dir", "expected images/ and labels/")
    with pytest.raises(MissingInputError, match=r"dataset_dir .*nowhere does not exist"):
        check_folder(tmp_path / "nowhere")
    check_folder(tmp_path)
