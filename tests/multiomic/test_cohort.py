# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import csv
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from shared.errors import InputError, MissingInputError
from shared.multiomic.cohort import check_unseen, cohort_datalist, load_cohort, validate_records
from shared.multiomic.manifest import check_image_file, read_manifest
from shared.multiomic.plink import write_plink_bed
from shared.multiomic.preprocessing import ClinicalPreprocessor, FeaturePreprocessor, check_resumed_preprocessing
from shared.multiomic.snps import read_snp
from shared.multiomic.transforms import MultiomicPrepareBatch
from shared.splits import assign_splits, select_split

NUM = ["age", "mmse"]
CAT = ["sex", "site"]
COLS = NUM + CAT
N_SNP = 12


def _write_cohort(root, n_per_class=3, rows_edit=None, header_drop=None, extra=()):
    """A tiny cohort: 3D NIfTI images, SNPs as .npy; returns the manifest path."""
    os.makedirs(root / "img", exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    k = 0
    for label in ("CN", "MCI", "AD"):
        for _ in range(n_per_class):
            k += 1
            sid = f"S{k:02d}"
            for m in ("mri", "pet"):
                nib.save(
                    nib.Nifti1Image(rng.random((6, 5, 4)).astype(np.float32), np.eye(4)),
                    root / "img" / f"{sid}_{m}.nii.gz",
                )
            np.save(root / f"{sid}_snp.npy", rng.integers(0, 3, N_SNP).astype(np.float32))
            rows.append(
                {
                    "subject_id": sid,
                    "mri": f"img/{sid}_mri.nii.gz",
                    "pet": f"img/{sid}_pet.nii.gz",
                    "snp": f"{sid}_snp.npy",
                    "age": f"{60 + k}",
                    "mmse": f"{30 - k % 5}",
                    "sex": "F" if k % 2 else "M",
                    "site": ["A", "B", "C"][k % 3],
                    "label": label,
                }
            )
    if rows_edit:
        rows_edit(rows)
    header = [h for h in ["subject_id", "mri", "pet", "snp"] + COLS + ["label", *extra] if h != header_drop]
    path = root / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return str(path)


def test_manifest_reads_and_resolves_paths(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path), COLS)
    assert len(recs) == 9 and [r["label"] for r in recs] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert recs[0]["mri"] == str(tmp_path / "img" / "S01_mri.nii.gz")
    assert recs[0]["clinical_raw"] == {"age": "61", "mmse": "29", "sex": "F", "site": "B"}


@pytest.mark.parametrize(
    "edit, drop, error, match",
    [
        (None, "mmse", InputError, r"manifest.csv lacks column\(s\) \['mmse'\]"),
        (None, "label", InputError, r"lacks column\(s\) \['label'\]"),
        (lambda r: r[4].update(subject_id="S01"), None, InputError, "line 6: subject_id 'S01' appears twice"),
        (lambda r: r[2].update(label="LMCI"), None, InputError, r"line 4 \(subject 'S03'\) has label 'LMCI': expected"),
        (
            lambda r: r[1].update(pet="img/none.nii.gz"),
            None,
            MissingInputError,
            "pet file .*none.nii.gz does not exist",
        ),
        (lambda r: r[1].update(mri=""), None, InputError, "line 3 .* empty 'mri' path"),
    ],
)
def test_manifest_errors(tmp_path, edit, drop, error, match):
    with pytest.raises(error, match=match):
        read_manifest(_write_cohort(tmp_path, rows_edit=edit, header_drop=drop), COLS)


@pytest.mark.parametrize(
    "text, match",
    [
        (b"", "is empty \\(0 bytes\\)"),
        (b"\n\n", "only blank lines"),
        (b"subject_id,label\n\nS1,CN,extra\n", "line 3 has 3 fields, the header has 2"),
        (b'subject_id,label\nS1,"CN\n', "not valid CSV at line 2"),
        (b"subject_id,label\n\xff\xfe\x00S1,CN\n", "not a UTF-8 text file"),
        (b"subject_id,label,label\nS1,CN,CN\n", "repeats header column\\(s\\) \\['label'\\]"),
    ],
)
def test_manifest_that_is_not_valid_csv(tmp_path, text, match):
    (tmp_path / "m.csv").write_bytes(text)
    with pytest.raises(InputError, match=match):
        read_manifest(str(tmp_path / "m.csv"), modalities=())


