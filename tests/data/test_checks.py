import numpy as np
import pytest
import torch

from shared.bundle.errors import InputError, MissingInputError
from shared.data.checks import check_label_values, check_volume, read_json


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
