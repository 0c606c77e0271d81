# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage

from shared.spine.datalist import check_segmentation_pairs, image_datalist, segmentation_datalist
from shared.splits import select_split
from tests.conftest import SAMPLE_DATA
from tests.spine.ct_series import write_ct_series


def _write(path, array, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))


def _dataset(root, n=5, label_values=(0, 1, 2)):
    for i in range(n):
        lbl = np.zeros((8, 8, 8), np.uint8)
        lbl[: len(label_values)] = np.array(label_values, np.uint8)[:, None, None]
        _write(root / "images" / f"case{i}.nii.gz", np.random.rand(8, 8, 8).astype(np.float32))
        _write(root / "labels" / f"case{i}.nii.gz", lbl)
    return root


def test_discovers_pairs_and_splits_by_seed(tmp_path):
    _dataset(tmp_path, n=10)
    a = segmentation_datalist(tmp_path, val_fraction=0.2, test_fraction=0.3, seed=1, num_classes=3)
    b = segmentation_datalist(tmp_path, val_fraction=0.2, test_fraction=0.3, seed=1, num_classes=3)
    c = segmentation_datalist(tmp_path, val_fraction=0.2, test_fraction=0.3, seed=2, num_classes=3)
    assert a == b and a != c
    assert [len(a[s]) for s in ("training", "validation", "test")] == [5, 2, 3]
    names = [d["image"] for s in a for d in a[s]]
    assert len(set(names)) == 10
    assert all(d["label"].endswith(d["image"].rsplit("/", 1)[1]) for d in a["training"])
    first = a["test"][0]
    assert first["case"] == first["subject_id"] == first["image"].rsplit("/", 1)[1][: -len(".nii.gz")]


def test_decathlon_datalist_with_validation(tmp_path):
    _dataset(tmp_path, n=3)
    spec = {
        "training": [{"image": f"images/case{i}.nii.gz", "label": f"labels/case{i}.nii.gz"} for i in (0, 1)],
        "validation": [{"image": "images/case2.nii.gz", "label": "labels/case2.nii.gz"}],
    }
    (tmp_path / "datalist.json").write_text(json.dumps(spec))
    out = segmentation_datalist(tmp_path, datalist=tmp_path / "datalist.json", num_classes=3)
    assert [d["image"] for d in out["validation"]] == [str(tmp_path / "images" / "case2.nii.gz")]
    assert len(out["training"]) == 2 and out["test"] == []  # no test split is invented from the given training
    with pytest.raises(ValueError, match="no test cases.*--eval_split validation"):
        select_split(out, "test")
    assert select_split(out, "validation") == out["validation"]


def test_decathlon_testing_entries_with_labels_are_the_test_split(tmp_path):
    _dataset(tmp_path, n=5)
    pair = lambda i: {"image": f"images/case{i}.nii.gz", "label": f"labels/case{i}.nii.gz"}  # noqa: E731
    spec = {"training": [pair(0), pair(1), pair(2)], "testing": [pair(3), {"image": "images/case4.nii.gz"}]}
    (tmp_path / "datalist.json").write_text(json.dumps(spec))
    out = segmentation_datalist(tmp_path, datalist=tmp_path / "datalist.json", val_fraction=0.3, num_classes=3)
    assert [d["case"] for d in out["test"]] == ["case3"]  # the unlabelled entry is for inference only
    assert len(out["validation"]) == 1 and len(out["training"]) == 2  # validation drawn from training
    assert select_split(out) == out["test"]
    with pytest.raises(ValueError, match="config id 'eval_split' is 'testing': expected 'test'"):
        select_split(out, "testing")


def test_datalist_with_training_only_is_split_three_ways(tmp_path):
    _dataset(tmp_path, n=5)
    spec = {"training": [{"image": f"images/case{i}.nii.gz", "label": f"labels/case{i}.nii.gz"} for i in range(5)]}
    (tmp_path / "datalist.json").write_text(json.dumps(spec))
    out = segmentation_datalist(tmp_path, datalist=tmp_path / "datalist.json", val_fraction=0.2, test_fraction=0.2)
    assert [len(out[s]) for s in ("training", "validation", "test")] == [3, 1, 1]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "No image/label pairs"),
        (lambda root: (_dataset(root, 2), (root / "labels" / "case1.nii.gz").unlink()), "no label"),
    ],
)
def test_user_dataset_errors_name_the_path(tmp_path, make, match):
    root = tmp_path / "user_data"
    make(root)
    calls = []
    with pytest.raises((FileNotFoundError, ValueError), match=match) as err:
        segmentation_datalist(root, demo_dir=tmp_path / "demo", write_demo=calls.append)
    assert str(root) in str(err.value) and "images/" in str(err.value)
    assert calls == []  # a user's folder is never filled with synthetic data