def test_split_column_sets_the_splits(tmp_path):
    splits = ["training"] * 5 + ["val", "Test", "test", "training"]

    def edit(rows, bad=None):
        for row, split in zip(rows, splits):
            row.update(split=split)
        if bad:
            rows[3].update(split=bad)

    path = _write_cohort(tmp_path, rows_edit=edit, extra=["split"])
    out = assign_splits(read_manifest(path, COLS), 0.2, 0.2, seed=0, stratify=True)
    assert [len(out[k]) for k in ("training", "validation", "test")] == [6, 1, 2]
    assert [r["subject_id"] for r in out["test"]] == ["S07", "S08"]
    path = _write_cohort(tmp_path, rows_edit=lambda r: edit(r, "holdout"), extra=["split"])
    with pytest.raises(InputError, match="line 5.* split 'holdout' is not one of training, validation or test"):
        read_manifest(path, COLS)


def test_switched_off_modality_needs_no_file(tmp_path):
    path = _write_cohort(tmp_path, rows_edit=lambda r: r[1].update(pet=""), header_drop=None)
    recs = read_manifest(path, COLS, modalities=("mri", "snp", "clinical"))
    assert "pet" not in recs[1]


def test_snp_formats_agree(tmp_path):
    vec = np.array([0, 1, 2, np.nan, 1, 0], np.float32)
    np.save(tmp_path / "v.npy", vec)
    (tmp_path / "row.csv").write_text("rs1,rs2,rs3,rs4,rs5,rs6\n0,1,2,NA,1,0\n")
    (tmp_path / "table.csv").write_text("subject_id,rs1,rs2,rs3,rs4,rs5,rs6\nX,2,2,2,2,2,2\nS1,0,1,2,,1,0\n")
    write_plink_bed(str(tmp_path / "g"), np.stack([np.full(6, 2.0), vec]), ["X", "S1"])
    for src in ("v.npy", "row.csv", "table.csv", "g.bed", "g"):
        np.testing.assert_array_equal(read_snp(str(tmp_path / src), "S1", 6), vec, err_msg=src)


def test_snp_errors(tmp_path):
    np.save(tmp_path / "v.npy", np.array([0, 1, 3], np.float32))
    with pytest.raises(
        ValueError, match=r"v.npy' \(subject 'S1'\): SNP index 2 holds 3, not a genotype code: codes are 0, 1, 2"
    ):
        read_snp(str(tmp_path / "v.npy"), "S1", 3)
    np.save(tmp_path / "w.npy", np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="5 SNPs, expected 7"):
        read_snp(str(tmp_path / "w.npy"), "S1", 7)
    (tmp_path / "r.csv").write_text("0,1,x\n")
    with pytest.raises(ValueError, match="'x' at position 2 is not a number"):
        read_snp(str(tmp_path / "r.csv"), "S1", 3)
    write_plink_bed(str(tmp_path / "g"), np.zeros((1, 3)), ["X"])
    with pytest.raises(ValueError, match="not found among the IIDs"):
        read_snp(str(tmp_path / "g.bed"), "S1", 3)


def test_validate_records_catches_rank_snp_and_clinical(tmp_path):
    path = _write_cohort(tmp_path)
    pre = FeaturePreprocessor(NUM, CAT, N_SNP, None)
    validate_records(read_manifest(path, COLS), snp_features=N_SNP, clinical=pre.clinical)  # a good cohort passes

    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4, 2), np.float32), np.eye(4)), tmp_path / "img" / "S03_pet.nii.gz")
    with pytest.raises(InputError, match=r"PET .*S03_pet.nii.gz \(manifest line 4, subject 'S03'\) has 2 channels"):
        validate_records(read_manifest(path, COLS), snp_features=N_SNP, clinical=pre.clinical)

    path = _write_cohort(tmp_path, rows_edit=lambda r: r[5].update(mmse="twenty"))
    with pytest.raises(InputError, match="subject 'S06': clinical column 'mmse': value 'twenty' is not a number"):
        validate_records(read_manifest(path, COLS), snp_features=N_SNP, clinical=pre.clinical)
    path = _write_cohort(tmp_path)
    with pytest.raises(InputError, match="has 12 SNPs, expected 15"):
        validate_records(read_manifest(path, COLS), snp_features=15)


