import numpy as np
import pytest
import torch

from shared.bundle.errors import InputError, MissingInputError
from shared.data.checks import check_label_values, check_volume, read_json, read_volume


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
