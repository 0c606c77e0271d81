# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import MapLabelValued

from shared.errors import InputError
from shared.spine import datasets as spine_datasets
from shared.spine.datalist import segmentation_datalist
from tests.conftest import REPO, SAMPLE_DATA

TRAIN_JSON = json.loads((REPO / "bundles" / "spine_seg" / "configs" / "train.json").read_text())
MAPPING = TRAIN_JSON["label_mapping"]
SHAPE = (6, 6, 6)


def _ct(level):
    """A CT-like int16 volume around ``level`` HU (not constant: constant images are refused)."""
    return (level + np.arange(np.prod(SHAPE)).reshape(SHAPE) % 7).astype(np.int16)


def _write(path, array, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))


def _verse_scan(split_dir, subject, entities="", values=(0, 20, 21), with_mask=True):
    """One VerSe scan: rawdata/<subject>/<subject><entities>_ct.nii.gz and its derivatives mask."""
    name = f"{subject}{entities}"
    _write(split_dir / "rawdata" / subject / f"{name}_ct.nii.gz", _ct(-500))
    if with_mask:
        mask = np.zeros(SHAPE, np.uint8)
        mask[: len(values)] = np.array(values, np.uint8)[:, None, None]
        _write(split_dir / "derivatives" / subject / f"{name}_seg-vert_msk.nii.gz", mask)


def _cases(out, split):
    return sorted(item["case"] for item in out[split])


def test_verse19_release_splits_are_the_bundle_splits(tmp_path):
    for sub in ("sub-verse004", "sub-verse005"):
        _verse_scan(tmp_path / "dataset-verse19training", sub)
    _verse_scan(tmp_path / "dataset-verse19training", "sub-verse006", with_mask=False)  # the releases hold a few
    _verse_scan(tmp_path / "dataset-verse19validation", "sub-verse010", values=(0, 25, 28))  # L6, T13
    _verse_scan(tmp_path / "dataset-verse19test", "sub-verse020")
    out = segmentation_datalist(tmp_path, dataset_format="verse", num_classes=25, label_mapping=MAPPING)
    assert _cases(out, "training") == ["sub-verse004", "sub-verse005"]
    assert _cases(out, "validation") == ["sub-verse010"] and _cases(out, "test") == ["sub-verse020"]
    item = out["test"][0]
    assert item["label"] == str(
        tmp_path / "dataset-verse19test/derivatives/sub-verse020/sub-verse020_seg-vert_msk.nii.gz"
    )
    assert item["image"].endswith("rawdata/sub-verse020/sub-verse020_ct.nii.gz")
    assert item["subject_id"] == "sub-verse020"


@pytest.mark.parametrize(
    "folders",
    [
        ("dataset-verse20training/dataset-01training", "dataset-verse20validation/dataset-02validation", "03_test"),
        ("01_training", "02_validation", "03_test"),
    ],
)
def test_verse20_split_folders_and_entity_names(tmp_path, folders):
    train, val, test = (tmp_path / f for f in folders)
    _verse_scan(train, "sub-gl003", "_dir-ax")
    _verse_scan(train, "sub-verse506", "_dir-iso")
    _verse_scan(train, "sub-verse506", "_split-verse253")  # two scans of one patient
    _verse_scan(val, "sub-gl016", "_dir-ax")
    _verse_scan(test, "sub-gl017", "_dir-sag")
    out = segmentation_datalist(tmp_path, dataset_format="verse", num_classes=25, label_mapping=MAPPING)
    assert _cases(out, "training") == ["sub-gl003_dir-ax", "sub-verse506_dir-iso", "sub-verse506_split-verse253"]
    assert _cases(out, "validation") == ["sub-gl016_dir-ax"] and _cases(out, "test") == ["sub-gl017_dir-sag"]
    for item in out["training"]:
        assert item["label"].endswith(f"derivatives/{item['subject_id']}/{item['case']}_seg-vert_msk.nii.gz")


def test_verse_without_release_splits_is_split_by_subject(tmp_path):
    for i in range(8):
        _verse_scan(tmp_path, f"sub-verse{i:03d}", "_dir-ax")
    _verse_scan(tmp_path, "sub-verse000", "_dir-sag")  # a second scan of subject 0
    a = segmentation_datalist(tmp_path, dataset_format="verse", val_fraction=0.25, test_fraction=0.25, seed=3)
    b = segmentation_datalist(tmp_path, dataset_format="verse", val_fraction=0.25, test_fraction=0.25, seed=3)
    assert a == b
    subjects = {s: {i["subject_id"] for i in a[s]} for s in a}
    assert [len(subjects[s]) for s in ("training", "validation", "test")] == [4, 2, 2]
    assert not (subjects["training"] & subjects["validation"] or subjects["training"] & subjects["test"])
    both = [s for s in a if {"sub-verse000_dir-ax", "sub-verse000_dir-sag"} <= {i["case"] for i in a[s]}]
    assert len(both) == 1  # the two scans of one patient are in the same split