def test_clinical_ranges_refuse_missing_codes():
    clinical = ClinicalPreprocessor(["mmse"], ranges={"mmse": [0, 30]})
    assert clinical.parse({"mmse": "30"})["mmse"] == 30.0 and np.isnan(clinical.parse({"mmse": "NA"})["mmse"])
    with pytest.raises(InputError, match=r"'mmse' is -4, outside its valid range \[0, 30\]"):
        clinical.parse({"mmse": "-4"}, "line 3: ")


def _nifti(path, data, affine=None):
    img = nib.Nifti1Image(np.asarray(data), np.eye(4))
    if affine is not None:  # a header nibabel would not write from an affine: stored as given
        img.header.set_qform(None, code=0)
        img.header.set_sform(affine, code=1)
        img.update_header = lambda: None
    nib.save(img, str(path))
    return str(path)


def test_check_image_file_decodes_in_full(tmp_path):
    rng = np.random.default_rng(0)
    good = _nifti(tmp_path / "good.nii.gz", rng.random((6, 5, 4)).astype(np.float32))
    assert check_image_file(good) == (6, 5, 4)
    nan = rng.random((6, 5, 4)).astype(np.float32)
    nan[2, 1, 3] = np.nan
    bad = {
        "flat.nii.gz": (np.full((6, 5, 4), 7, np.int16), None, "is constant"),
        "nan.nii": (nan, None, r"1 non-finite voxel\(s\) \(1 NaN, 0 Inf\), the first at index \(2, 1, 3\)"),
        "2d.nii": (np.ones((6, 5), np.float32), None, "expected a 3D volume"),
        "aff.nii": (rng.random((6, 5, 4)), np.zeros((4, 4)), "unusable affine"),
    }
    for name, (data, affine, match) in bad.items():
        with pytest.raises(InputError, match=match):
            check_image_file(_nifti(tmp_path / name, data, affine), "line 2", "MRI")
    raw = open(good, "rb").read()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "zero.nii").write_bytes(b"")
    (tmp_path / "png.nii").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(400))
    for name, match in (("cut.nii.gz", "cannot be read"), ("zero.nii", "empty"), ("png.nii", "cannot be read")):
        with pytest.raises(InputError, match=f"MRI .*{name} \\(line 2\\) .*{match}"):
            check_image_file(str(tmp_path / name), "line 2", "MRI")
    with pytest.raises(InputError, match="not a NIfTI"):
        check_image_file(str(tmp_path / "scan.png"))


def test_drawn_splits_are_seeded_disjoint_and_stratified(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path, n_per_class=10), COLS)
    a = assign_splits(recs, 0.2, 0.1, seed=3, stratify=True)
    b = assign_splits(list(reversed(recs)), 0.2, 0.1, seed=3, stratify=True)
    ids = {k: [r["subject_id"] for r in v] for k, v in a.items()}
    assert ids == {k: [r["subject_id"] for r in v] for k, v in b.items()}  # row order does not matter
    other = assign_splits(recs, 0.2, 0.1, seed=4, stratify=True)
    assert ids != {k: [r["subject_id"] for r in v] for k, v in other.items()}
    all_ids = sum(ids.values(), [])
    assert sorted(all_ids) == sorted(r["subject_id"] for r in recs)
    for split, n in (("validation", 2), ("test", 1), ("training", 7)):
        assert sorted(r["label"] for r in a[split]) == sorted([0, 1, 2] * n)


