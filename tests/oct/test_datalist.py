# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import gzip
import json
import os

import nibabel as nib
import numpy as np
import pytest

from shared.errors import InputError, MissingInputError
from shared.oct.datalist import find_oct_items, oct_datalists, oct_inference_list, read_oct_volume, undersample_majority
from shared.oct.phantom import write_oct_phantom_dataset
from shared.splits import select_split, split_subjects


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("oct"))
    write_oct_phantom_dataset(root, num_patients=12, shape=(8, 12, 8), seed=0)
    return root


def test_class_folders_and_patient_ids(dataset):
    items = find_oct_items(dataset)
    assert len(items) == 24
    assert {i["label"] for i in items if "/glaucoma/" in i["image"]} == {1}
    assert all(i["subject_id"].startswith("P") and len(i["subject_id"]) == 5 for i in items)


def test_drawn_splits_are_by_patient_stratified_and_seeded(dataset):
    lists = oct_datalists(dataset, balance="off", val_fraction=0.2, test_fraction=0.2, seed=3)
    pids = [{i["subject_id"] for i in lists[s]} for s in ("training", "validation", "test")]
    assert not (pids[0] & pids[1] or pids[0] & pids[2] or pids[1] & pids[2])
    assert sum(len(p) for p in pids) == 12 and len(lists["all"]) == 24
    for s in ("training", "validation", "test"):
        assert {i["label"] for i in lists[s]} == {0, 1}
    drawn = split_subjects(find_oct_items(dataset), 0.2, 0.2, seed=3, stratify=True)
    assert all(lists[s] == drawn[s] for s in drawn)  # the one split module's draw


def test_undersampling():
    items = [{"label": 0, "i": k} for k in range(7)] + [{"label": 1, "i": k} for k in range(3)]
    bal = undersample_majority(items, seed=0)
    assert sum(i["label"] == 0 for i in bal) == 3 and sum(i["label"] == 1 for i in bal) == 3
    assert undersample_majority(items, seed=0) == bal


