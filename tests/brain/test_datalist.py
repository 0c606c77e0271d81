# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import gzip
import json
from collections import Counter

import nibabel as nib
import numpy as np
import pytest

from shared.brain import datalist as cd
from shared.brain.datalist import (
    check_cross_validation,
    check_image,
    cross_validation_split,
    evaluation_items,
    inference_datalist,
    load_classification_datalist,
)
from shared.errors import InputError, MissingInputError
from shared.splits import class_weights


def volume(path, shape=(8, 9, 6), value=None, affine=None):
    rng = np.random.default_rng(len(str(path)))
    data = rng.random(shape).astype(np.float32) if value is None else np.full(shape, value, np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def make_files(tmp_path, n):
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(n):
        volume(tmp_path / "img" / f"s{i}.nii.gz")


def test_csv_with_names_ints_and_subjects(tmp_path):
    make_files(tmp_path, 3)
    (tmp_path / "list.csv").write_text(
        "image,label,subject_id\nimg/s0.nii.gz,AD,p1\nimg/s1.nii.gz,0,p1\nimg/s2.nii.gz, HC ,\n"
    )
    items = load_classification_datalist(str(tmp_path / "list.csv"), class_names=["HC", "AD"])
    assert [i["label"] for i in items] == [1, 0, 0]
    assert [i["subject_id"] for i in items] == ["p1", "p1", "s2.nii.gz"]
    assert items[0]["image"] == str(tmp_path / "img" / "s0.nii.gz") and "split" not in items[0]


def test_json_layouts_and_split_column(tmp_path):
    make_files(tmp_path, 2)
    recs = [{"image": "img/s0.nii.gz", "label": 1}, {"image": str(tmp_path / "img/s1.nii.gz"), "label": 0}]
    (tmp_path / "a.json").write_text(json.dumps(recs))
    (tmp_path / "b.json").write_text(json.dumps({"training": recs}))
    for name in ("a.json", "b.json"):
        assert [i["label"] for i in load_classification_datalist(str(tmp_path / name))] == [1, 0]
    (tmp_path / "c.json").write_text(json.dumps([{"image": "img/s0.nii.gz"}]))
    assert "label" not in load_classification_datalist(str(tmp_path / "c.json"), require_labels=False)[0]
    (tmp_path / "s.csv").write_text("image,label,split\nimg/s0.nii.gz,1,Training\nimg/s1.nii.gz,0,val\n")
    assert [i["split"] for i in load_classification_datalist(str(tmp_path / "s.csv"))] == ["training", "validation"]


@pytest.mark.parametrize(
    "rows, classes, match",
    [
        ("img/s0.nii.gz,migraine", ["HC", "AD"], r"line 2: unknown label 'migraine'; known classes: \['HC', 'AD'\]"),
        ("img/s0.nii.gz,AD", None, "line 2: label 'AD' is a name but no class table"),
        ("img/s0.nii.gz,2", ["HC", "AD"], "line 2: label 2 is outside the configured classes"),
        ("img/s0.nii.gz,0.5", ["HC", "AD"], "line 2: label 0.5 is not an integer class index"),
        ("img/s0.nii.gz,", ["HC", "AD"], "line 2: no label"),
        ("img/nope.nii.gz,1", ["HC", "AD"], r"line 2: image .*nope.nii.gz does not exist"),
        (",1", ["HC", "AD"], "line 2: no 'image' path"),
        ("img/s0.nii.gz,1\nimg/s0.nii.gz,0", ["HC", "AD"], r"line 3: image .*s0.nii.gz is already listed \(line 2\)"),
        ("img/s0.nii.gz,1,extra", ["HC", "AD"], "line 2, has 3 fields but the header has 2"),
        ("img/s0.nii.gz", ["HC", "AD"], "line 2, has 1 field but the header has 2"),
        ('"img/s0.nii.gz,1', ["HC", "AD"], "is not valid CSV: unexpected end of data"),
    ],
)
def test_bad_entries_name_file_and_line(tmp_path, rows, classes, match):
    make_files(tmp_path, 1)
    (tmp_path / "l.csv").write_text("image,label\n" + rows + "\n")
    with pytest.raises(InputError, match=match) as e:
        load_classification_datalist(str(tmp_path / "l.csv"), class_names=classes)
    assert str(tmp_path / "l.csv") in str(e.value)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("e.csv", "", "is empty: expected a header line"),
        ("h.csv", "image,label\n", "lists no scans"),
        ("c.csv", "image,diagnosis\na,1\n", r"has no 'label' column \(header: image,diagnosis\)"),
        ("u.csv", b"image,label\n\xff\xfe,1\n", r"is not a text \(UTF-8\) file"),
        ("j.json", '[{"image": "a", "label": 1},\n {"image": "b" "label": 0}]', "not valid JSON: .* line 2, column"),
        ("r.json", '{"cases": []}', "holds a JSON dict: expected a list of records"),
        ("x.txt", "", "is neither .csv nor .json"),
        ("s.csv", "image,label,split\nimg/s0.nii.gz,1,holdout\n", "split 'holdout' is not one of training"),
        ("m.csv", "image,label,split\nimg/s0.nii.gz,1,train\nimg/s1.nii.gz,0,\n", "line 3: no split, while other"),
    ],
)
def test_bad_datalist_files(tmp_path, name, content, match):
    make_files(tmp_path, 2)
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=match) as e:
        load_classification_datalist(str(path), class_names=["HC", "AD"])
    assert str(path) in str(e.value)
    with pytest.raises(MissingInputError, match="does not exist"):
        load_classification_datalist(str(tmp_path / "none.csv"))
    with pytest.raises(InputError, match="config id 'class_names'"):
        load_classification_datalist(str(path), class_names=["only"])