def test_split_folder_names():
    assert spine_datasets._split_of(("dataset-verse19training",)) == "training"
    assert spine_datasets._split_of(("dataset-verse20validation", "dataset-02validation")) == "validation"
    assert spine_datasets._split_of(("03_test",)) == spine_datasets._split_of(("verse19test",)) == "test"
    assert spine_datasets._split_of(("latest", "contest")) is None and spine_datasets._split_of(()) is None


def test_verse_subject_in_two_release_splits_is_refused(tmp_path):
    _verse_scan(tmp_path / "dataset-verse19training", "sub-verse004")
    _verse_scan(tmp_path / "dataset-verse19training", "sub-verse005")
    _verse_scan(tmp_path / "dataset-verse19test", "sub-verse004", "_dir-ax")
    with pytest.raises(ValueError, match="subject 'sub-verse004' in both the training and the test split"):
        segmentation_datalist(tmp_path, dataset_format="verse")


def test_verse_layout_errors_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No rawdata/ folder") as err:
        segmentation_datalist(tmp_path / "empty", dataset_format="verse")
    assert str(tmp_path / "empty") in str(err.value)
    _write(tmp_path / "nomasks" / "rawdata" / "sub-a" / "sub-a_ct.nii.gz", np.zeros(SHAPE, np.int16))
    with pytest.raises(FileNotFoundError, match="no derivatives/ folder"):
        segmentation_datalist(tmp_path / "nomasks", dataset_format="verse")
    with pytest.raises(ValueError, match="use it with dataset_format 'default'"):
        segmentation_datalist(tmp_path, datalist=tmp_path / "d.json", dataset_format="verse")


def test_verse_ids_and_the_default_mapping(tmp_path):
    """L6 (25) joins L5, T13 (28) joins T12, the VerSe sacrum / coccyx ids (26, 27) become background; any other
    value stops before training."""
    mapper = MapLabelValued("label", [m[0] for m in MAPPING], [m[1] for m in MAPPING])
    out = mapper({"label": torch.tensor([0, 1, 19, 24, 25, 26, 27, 28])})["label"]
    assert out.tolist() == [0, 1, 19, 24, 24, 0, 0, 19]
    _verse_scan(tmp_path / "01_training", "sub-a", values=(0, 26, 27))
    _verse_scan(tmp_path / "01_training", "sub-b", values=(0, 29))
    with pytest.raises(ValueError, match=r"sub-b_seg-vert_msk.nii.gz holds values \[29\] outside"):
        segmentation_datalist(tmp_path, dataset_format="verse", num_classes=25, label_mapping=MAPPING)


def _totalseg_case(root, case, masks, affine=None):
    """A TotalSegmentator case: ct.nii.gz and one binary mask per structure; ``masks`` maps name -> voxel slab."""
    _write(root / case / "ct.nii.gz", _ct(40), affine)
    for name, slab in masks.items():
        mask = np.zeros(SHAPE, np.uint8)
        if slab is not None:
            mask[slab] = 1
        _write(root / case / "segmentations" / f"{name}.nii.gz", mask, affine)
    _write(root / case / "segmentations" / "liver.nii.gz", np.ones(SHAPE, np.uint8), affine)  # not a vertebra