def test_demo_folder_is_written_when_empty(tmp_path):
    demo = tmp_path / "demo"
    calls = []
    out = segmentation_datalist(demo, demo_dir=demo, write_demo=lambda d: (calls.append(d), _dataset(demo, 4)))
    assert calls == [str(demo)] and sum(len(v) for v in out.values()) == 4 and all(out.values())
    segmentation_datalist(demo, demo_dir=demo, write_demo=calls.append)
    assert len(calls) == 1  # not rewritten once it holds data


def test_checks_catch_mismatches_and_bad_labels(tmp_path):
    _dataset(tmp_path, n=1, label_values=(0, 1, 2, 25))
    pair = {"image": str(tmp_path / "images/case0.nii.gz"), "label": str(tmp_path / "labels/case0.nii.gz")}
    with pytest.raises(ValueError, match=r"values \[25\] outside"):
        check_segmentation_pairs([pair], num_classes=3)
    check_segmentation_pairs([pair], num_classes=3, label_mapping=[[25, 2]])  # mapped values are allowed

    _write(tmp_path / "labels/case0.nii.gz", np.zeros((8, 8, 7), np.uint8))
    with pytest.raises(ValueError, match="Shape mismatch"):
        check_segmentation_pairs([pair])
    _write(tmp_path / "labels/case0.nii.gz", np.zeros((8, 8, 8), np.uint8), affine=np.diag([2, 1, 1, 1]))
    with pytest.raises(ValueError, match="Affine mismatch"):
        check_segmentation_pairs([pair])
    (tmp_path / "images/case0.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="is not gzip-compressed"):
        check_segmentation_pairs([pair])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_segmentation_pairs([{"image": str(tmp_path / "nope.nii.gz"), "label": pair["label"]}])


def _pairs(root, n, bad=None, **bad_arrays):
    """``n`` good pairs under ``root``; ``bad_arrays`` (image=..., label=...) replace those of pair ``bad``."""
    items = []
    for i in range(n):
        image = np.random.default_rng(i).normal(size=(6, 6, 6)).astype(np.float32)
        label = np.zeros((6, 6, 6), np.uint8)
        label[2:4] = 1
        arrays = {"image": image, "label": label, **(bad_arrays if i == bad else {})}
        for key, array in arrays.items():
            _write(root / f"{key}s" / f"case{i}.nii.gz", array)
        items.append({k: str(root / f"{k}s" / f"case{i}.nii.gz") for k in ("image", "label")})
    return items


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"image": np.full((6, 6, 6), 7.0, np.float32)}, "image .*case2.nii.gz is constant"),
        ({"image": np.where(np.eye(6, dtype=bool)[..., None], np.nan, 1.0).astype(np.float32)}, "non-finite"),
        ({"image": np.random.rand(6, 6, 6, 2).astype(np.float32)}, "image .*case2.nii.gz has 2 channels"),
        ({"label": np.full((6, 6, 6), 0.5, np.float32)}, "label .*case2.nii.gz holds non-integer values"),
        ({"label": np.full((6, 6, 6), 9, np.uint8)}, r"case2.nii.gz holds values \[9\] outside"),
    ],
)
def test_the_first_bad_pair_is_named_with_its_problem(tmp_path, bad, message):
    items = _pairs(tmp_path, 4, bad=2, **bad)
    with pytest.raises(ValueError, match=message):
        check_segmentation_pairs(items, num_classes=2, num_workers=2)  # threads report the first failing pair
    check_segmentation_pairs(items[:2] + items[3:], num_classes=2, num_workers=2)


def test_an_all_background_label_is_a_valid_case(tmp_path):
    items = _pairs(tmp_path, 1, bad=0, label=np.zeros((6, 6, 6), np.uint8))
    check_segmentation_pairs(items, num_classes=2)


@pytest.mark.parametrize(
    "spec, message",
    [
        ('{"training": [{"image": "images/case0.nii.gz"}', r"not valid JSON: .* at line 1, column"),
        ('[{"image": "images/case0.nii.gz"}]', "holds a list: expected a JSON object"),
        ('{"training": {"image": "images/case0.nii.gz"}}', "'training' is a dict, expected a list"),
        ('{"training": [{"image": "images/case0.nii.gz"}]}', "entry 0 of 'training' has no 'label' path"),
        ('{"training": [], "validation": []}', "No image/label pairs"),
    ],
)
def test_malformed_datalists_name_the_file_and_the_entry(tmp_path, spec, message):
    _pairs(tmp_path, 2)
    (tmp_path / "datalist.json").write_text(spec)
    with pytest.raises(ValueError, match=message) as err:
        segmentation_datalist(tmp_path, datalist=tmp_path / "datalist.json")
    assert "datalist.json" in str(err.value)


