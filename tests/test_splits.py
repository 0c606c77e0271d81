# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
from pathlib import Path

import pytest

from shared.errors import InputError
from shared.splits import SPLITS, cross_validation_fold, given_splits, split_name, split_subjects, subject_classes
from tests.conftest import SAMPLE_DATA

REPO = Path(__file__).resolve().parents[1]


def _items(n_subjects, scans=2, labels=None):
    return [
        {"image": f"{s}_{k}", "subject_id": f"p{s:02d}", **({"label": labels[s]} if labels else {})}
        for s in range(n_subjects)
        for k in range(scans)
    ]


def _subjects(out):
    return {name: {i["subject_id"] for i in out[name]} for name in SPLITS}


@pytest.mark.parametrize("n, sizes", [(2, [1, 1, 0]), (3, [1, 1, 1]), (10, [6, 2, 2])])
def test_split_subjects_keeps_subjects_together(n, sizes):
    out = split_subjects(_items(n), val_fraction=0.2, test_fraction=0.2, seed=0)
    subjects = _subjects(out)
    assert [len(subjects[s]) for s in SPLITS] == sizes
    assert sum(len(v) for v in out.values()) == 2 * n
    assert not (subjects["training"] & subjects["validation"] or subjects["training"] & subjects["test"])
    assert not subjects["validation"] & subjects["test"]


def test_split_subjects_is_seeded_and_independent_of_item_order():
    items = _items(20, labels=[s % 2 for s in range(20)])
    a = split_subjects(items, 0.2, 0.2, seed=3, stratify=True)
    assert _subjects(a) == _subjects(split_subjects(list(reversed(items)), 0.2, 0.2, seed=3, stratify=True))
    assert _subjects(a) != _subjects(split_subjects(items, 0.2, 0.2, seed=4, stratify=True))


def test_stratified_split_gives_every_split_each_class():
    labels = [0] * 12 + [1] * 4  # a minority class of 4 subjects
    out = split_subjects(_items(16, labels=labels), 0.25, 0.25, seed=0, stratify=True)
    for name in SPLITS:
        assert {i["label"] for i in out[name]} == {0, 1}, name
    assert [sum(i["label"] == 1 for i in out[s]) // 2 for s in SPLITS] == [2, 1, 1]


def test_fractions_are_checked():
    with pytest.raises(InputError, match="val_fraction .* and test_fraction .* sum below 1"):
        split_subjects(_items(4), 0.6, 0.5)


def test_subject_class_is_the_most_frequent_label_lowest_on_ties():
    items = [{"subject_id": "a", "label": 1}, {"subject_id": "a", "label": 0}, {"subject_id": "a", "label": 1}]
    items += [{"subject_id": "b", "label": 1}, {"subject_id": "b", "label": 0}]
    assert subject_classes(items) == {"a": 1, "b": 0}


def test_cross_validation_folds_partition_the_subjects():
    items = _items(20, labels=[s % 2 for s in range(20)])
    tested = []
    for fold in range(5):
        out = cross_validation_fold(items, 5, fold, seed=1)
        subjects = _subjects(out)
        assert [len(subjects[s]) for s in SPLITS] == [16, 2, 2]
        assert all({i["label"] for i in out[s]} == {0, 1} for s in ("validation", "test"))
        tested += subjects["test"] | subjects["validation"]
    assert sorted(tested) == sorted({i["subject_id"] for i in items})  # each subject held out in exactly one round
    with pytest.raises(InputError, match="'fold' is 5"):
        cross_validation_fold(items, 5, 5)
    with pytest.raises(InputError, match="'num_folds' is 1"):
        cross_validation_fold(items, 1, 0)


def test_given_splits_refuse_a_subject_in_two_splits():
    items = [{"image": "a", "subject_id": "p", "split": "training"}, {"image": "b", "subject_id": "q", "split": "test"}]
    assert [len(v) for v in given_splits(items, "list.csv").values()] == [1, 0, 1]
    with pytest.raises(InputError, match="list.csv puts subject 'p' in both the training and the test split"):
        given_splits(items + [{"image": "c", "subject_id": "p", "split": "test"}], "list.csv")


@pytest.mark.parametrize("word, name", [("train", "training"), (" Val", "validation"), ("TESTING", "test")])
def test_split_names(word, name):
    assert split_name(word, "row 2") == name
    with pytest.raises(InputError, match="row 2: split 'dev' is not one of training, validation or test"):
        split_name("dev", "row 2")


MRI = SAMPLE_DATA / "spine_mri_myosegmentum"


@pytest.mark.skipif(not (MRI / "images").is_dir(), reason="the real lumbar MRI folder is absent")
@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "bench" / "results").glob("spine_seg_real_mri*.json")))
def test_the_real_mri_table_split_is_reproduced(name):
    """The split behind bench/results/spine_seg_real_mri*.json (today's recipe and earlier ones): their figures stay
    reproducible."""
    results = json.loads((REPO / "bench" / "results" / name).read_text(encoding="utf-8"))
    split = results["settings"]["split"]
    cases = sorted(p.name.split(".")[0] for p in (MRI / "images").glob("*.nii*"))
    for run in results["runs"]:
        items = [{"subject_id": c} for c in cases]
        out = split_subjects(items, split["val_fraction"], split["test_fraction"], seed=run["seed"])
        assert {i["subject_id"] for i in out["test"]} == set(run["per_case"]), (run["variant"], run["seed"])