def _totalseg(root, n=4, meta=True):
    masks = {"vertebrae_T12": np.s_[0:2], "vertebrae_L1": np.s_[2:4], "vertebrae_S1": np.s_[5], "vertebrae_C1": None}
    for i in range(n):
        _totalseg_case(root, f"s{i:04d}", masks)
    if meta:
        splits = ["train", "train", "val", "test"]
        rows = ["image_id;age;gender;institute;study_type;split"]
        rows += [f"s{i:04d};60;f;A;ct abdomen;{splits[i % 4]}" for i in range(n)]
        (root / "meta.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    return root


def test_totalsegmentator_masks_merged_into_verse_ids_with_meta_splits(tmp_path):
    root = _totalseg(tmp_path / "ts")
    out = segmentation_datalist(root, dataset_format="totalsegmentator", num_classes=25, label_mapping=MAPPING)
    assert _cases(out, "training") == ["s0000", "s0001"]
    assert _cases(out, "validation") == ["s0002"] and _cases(out, "test") == ["s0003"]
    item = out["training"][0]
    assert item["image"] == str(root / "s0000" / "ct.nii.gz")
    label = nib.load(item["label"])
    assert label.get_data_dtype() == np.uint8 and np.allclose(label.affine, nib.load(item["image"]).affine)
    data = np.asarray(label.dataobj)
    assert (data[0:2] == 19).all() and (data[2:4] == 20).all() and (data[4] == 0).all() and (data[5] == 26).all()


def test_totalsegmentator_without_meta_is_split_by_fraction(tmp_path):
    root = _totalseg(tmp_path / "ts", n=5, meta=False)
    out = segmentation_datalist(root, dataset_format="totalsegmentator", val_fraction=0.2, test_fraction=0.2)
    assert [len(out[s]) for s in ("training", "validation", "test")] == [3, 1, 1]


def test_totalsegmentator_cache_is_reused_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    root = _totalseg(tmp_path / "ts", n=1, meta=False)
    case = root / "s0000"
    first = spine_datasets.vertebra_label_map(case)
    assert first.parent == case and first.name.startswith("vertebrae_verse.")
    assert not [p for p in case.iterdir() if p.name.startswith(".tmp_")]  # no temporary file left behind

    def no_merge(case_dir):
        raise AssertionError("merged again although nothing changed")

    monkeypatch.setattr(spine_datasets, "merge_totalsegmentator_vertebrae", no_merge)
    mtime = first.stat().st_mtime_ns
    assert spine_datasets.vertebra_label_map(case) == first and first.stat().st_mtime_ns == mtime
    monkeypatch.undo()

    mask = np.zeros(SHAPE, np.uint8)
    mask[4] = 1  # C1 where nothing was
    _write(case / "segmentations" / "vertebrae_C1.nii.gz", mask)  # an edited mask
    second = spine_datasets.vertebra_label_map(case)
    assert second != first and not first.exists()  # rebuilt, the stale map removed
    assert (np.asarray(nib.load(second).dataobj)[4] == 1).all()

    cache = tmp_path / "cache"
    in_cache = spine_datasets.vertebra_label_map(case, cache)
    assert in_cache.parent == cache and in_cache.name.startswith("s0000_")
    assert np.array_equal(np.asarray(nib.load(in_cache).dataobj), np.asarray(nib.load(second).dataobj))


def test_totalsegmentator_unwritable_cache_says_what_to_do(tmp_path, monkeypatch):
    root = _totalseg(tmp_path / "ts", n=1, meta=False)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("shared.atomic.tempfile.mkstemp", refuse)
    with pytest.raises(InputError, match="set label_cache_dir to a writable folder"):
        spine_datasets.vertebra_label_map(root / "s0000")


def test_totalsegmentator_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No case folder"):
        segmentation_datalist(tmp_path, dataset_format="totalsegmentator")
    _totalseg_case(tmp_path / "a", "s0000", {"vertebrae_L9": np.s_[0]})
    with pytest.raises(ValueError, match="vertebrae_L9.nii.gz: unknown vertebra 'L9'"):
        segmentation_datalist(tmp_path / "a", dataset_format="totalsegmentator")
    _totalseg_case(tmp_path / "b", "s0000", {"vertebrae_L1": np.s_[0]})
    _write(tmp_path / "b/s0000/segmentations/vertebrae_L2.nii.gz", np.zeros((6, 6, 5), np.uint8))
    with pytest.raises(ValueError, match="vertebrae_L2.nii.gz is not on the grid"):
        segmentation_datalist(tmp_path / "b", dataset_format="totalsegmentator")


def test_merge_of_the_real_sample_split_into_masks(tmp_path):
    """The real sample's TotalSegmentator v2 label map (26..33 = S1, L5..T11), written as the dataset's binary
    masks, merges back into the same vertebrae in VerSe ids."""
    folder = SAMPLE_DATA / "spine_ct_totalsegmentator"
    if not (folder / "vertebrae_seg.nii.gz").is_file():
        pytest.skip(f"sample data not found at {folder}")
    v2 = nib.load(folder / "vertebrae_seg.nii.gz")
    v2_ids = np.asarray(v2.dataobj).astype(np.uint8)
    names = {26: "S1", 27: "L5", 28: "L4", 29: "L3", 30: "L2", 31: "L1", 32: "T12", 33: "T11"}
    case = tmp_path / "s0000"
    (case / "segmentations").mkdir(parents=True)
    os.symlink(folder / "ct.nii.gz", case / "ct.nii.gz")
    for v2_id, name in names.items():
        nib.save(
            nib.Nifti1Image((v2_ids == v2_id).astype(np.uint8), v2.affine),
            case / f"segmentations/vertebrae_{name}.nii.gz",
        )
    merged = np.asarray(nib.load(spine_datasets.vertebra_label_map(case, tmp_path / "cache")).dataobj)
    expected = np.zeros_like(v2_ids)
    for v2_id, name in names.items():
        expected[v2_ids == v2_id] = spine_datasets.VERSE_IDS[name]
    assert np.array_equal(merged, expected) and set(np.unique(merged)) == {0, 18, 19, 20, 21, 22, 23, 24, 26}
