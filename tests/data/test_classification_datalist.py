import json
from collections import Counter

import pytest

from shared.data.classification_datalist import class_weights, cross_validation_split, load_classification_datalist


def make_files(tmp_path, n):
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(n):
        (tmp_path / "img" / f"s{i}.nii.gz").write_bytes(b"x")


def test_csv_with_names_ints_and_subjects(tmp_path):
    make_files(tmp_path, 3)
    (tmp_path / "list.csv").write_text(
        "image,label,subject_id\nimg/s0.nii.gz,AD,p1\nimg/s1.nii.gz,0,p1\nimg/s2.nii.gz, HC ,\n"
    )
    items = load_classification_datalist(str(tmp_path / "list.csv"), class_names=["HC", "AD"])
    assert [i["label"] for i in items] == [1, 0, 0]
    assert [i["subject_id"] for i in items] == ["p1", "p1", "s2.nii.gz"]
    assert items[0]["image"] == str(tmp_path / "img" / "s0.nii.gz")


def test_json_layouts(tmp_path):
    make_files(tmp_path, 2)
    recs = [{"image": "img/s0.nii.gz", "label": 1}, {"image": str(tmp_path / "img/s1.nii.gz"), "label": 0}]
    (tmp_path / "a.json").write_text(json.dumps(recs))
    (tmp_path / "b.json").write_text(json.dumps({"training": recs}))
    for name in ("a.json", "b.json"):
        assert [i["label"] for i in load_classification_datalist(str(tmp_path / name))] == [1, 0]
    (tmp_path / "c.json").write_text(json.dumps([{"image": "img/s0.nii.gz"}]))
    assert "label" not in load_classification_datalist(str(tmp_path / "c.json"), require_labels=False)[0]


@pytest.mark.parametrize(
    "row, classes, match",
    [
        ("img/s0.nii.gz,migraine", ["HC", "AD"], "unknown label 'migraine'; known classes"),
        ("img/s0.nii.gz,AD", None, "no class table"),
        ("img/s0.nii.gz,2", ["HC", "AD"], "outside 0..1"),
        ("img/s0.nii.gz,", ["HC", "AD"], "missing 'label'"),
        ("img/nope.nii.gz,1", ["HC", "AD"], "image not found"),
        (",1", ["HC", "AD"], "missing 'image'"),
    ],
)
def test_bad_entries_name_file_and_entry(tmp_path, row, classes, match):
    make_files(tmp_path, 1)
    (tmp_path / "l.csv").write_text("image,label\n" + row + "\n")
    with pytest.raises((ValueError, FileNotFoundError), match=match) as e:
        load_classification_datalist(str(tmp_path / "l.csv"), class_names=classes)
    assert "l.csv, entry 1" in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="datalist not found"):
        load_classification_datalist(str(tmp_path / "none.csv"))
    (tmp_path / "e.csv").write_text("image,label\n")
    with pytest.raises(ValueError, match="no entries"):
        load_classification_datalist(str(tmp_path / "e.csv"))
    (tmp_path / "h.csv").write_text("path,label\na,1\n")
    with pytest.raises(ValueError, match="'image' column"):
        load_classification_datalist(str(tmp_path / "h.csv"))
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="unsupported format"):
        load_classification_datalist(str(tmp_path / "x.txt"))


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
        assert not (subj["train"] & subj["validation"]) and not (subj["train"] & subj["test"])
        assert not (subj["validation"] & subj["test"])
        assert sum(len(v) for v in sp.values()) == len(items)
        assert (len(subj["train"]), len(subj["validation"]), len(subj["test"])) == (40, 5, 5)
        assert Counter(i["label"] for i in sp["test"]) == {0: 6, 1: 4}  # 3 + 2 subjects, 2 scans each
        tests.append(subj["test"])
        vals.append(subj["validation"])
    # across rounds the held-out halves are disjoint and cover everyone once
    held = [s for t, v in zip(tests, vals) for s in t | v]
    assert len(held) == len(set(held)) == 50
    assert cross_validation_split(items, 5, 2, seed=3) == cross_validation_split(items, 5, 2, seed=3)


def test_too_few_subjects_and_bad_fold():
    with pytest.raises(ValueError, match=r"too few subjects.*'AD': 9.*at least 10"):
        cross_validation_split(items_for([12, 9]), 5, 0, class_names=["HC", "AD"])
    with pytest.raises(ValueError, match="fold must be in 0..4"):
        cross_validation_split(items_for(10), 5, 5)
    assert class_weights(items_for([30, 10]), 2) == pytest.approx([0.5, 1.5])  # 1:3 inverse frequency, mean 1