def _gz_text(path, text):
    with gzip.open(path, "wb") as f:
        f.write(text)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
        (lambda p: p.write_text("not an image"), "is not a readable NIfTI file"),
        (lambda p: _gz_text(p, b"not an image either"), "is not a readable NIfTI file"),
        (lambda p: p.write_bytes(volume(p).read_bytes()[:-400]), "is truncated or corrupt"),
        (lambda p: volume(p, (8, 9)), r"has shape \(8, 9\): expected a 3D volume"),
        (lambda p: volume(p, (8, 9, 6, 3)), r"has 3 channels \(shape \(8, 9, 6, 3\)\): expected 1"),
        (lambda p: volume(p, (8, 9, 1)), "a single slice, not a 3D volume"),
        (lambda p: volume(p, value=7.0), "is constant"),
        (lambda p: volume(p, (8, 9, 3)), "has 3 axial slices, fewer than the 4 requested"),
    ],
)
def test_bad_volumes_name_the_file(tmp_path, make, match):
    path = tmp_path / "v.nii.gz"
    make(path)
    with pytest.raises(InputError, match=match) as e:
        check_image(str(path), "datalist l.csv, line 2", num_slices=4)
    assert f"{path} (datalist l.csv, line 2)" in str(e.value)


def test_non_finite_voxels_counted_and_located(tmp_path):
    data = np.random.default_rng(0).random((8, 9, 6)).astype(np.float32)
    data[1, 2, 3] = np.nan
    data[4, 5, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "n.nii.gz"))
    with pytest.raises(InputError, match=r"2 non-finite voxel\(s\) \(1 NaN, 1 Inf\), the first at index \(1, 2, 3\)"):
        check_image(str(tmp_path / "n.nii.gz"))


def test_slice_count_is_checked_on_the_inferior_superior_axis(tmp_path):
    # stored (x, z, y): axis 1 runs inferior-superior and has 3 slices, axis 2 has 9
    affine = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    path = volume(tmp_path / "p.nii.gz", (8, 3, 9), affine=affine)
    with pytest.raises(InputError, match="has 3 axial slices"):
        check_image(str(path), num_slices=4)
    check_image(str(path), num_slices=3)


def test_a_checked_volume_is_not_decoded_again_until_it_changes(tmp_path, monkeypatch):
    path = volume(tmp_path / "ok.nii.gz")
    check_image(str(path), num_slices=2)
    calls = []
    real = cd._read_volume
    monkeypatch.setattr(cd, "_read_volume", lambda *a: calls.append(a) or real(*a))
    check_image(str(path), num_slices=2)
    assert calls == []
    volume(path, value=1.0)  # rewritten: checked again, and now refused
    with pytest.raises(InputError, match="is constant"):
        check_image(str(path), num_slices=2)


def test_inference_inputs_are_checked(tmp_path):
    make_files(tmp_path, 2)
    items = inference_datalist(str(tmp_path / "img"), num_slices=4)
    assert [i["image"] for i in items] == [str(tmp_path / "img" / f"s{i}.nii.gz") for i in range(2)]
    (tmp_path / "l.csv").write_text("image\nimg/s1.nii.gz\n")
    assert inference_datalist(str(tmp_path / "l.csv"))[0]["image"] == str(tmp_path / "img" / "s1.nii.gz")
    volume(tmp_path / "img" / "s1.nii.gz", value=0.0)
    with pytest.raises(InputError, match=r"s1.nii.gz is constant"):
        inference_datalist(str(tmp_path / "img"))
    with pytest.raises(MissingInputError, match="neither an image file nor a folder"):
        inference_datalist(str(tmp_path / "nothing"))


def items_for(n_per_class, scans_per_subject=1, classes=2):
    out = []
    for c in range(classes):
        for s in range(n_per_class[c] if isinstance(n_per_class, list) else n_per_class):
            for k in range(scans_per_subject):
                out.append({"image": f"c{c}_s{s}_{k}.nii", "label": c, "subject_id": f"c{c}_s{s}"})
    return out


