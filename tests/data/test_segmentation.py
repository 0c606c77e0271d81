import json

import nibabel as nib
import numpy as np
import pytest

from shared.data import check_segmentation_pairs, image_datalist, segmentation_datalist


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
    _dataset(tmp_path, n=5)
    a = segmentation_datalist(tmp_path, val_fraction=0.4, seed=1, num_classes=3)
    b = segmentation_datalist(tmp_path, val_fraction=0.4, seed=1, num_classes=3)
    assert a == b and len(a["training"]) == 3 and len(a["validation"]) == 2
    names = {d["image"] for d in a["training"]} | {d["image"] for d in a["validation"]}
    assert len(names) == 5
    assert all(d["label"].endswith(d["image"].rsplit("/", 1)[1]) for d in a["training"])


def test_decathlon_datalist_with_validation(tmp_path):
    _dataset(tmp_path, n=3)
    spec = {
        "training": [{"image": f"images/case{i}.nii.gz", "label": f"labels/case{i}.nii.gz"} for i in (0, 1)],
        "validation": [{"image": "images/case2.nii.gz", "label": "labels/case2.nii.gz"}],
    }
    (tmp_path / "datalist.json").write_text(json.dumps(spec))
    out = segmentation_datalist(tmp_path, datalist=tmp_path / "datalist.json", num_classes=3)
    assert [d["image"] for d in out["validation"]] == [str(tmp_path / "images" / "case2.nii.gz")]


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
    assert calls == [str(demo)] and len(out["training"]) + len(out["validation"]) == 4
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
    with pytest.raises(ValueError, match="Cannot read the image file"):
        check_segmentation_pairs([pair])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_segmentation_pairs([{"image": str(tmp_path / "nope.nii.gz"), "label": pair["label"]}])


def test_image_datalist(tmp_path):
    _dataset(tmp_path, n=2)
    assert len(image_datalist(tmp_path)) == 2  # picks images/ inside the folder
    assert image_datalist(tmp_path / "images" / "case0.nii.gz") == [{"image": str(tmp_path / "images/case0.nii.gz")}]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images"):
        image_datalist(tmp_path / "empty")