def test_undersampling_the_whole_set_before_the_split_balances_validation_and_test(dataset, tmp_path):
    """balance 'undersample_all' (the authors' protocol): the majority class is cut down before the split, so the
    held-out splits are balanced too; 'undersample' balances the training split only."""
    items = find_oct_items(dataset)
    glaucoma = [i for i in items if i["label"] == 1]
    kept = [i for i in items if i["label"] == 0] + glaucoma[: len(glaucoma) // 2]  # 2 : 1
    lines = ["image,label,patient_id"] + [f"{i['image']},{i['label']},{i['subject_id']}" for i in kept]
    (tmp_path / "list.csv").write_text("\n".join(lines))

    def counts(balance):
        lists = oct_datalists(str(tmp_path), "list.csv", balance=balance, val_fraction=0.25, test_fraction=0.25)
        return {s: [sum(i["label"] == c for i in lists[s]) for c in (0, 1)] for s in ("training", "validation", "test")}

    everywhere, training_only = counts("undersample_all"), counts("undersample")
    assert sum(n for s in everywhere.values() for n in s[:1]) == sum(n for s in everywhere.values() for n in s[1:])
    assert training_only["training"][0] == training_only["training"][1]
    held_out = [n for s in ("validation", "test") for n in training_only[s]]
    assert held_out[0] + held_out[2] > held_out[1] + held_out[3]  # the data's 2 : 1 kept where it is scored


def test_csv_and_json_datalists(dataset, tmp_path):
    items = find_oct_items(dataset)
    csv_path = tmp_path / "list.csv"
    lines = [" image , label ,patient_id"] + [f"{i['image']},{i['label']},{i['subject_id']}" for i in items]
    csv_path.write_text("\ufeff" + "\n".join(lines), encoding="utf-8")  # a spreadsheet's BOM and padded header
    assert find_oct_items(str(tmp_path), "list.csv") == items
    # relative paths resolve against the datalist folder; labels may be class names; the patient is the file stem
    # up to patient_sep, as for class folders (both eyes of P0000 are one patient)
    assert len(find_oct_items(dataset, "datalist.json")) == 24
    js = tmp_path / "names.json"
    js.write_text(
        json.dumps([{"image": items[0]["image"], "label": "glaucoma"}, {"image": items[1]["image"], "label": 1.0}])
    )
    recs = find_oct_items(str(tmp_path), str(js))
    assert [r["label"] for r in recs] == [1, 1] and recs[0]["subject_id"] == items[0]["subject_id"] == "P0000"


def test_a_split_column_fixes_the_splits(dataset, tmp_path):
    items = find_oct_items(dataset)
    split_of = {"P0000": "test", "P0001": "testing", "P0002": "val", "P0003": "validation"}
    lines = ["image,label,split"] + [
        f"{i['image']},{i['label']},{split_of.get(i['subject_id'], 'train')}" for i in items
    ]
    (tmp_path / "fixed.csv").write_text("\n".join(lines))
    lists = oct_datalists(str(tmp_path), "fixed.csv", balance="off", val_fraction=0.5, seed=7)
    assert {i["subject_id"] for i in lists["test"]} == {"P0000", "P0001"}
    assert {i["subject_id"] for i in lists["validation"]} == {"P0002", "P0003"}
    assert len(lists["training"]) == 16 and "split" not in lists["training"][0]
    lines[1] = lines[1].rsplit(",", 1)[0] + ","  # one record without a split
    (tmp_path / "mixed.csv").write_text("\n".join(lines))
    with pytest.raises(InputError, match="mixed.csv, line 2 has no split while others have one"):
        oct_datalists(str(tmp_path), "mixed.csv")
    lines[1] = lines[1] + "holdout"
    (tmp_path / "word.csv").write_text("\n".join(lines))
    with pytest.raises(InputError, match="word.csv, line 2: split 'holdout' is not one of"):
        oct_datalists(str(tmp_path), "word.csv")


def test_evaluation_needs_a_test_split():
    lists = {"training": [{"image": "a"}], "validation": [{"image": "b"}], "test": []}
    with pytest.raises(InputError, match="no test cases.*test_fraction > 0.*'split' column.*--eval_split validation"):
        select_split(lists, "test")
    assert select_split(lists, "validation") == [{"image": "b"}]
    with pytest.raises(InputError, match="config id 'eval_split' is 'training'"):
        select_split(lists, "training")


def test_demo_data_only_in_the_default_folder(tmp_path):
    demo = str(tmp_path / "demo")
    lists = oct_datalists(demo, demo_dir=demo, demo_patients=8, demo_shape=(8, 8, 8), val_fraction=0.25)
    assert len(lists["all"]) == 16 and lists["training"] and lists["validation"] and lists["test"]
    t = lists["training"]
    assert sum(i["label"] for i in t) * 2 == len(t)  # undersampled to balance
    with pytest.raises(InputError, match="written with demo_patients=8, demo_shape=\\[8, 8, 8\\].*asks for demo_pa"):
        oct_datalists(demo, demo_dir=demo, demo_patients=10, demo_shape=(8, 8, 8))
    assert len(oct_inference_list(demo, demo_dir=demo, demo_patients=2)) == 16  # inference uses what is there
    with pytest.raises(MissingInputError, match="dataset_dir .*elsewhere does not exist"):
        oct_datalists(str(tmp_path / "elsewhere"), demo_dir=demo)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(InputError, match="dataset_dir .*empty is empty"):
        oct_datalists(str(tmp_path / "empty"), demo_dir=demo)
    small = str(tmp_path / "small")  # 1 patient per class: too few to hold any out
    with pytest.raises(InputError, match="The validation split of .*small is empty \\(2 patients, split by patient"):
        oct_datalists(small, demo_dir=small, demo_patients=2, demo_shape=(8, 8, 8))


def test_volume_checks(tmp_path):
    ok = (np.arange(4 * 5 * 6) % 7).astype(np.uint8).reshape(4, 5, 6)
    for name, array in {"lead.npy": ok[None], "trail.npy": ok[..., None]}.items():
        np.save(tmp_path / name, array)  # a stored singleton axis is accepted
        assert read_oct_volume(str(tmp_path / name)).shape == (4, 5, 6)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy holds Python objects"):
        read_oct_volume(str(tmp_path / "obj.npy"))
    inf = ok.astype(np.float32)
    inf[0, 0, 1] = inf[3, 4, 5] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    with pytest.raises(
        InputError, match="2 non-finite voxel\\(s\\) \\(0 NaN, 2 Inf\\), the first at index \\(0, 0, 1\\)"
    ):
        read_oct_volume(str(tmp_path / "inf.npy"))
    nib.save(nib.Nifti1Image(ok, np.eye(4)), str(tmp_path / "v.nii.gz"))
    assert read_oct_volume(str(tmp_path / "v.nii.gz")).shape == (4, 5, 6)
    raw = gzip.decompress((tmp_path / "v.nii.gz").read_bytes())
    (tmp_path / "short.nii").write_bytes(raw[:400])  # uncompressed, cut inside the voxels
    with pytest.raises(InputError, match="short.nii is truncated or corrupt: its header reads but its voxels do not"):
        read_oct_volume(str(tmp_path / "short.nii"))
    (tmp_path / "png.nii").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(400))
    with pytest.raises(InputError, match="png.nii is not a NIfTI image"):
        read_oct_volume(str(tmp_path / "png.nii"))
    (tmp_path / "v.tif").write_bytes(b"II*\x00")
    with pytest.raises(InputError, match="v.tif is not a volume file"):
        read_oct_volume(str(tmp_path / "v.tif"))


def test_folder_errors(tmp_path):
    root = tmp_path / "d"
    (root / "glaucoma").mkdir(parents=True)
    np.save(root / "glaucoma" / "P1_OD.npy", np.arange(64, dtype=np.uint8).reshape(4, 4, 4))
    with pytest.raises(MissingInputError, match="class folder .*non_glaucoma does not exist"):
        find_oct_items(str(root))
    (root / "non_glaucoma").mkdir()
    (root / "non_glaucoma" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="class folder .*non_glaucoma holds no volumes"):
        find_oct_items(str(root))
    single = tmp_path / "single.csv"
    single.write_text(f"image,label\n{root / 'glaucoma' / 'P1_OD.npy'},1\n")
    with pytest.raises(InputError, match="holds only class\\(es\\) \\['glaucoma'\\]"):
        oct_datalists(str(tmp_path), datalist=str(single))
    dup = tmp_path / "dup.csv"
    dup.write_text(f"image,label\n{root / 'glaucoma' / 'P1_OD.npy'},1\nd/glaucoma/P1_OD.npy,1\n")
    with pytest.raises(
        InputError, match="dup.csv, line 3: image .*P1_OD.npy is listed twice \\(line 2 lists it too\\)"
    ):
        find_oct_items(str(tmp_path), str(dup))
    (tmp_path / "latin1.csv").write_bytes("image,label\nd/glaucoma/P1_OD.npy,gla\xfccoma\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin1.csv is not a UTF-8 text file"):
        find_oct_items(str(tmp_path), "latin1.csv")
    with pytest.raises(InputError, match="list.txt must be a .csv or .json file"):
        (tmp_path / "list.txt").write_text("x")
        find_oct_items(str(tmp_path), "list.txt")