def test_preprocessing_fitted_on_training_only_and_saved(tmp_path):
    edit = lambda r: (r[0].update(age="", sex="", mmse="NA"), r[8].update(age="1000"))  # noqa: E731
    recs = read_manifest(_write_cohort(tmp_path, rows_edit=edit), COLS)
    train, held_out = recs[:6], recs[6:]
    pre = FeaturePreprocessor(NUM, CAT, N_SNP, clinical_features=6).fit(train, str(tmp_path / "m" / "pre.json"))
    ages = [62, 63, 64, 65, 66]  # S01 missing; the held-out age 1000 must not leak in
    assert pre.clinical.mean["age"] == pytest.approx(np.mean(ages))
    assert pre.clinical.levels == {"sex": ["F", "M"], "site": ["A", "B", "C"]}
    assert pre.clinical.feature_names == ["age", "mmse", "sex=M", "site=A", "site=B", "site=C"]
    enc = pre.encode(recs[0])["clinical"]
    assert enc.shape == (6,)
    loaded = FeaturePreprocessor.load(str(tmp_path / "m" / "pre.json"))
    for r in recs[:1] + held_out:
        for k, v in pre.encode(r).items():
            np.testing.assert_array_equal(loaded.encode(r)[k], v)
    # missing numeric -> training mean -> 0 after scaling; missing sex -> training mode M (3 of 5); site B one-hot
    np.testing.assert_allclose(enc, [0, 0, 1, 0, 1, 0], atol=1e-6)


def test_clinical_width_mismatch_and_unseen_level(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path), COLS)
    with pytest.raises(InputError, match="'clinical_features' is 7, but .* has 6 features .* --clinical_features 6"):
        FeaturePreprocessor(NUM, CAT, N_SNP, clinical_features=7).fit(recs)
    pre = FeaturePreprocessor(NUM, CAT, N_SNP).fit(recs)
    rec = dict(recs[0], clinical_raw=dict(recs[0]["clinical_raw"], site="Z"))
    with pytest.raises(InputError, match=r"line 2, subject 'S01': clinical column 'site' has level 'Z', never seen"):
        pre.encode(rec)
    with pytest.raises(InputError, match="level 'Z', never seen"):  # a validation subject: refused when fitting
        FeaturePreprocessor(NUM, CAT, N_SNP).fit(recs[1:], validation=[rec])


def test_snp_imputation_uses_training_mean(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path), COLS)
    vecs = [np.load(r["snp"]) for r in recs[:4]]
    np.save(recs[8]["snp"], np.full(N_SNP, np.nan, np.float32))
    pre = FeaturePreprocessor(NUM, CAT, N_SNP, modalities=("snp",)).fit(recs[:4])
    np.testing.assert_allclose(pre.encode(recs[8])["snp"], np.mean(vecs, 0), rtol=1e-5)


def test_load_cohort_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset_dir .*nowhere does not exist; expected"):
        load_cohort(str(tmp_path / "nowhere"), clinical_columns=COLS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is empty"):
        load_cohort(str(tmp_path / "empty"), clinical_columns=COLS)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="has no manifest"):
        load_cohort(str(tmp_path / "other"), clinical_columns=COLS)


def test_prepare_batch_passes_vectors_as_keywords():
    batch = {
        "image": torch.zeros(2, 2, 4, 4),
        "label": torch.tensor([0, 1]),
        "snp": torch.ones(2, 3),
        "clinical": torch.ones(2, 5),
        "subject_id": ["a", "b"],
    }
    image, label, args, kwargs = MultiomicPrepareBatch(("snp", "clinical"))(batch)
    assert image.shape == (2, 2, 4, 4) and label.tolist() == [0, 1] and args == ()
    assert set(kwargs) == {"snp", "clinical"}
    image, _, _, kwargs = MultiomicPrepareBatch(("snp",))({k: v for k, v in batch.items() if k != "image"})
    assert image is None and set(kwargs) == {"snp"}


def test_unlabelled_datalist(tmp_path):
    _write_cohort(tmp_path, header_drop="label")  # inference cohort: no label column
    out = cohort_datalist(
        str(tmp_path), clinical_numeric=NUM, clinical_categorical=CAT, snp_features=N_SNP, require_label=False
    )
    assert len(out["all"]) == 9 and all(r["label"] == -1 for r in out["all"]) and out["training"] == []