def test_five_fold_80_10_10_by_subject_and_stratified():
    items = items_for([30, 20], scans_per_subject=2)
    tests, vals = [], []
    for fold in range(5):
        sp = cross_validation_split(items, 5, fold, seed=3)
        subj = {k: {i["subject_id"] for i in v} for k, v in sp.items()}
        assert not (subj["training"] & subj["validation"]) and not (subj["training"] & subj["test"])
        assert not (subj["validation"] & subj["test"])
        assert sum(len(v) for v in sp.values()) == len(items)
        assert (len(subj["training"]), len(subj["validation"]), len(subj["test"])) == (40, 5, 5)
        assert Counter(i["label"] for i in sp["test"]) == {0: 6, 1: 4}  # 3 + 2 subjects, 2 scans each
        tests.append(subj["test"])
        vals.append(subj["validation"])
    # across rounds the held-out halves are disjoint and cover everyone once
    held = [s for t, v in zip(tests, vals) for s in t | v]
    assert len(held) == len(set(held)) == 50
    assert cross_validation_split(items, 5, 2, seed=3) == cross_validation_split(items, 5, 2, seed=3)


def test_too_few_subjects_and_bad_fold():
    with pytest.raises(InputError, match=r"too few subjects.*'AD': 9.*at least 10"):
        cross_validation_split(items_for([12, 9]), 5, 0, class_names=["HC", "AD"])
    with pytest.raises(InputError, match=r"'MCI': 0"):  # a configured class without any subject
        cross_validation_split(items_for([12, 12]), 5, 0, class_names=["HC", "AD", "MCI"])
    with pytest.raises(InputError, match=r"config id 'fold' is 5: expected one of 0..4"):
        cross_validation_split(items_for(10), 5, 5)
    assert class_weights(items_for([30, 10]), 2) == pytest.approx([0.5, 1.5])  # 1:3 inverse frequency, mean 1


def fixed(splits):
    return [
        {"image": f"{s}{i}.nii", "label": i % 2, "subject_id": f"{s}{i}", "split": s} for s in splits for i in (0, 1)
    ]


def test_fixed_splits_are_kept_and_checked():
    sp = cross_validation_split(fixed(["training", "validation", "test"]), 5, 3, seed=9)
    assert {k: [i["subject_id"] for i in v] for k, v in sp.items()} == {
        "training": ["training0", "training1"],
        "validation": ["validation0", "validation1"],
        "test": ["test0", "test1"],
    }
    leak = fixed(["training", "validation"])
    leak += [{"image": "x.nii", "label": 0, "subject_id": "training0", "split": "test"}]
    with pytest.raises(InputError, match="puts subject 'training0' in both the training and the test split"):
        cross_validation_split(leak, source="l.csv")
    with pytest.raises(InputError, match="l.csv gives no validation scans"):
        cross_validation_split(fixed(["training", "test"]), source="l.csv")
    with pytest.raises(InputError, match="fixes the splits.*no folds to cross-validate"):
        check_cross_validation(fixed(["training", "validation", "test"]), 5, source="l.csv")
    check_cross_validation(items_for(10), 5)


def test_evaluation_scores_the_test_split_only(tmp_path):
    sp = cross_validation_split(fixed(["training", "validation"]), source="l.csv")
    with pytest.raises(InputError, match=r"l.csv has no test cases.*split=test.*--eval_split validation"):
        evaluation_items(sp, source="l.csv")
    assert [i["subject_id"] for i in evaluation_items(sp, "validation")] == ["validation0", "validation1"]
    with pytest.raises(InputError, match="config id 'eval_split' is 'train'"):
        evaluation_items(sp, "train")
    # a test split holding subjects model.pt was trained on (another fold or seed at training) is refused
    cv = [cross_validation_split(items_for(10), 5, fold) for fold in (0, 1)]
    record = tmp_path / "model_split.json"
    subjects = {k: [i["subject_id"] for i in v] for k, v in cv[0].items()}
    record.write_text(json.dumps({"fold": 0, "seed": 0, "subjects": subjects}))
    assert evaluation_items(cv[0], model_split_file=str(record)) == cv[0]["test"]
    with pytest.raises(InputError, match=r"2 of the test subjects .* were used to train or select model.pt .*fold 0"):
        evaluation_items(cv[1], model_split_file=str(record))
    subjects["train"] = subjects.pop("training")  # a record written when the split was called 'train'
    record.write_text(json.dumps({"fold": 0, "seed": 0, "subjects": subjects}))
    with pytest.raises(InputError, match=r"2 of the test subjects .* were used to train or select model.pt"):
        evaluation_items(cv[1], model_split_file=str(record))