@pytest.mark.parametrize("mapping", [[[25]], [[25, "a"]], [[25, 30]], [[-1, 0]], "25"])
def test_label_mapping_entries_are_pairs_into_the_classes(tmp_path, mapping):
    _pairs(tmp_path, 3)
    with pytest.raises(ValueError, match="config id 'label_mapping' entry"):
        segmentation_datalist(tmp_path, num_classes=25, label_mapping=mapping)


def test_image_datalist(tmp_path):
    _dataset(tmp_path, n=2)
    assert len(image_datalist(tmp_path)) == 2  # picks images/ inside the folder
    assert image_datalist(tmp_path / "images" / "case0.nii.gz") == [{"image": str(tmp_path / "images/case0.nii.gz")}]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images"):
        image_datalist(tmp_path / "empty")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((8, 8, 8), np.inf, np.float32), r"512 non-finite voxel\(s\) \(0 NaN, 512 Inf\)"),
        (np.zeros((8, 8, 8), np.int16), "is constant"),
        (np.zeros((8, 8), np.int16), "expected a 3D volume"),
    ],
)
def test_inference_inputs_are_checked_before_any_is_inferred(tmp_path, array, message):
    _dataset(tmp_path, n=2)
    _write(tmp_path / "images" / "case1.nii.gz", array)
    with pytest.raises(ValueError, match=message) as err:
        image_datalist(tmp_path)
    assert str(tmp_path / "images" / "case1.nii.gz") in str(err.value)
    assert len(image_datalist(tmp_path, check=False)) == 2


def _hu(shape=(4, 10, 12), seed=0):
    return np.random.default_rng(seed).integers(-1000, 1500, size=shape).astype(np.int16)


def test_a_dicom_series_folder_is_one_input(tmp_path):
    hu = _hu()
    series = write_ct_series(tmp_path / "ct_series", hu)
    assert image_datalist(series) == [{"image": str(series)}]
    img = LoadImage(reader="ITKReader", image_only=True)(str(series))
    # ITK sorts slices by position (files and InstanceNumber run backwards) and applies the rescale to HU
    assert tuple(img.shape) == (12, 10, 4) and np.array_equal(np.asarray(img), hu.transpose(2, 1, 0))
    with pytest.raises(ValueError, match="is one DICOM slice: pass the folder"):
        image_datalist(series / "IM0000.dcm")


def test_a_folder_of_series_and_images(tmp_path):
    write_ct_series(tmp_path / "in" / "patient1" / "CT_A", _hu(seed=1))
    write_ct_series(tmp_path / "in" / "patient2" / "CT_B", _hu(seed=2), prefix="")  # bare names: found by preamble
    _write(tmp_path / "in" / "other.nii.gz", np.random.rand(4, 4, 4).astype(np.float32))
    found = [d["image"] for d in image_datalist(tmp_path / "in")]
    assert found == [str(tmp_path / "in" / p) for p in ("other.nii.gz", "patient1/CT_A", "patient2/CT_B")]


def test_dicom_folders_that_cannot_be_one_input_each(tmp_path):
    mixed = tmp_path / "mixed"
    write_ct_series(mixed, _hu(seed=1), prefix="A")
    write_ct_series(mixed, _hu(seed=2), prefix="B")
    with pytest.raises(ValueError, match="holds 2 DICOM series"):
        image_datalist(mixed)
    write_ct_series(tmp_path / "same" / "p1" / "CT", _hu(seed=1))
    write_ct_series(tmp_path / "same" / "p2" / "CT", _hu(seed=2))
    with pytest.raises(ValueError, match="would both be saved as CT_seg"):
        image_datalist(tmp_path / "same")


def test_the_real_sample_checks_with_a_mapping_of_its_label_ids(tmp_path):
    """The real CT's label map is in TotalSegmentator v2 model ids (26..33 = S1, L5..T11): it passes the checks with a
    mapping onto VerSe ids, and without one it stops, naming the values."""
    folder = SAMPLE_DATA / "spine_ct_totalsegmentator"
    if not (folder / "vertebrae_seg.nii.gz").is_file():
        pytest.skip(f"sample data not found at {folder}")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "real.nii.gz").symlink_to(folder / "ct.nii.gz")
    (tmp_path / "labels" / "real.nii.gz").symlink_to(folder / "vertebrae_seg.nii.gz")
    pair = {"image": str(tmp_path / "images/real.nii.gz"), "label": str(tmp_path / "labels/real.nii.gz")}
    v2_to_verse = [[26, 0], [27, 24], [28, 23], [29, 22], [30, 21], [31, 20], [32, 19], [33, 18]]
    check_segmentation_pairs([pair], num_classes=25, label_mapping=v2_to_verse)
    with pytest.raises(ValueError, match=r"values \[26, 27, 28, 29, 30, 31, 32, 33\] outside"):
        check_segmentation_pairs([pair], num_classes=25)
