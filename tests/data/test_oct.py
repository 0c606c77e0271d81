import json
import os

import numpy as np
import pytest

from shared.data.oct import find_oct_items, oct_datalists, split_by_patient, undersample_majority
from shared.data.oct_phantom import write_oct_phantom_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("oct"))
    write_oct_phantom_dataset(root, num_patients=12, shape=(8, 12, 8), seed=0)
    return root


def test_class_folders_and_patient_ids(dataset):
    items = find_oct_items(dataset)
    assert len(items) == 24
    assert {i["label"] for i in items if "/glaucoma/" in i["image"]} == {1}
    assert all(i["patient_id"].startswith("P") and len(i["patient_id"]) == 5 for i in items)


def test_patient_split_has_no_leakage_and_is_seeded(dataset):
    items = find_oct_items(dataset)
    tr, va, te = split_by_patient(items, 0.2, 0.2, seed=3)
    pids = [{i["patient_id"] for i in s} for s in (tr, va, te)]
    assert not (pids[0] & pids[1] or pids[0] & pids[2] or pids[1] & pids[2])
    assert len(tr) + len(va) + len(te) == len(items)
    for s in (tr, va, te):
        assert {i["label"] for i in s} == {0, 1}
    assert split_by_patient(items, 0.2, 0.2, seed=3) == (tr, va, te)
    assert split_by_patient(items, 0.2, 0.2, seed=4) != (tr, va, te)


def test_undersampling_and_weights():
    items = [{"label": 0, "i": k} for k in range(7)] + [{"label": 1, "i": k} for k in range(3)]
    bal = undersample_majority(items, seed=0)
    assert sum(i["label"] == 0 for i in bal) == 3 and sum(i["label"] == 1 for i in bal) == 3
    assert undersample_majority(items, seed=0) == bal


def test_csv_and_json_datalists(dataset, tmp_path):
    items = find_oct_items(dataset)
    csv_path = tmp_path / "list.csv"
    lines = ["image,label,patient_id"] + [f"{i['image']},{i['label']},{i['patient_id']}" for i in items]
    csv_path.write_text("\n".join(lines))
    assert find_oct_items(str(tmp_path), "list.csv") == items
    # relative paths resolve against the datalist folder; labels may be class names
    assert len(find_oct_items(dataset, "datalist.json")) == 24
    js = tmp_path / "names.json"
    js.write_text(json.dumps([{"image": items[0]["image"], "label": "glaucoma"}]))
    rec = find_oct_items(str(tmp_path), str(js))[0]
    assert rec["label"] == 1 and rec["patient_id"] == os.path.basename(items[0]["image"])[:-4]


def test_demo_data_only_in_the_default_folder(tmp_path):
    demo = str(tmp_path / "demo")
    lists = oct_datalists(demo, demo_dir=demo, demo_patients=8, demo_shape=(8, 8, 8), val_fraction=0.25)
    assert len(lists["all"]) == 16 and lists["training"] and lists["validation"] and lists["test"]
    t = lists["training"]
    assert sum(i["label"] for i in t) * 2 == len(t)  # undersampled to balance
    with pytest.raises(FileNotFoundError, match="dataset_dir not found: .*elsewhere"):
        oct_datalists(str(tmp_path / "elsewhere"), demo_dir=demo)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="dataset_dir is empty: .*empty"):
        oct_datalists(str(tmp_path / "empty"), demo_dir=demo)


def test_bad_inputs(tmp_path):
    root = tmp_path / "d"
    (root / "glaucoma").mkdir(parents=True)
    np.save(root / "glaucoma" / "P1_OD.npy", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="class folder missing: .*non_glaucoma"):
        find_oct_items(str(root))
    (root / "non_glaucoma").mkdir()
    with pytest.raises(ValueError, match="class folder .*non_glaucoma holds no volumes"):
        find_oct_items(str(root))
    np.save(root / "non_glaucoma" / "P2_OD.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="P2_OD.npy has shape \\(4, 4\\)"):
        find_oct_items(str(root))
    np.save(root / "non_glaucoma" / "P2_OD.npy", np.zeros((4, 0, 4), np.uint8))
    with pytest.raises(ValueError, match="P2_OD.npy is empty"):
        find_oct_items(str(root))
    # a single-class training set
    single = tmp_path / "single.csv"
    single.write_text(f"image,label\n{root / 'glaucoma' / 'P1_OD.npy'},1\n")
    with pytest.raises(ValueError, match="holds only class\\(es\\) \\[1\\]"):
        oct_datalists(str(tmp_path), datalist=str(single))
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image,label\n{root / 'glaucoma' / 'P1_OD.npy'},maybe\n")
    with pytest.raises(ValueError, match="record 0: label 'maybe'"):
        find_oct_items(str(tmp_path), str(bad))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"data": [{"image": "nope.npy", "label": 0}]}))
    with pytest.raises(FileNotFoundError, match="record 0: image file not found: .*nope.npy"):
        find_oct_items(str(tmp_path), str(missing))