def test_preprocessing_file_checks(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path), COLS)
    path = str(tmp_path / "pre.json")
    FeaturePreprocessor(NUM, CAT, N_SNP, 6).fit(recs[:6], path, validation=recs[6:7])
    ok = FeaturePreprocessor.load(path, clinical_numeric=NUM, clinical_categorical=CAT, snp_features=N_SNP)
    assert ok.subjects == {"training": [f"S0{i}" for i in range(1, 7)], "validation": ["S07"]}
    with pytest.raises(InputError, match="made with clinical_numeric \\['age', 'mmse'\\], this config has \\['age'\\]"):
        FeaturePreprocessor.load(path, clinical_numeric=["age"])
    with pytest.raises(InputError, match="made with snp_features 12, this config has 20"):
        FeaturePreprocessor.load(path, snp_features=20)
    with pytest.raises(MissingInputError, match="nowhere.json does not exist: training writes it"):
        FeaturePreprocessor.load(str(tmp_path / "nowhere.json"))
    (tmp_path / "cut.json").write_text(open(path).read()[:50])
    with pytest.raises(InputError, match="cut.json is not valid JSON: .* line 1, column"):
        FeaturePreprocessor.load(str(tmp_path / "cut.json"))
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="is not a 'multiomic-preprocessing/2' file"):
        FeaturePreprocessor.load(str(tmp_path / "other.json"))


def test_select_split_refuses_empty_and_leaked_splits(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path, n_per_class=5), COLS)
    splits = assign_splits(recs, 0.2, 0.2, seed=0, stratify=True)
    pre = FeaturePreprocessor(NUM, CAT, N_SNP).fit(splits["training"], validation=splits["validation"])
    assert check_unseen(select_split(splits, "test"), "test", pre) == splits["test"]
    assert check_unseen(select_split(splits, "validation"), "validation", pre) == splits["validation"]
    with pytest.raises(InputError, match="no test cases, .* --eval_split validation"):
        select_split(assign_splits(recs, 0.2, 0.0, seed=0, stratify=True), "test")
    other = assign_splits(recs, 0.2, 0.2, seed=1, stratify=True)  # another seed: test subjects were trained on
    with pytest.raises(InputError, match="of the 3 test subjects .* were used to train or select the model"):
        check_unseen(select_split(other, "test"), "test", pre)
    with pytest.raises(InputError, match="'eval_split' is 'training'"):
        select_split(splits, "training")


def test_resume_refuses_another_split(tmp_path):
    recs = read_manifest(_write_cohort(tmp_path, n_per_class=5), COLS)
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    path = str(ckpt / "preprocessing.json")
    FeaturePreprocessor(NUM, CAT, N_SNP).fit(recs[:10], path)
    again = FeaturePreprocessor(NUM, CAT, N_SNP).fit(recs[:10])
    check_resumed_preprocessing(again, path, str(ckpt))  # no checkpoint_last.pt: nothing to resume
    (ckpt / "checkpoint_last.pt").write_bytes(b"x")
    check_resumed_preprocessing(again, path, str(ckpt))  # the same split and encoding
    other = FeaturePreprocessor(NUM, CAT, N_SNP).fit(recs[2:12])
    with pytest.raises(
        InputError, match="differs from the one the checkpoint was trained with .*clinical, snp, subjects"
    ):
        check_resumed_preprocessing(other, path, str(ckpt))
    check_resumed_preprocessing(other, path, str(ckpt), resume=False)


def test_datalist_decodes_only_the_splits_a_run_uses(tmp_path):
    _write_cohort(tmp_path, n_per_class=5)
    kw = dict(clinical_numeric=NUM, clinical_categorical=CAT, snp_features=N_SNP, val_fraction=0.2, test_fraction=0.2)
    test_id = cohort_datalist(str(tmp_path), **kw)["test"][0]["subject_id"]
    (tmp_path / "img" / f"{test_id}_mri.nii.gz").write_bytes(b"not a volume")
    out = cohort_datalist(str(tmp_path), check_splits=["training", "validation"], **kw)  # training: test unread
    assert [len(out[k]) for k in ("training", "validation", "test")] == [9, 3, 3]
    with pytest.raises(InputError, match=f"The MRI .*{test_id}_mri.nii.gz .* cannot be read"):
        cohort_datalist(str(tmp_path), check_splits=["test"], **kw)  # evaluation of the test split
    with pytest.raises(InputError, match="config id 'modalities' is \\['mri', 'ct'\\]"):
        cohort_datalist(str(tmp_path), modalities=["mri", "ct"], **kw)
