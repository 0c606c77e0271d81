# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""End-to-end runs of the ad_multiomic_classification bundle on a tiny synthetic cohort (12 subjects, 6 mm volumes,
200 SNPs, 64-pixel slices, ResNet10 encoders): through monai.bundle.ConfigWorkflow, and through the real command line
(tests/runner.py) for every class of bad input, each of which must stop the run before any compute with one last
line that names the file or config id, leaving a trained model untouched."""

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from shared.multiomic.manifest import read_manifest
from shared.splits import assign_splits
from tests.crafted import claiming_nifti, spine_checkpoint
from tests.runner import run_bundle

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "ad_multiomic_classification"
CONFIGS = BUNDLE / "configs"
TINY = json.loads((Path(__file__).parent / "tiny" / "ad_multiomic_classification.json").read_text())


def workflow(config, workflow_type, **overrides):
    files = [str(CONFIGS / c) for c in ([config] if isinstance(config, str) else config)]
    return ConfigWorkflow(
        config_file=files,
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        **overrides,
    )


def run(wf):
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return wf


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def paths(root, name="models"):
    return {
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(root / "demo"),
        "demo_dataset_dir": str(root / "demo"),
        "ckpt_dir": str(root / name),
        "output_dir": str(root / "eval"),
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ad_multiomic")
    return root


@pytest.fixture(scope="module")
def trained(run_dir):
    ov = {**TINY["train"], **paths(run_dir)}
    run(workflow("train.json", "train", **ov))
    return ov


def test_training_writes_weights_preprocessing_and_demo(trained, run_dir):
    models = run_dir / "models"
    assert (models / "model.pt").is_file() and (models / "checkpoint_last.pt").is_file()
    sd = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert "fusion.clinical_to_mri.attn.to_q.weight" in sd and "image_encoders.pet.proj.weight" in sd
    pre = json.loads((models / "preprocessing.json").read_text())
    assert pre["clinical"]["levels"] == {"sex": ["F", "M"]} and len(pre["snp"]["mean"]) == 200
    assert len(rows(run_dir / "demo" / "manifest.csv")) == 12


def test_resume_continues_from_last_epoch(trained, run_dir):
    wf = workflow("train.json", "train", **{**trained, "max_epochs": 2})
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    wf.run()
    wf.finalize()
    assert epochs == [2]  # epoch 1 came from checkpoint_last.pt


def test_evaluate_writes_report_probabilities_and_attention(trained, run_dir):
    ov = {**trained, "output_dir": str(run_dir / "eval_test")}
    run(workflow(["train.json", "evaluate.json"], "train", **ov))
    out = run_dir / "eval_test"
    report = json.loads((out / "metrics.json").read_text())
    assert report["cases"] == 3 and set(report["per_class"]) == {"CN", "MCI", "AD"}  # test split: 1 subject per class
    assert np.asarray(report["confusion_matrix"]).sum() == 3
    probs = rows(out / "probabilities.csv")
    assert len(probs) == 3 and all(r["label"] for r in probs)
    assert abs(sum(float(probs[0][f"prob_{c}"]) for c in ("CN", "MCI", "AD")) - 1.0) < 1e-4


def test_inference_outputs_per_subject(trained, run_dir):
    ov = {**TINY["infer"], **paths(run_dir), "output_dir": str(run_dir / "infer")}
    run(workflow("inference.json", "infer", **ov))
    out = run_dir / "infer"
    probs = rows(out / "probabilities.csv")
    assert [r["subject_id"] for r in probs] == [f"SUBJ{i:04d}" for i in range(1, 13)]
    att = np.load(out / "attention" / "SUBJ0005.npz")
    assert att["clinical_to_mri_grid"].shape == (4, 1, 2, 2) and att["snp_to_pet"].shape == (4, 1, 4)
    np.testing.assert_allclose(att["clinical_to_mri"].sum(-1), 1.0, rtol=1e-5)
    long = rows(out / "cross_attention.csv")
    assert len(long) == 12 * 2 * 4  # subjects x blocks x regions (head-averaged, one query token)
    assert {r["block"] for r in long} == {"clinical_to_mri", "snp_to_pet"}


def test_ablation_symmetric_without_pet_trains(run_dir):
    ov = {
        **TINY["train"],
        **paths(run_dir, "models_ablation"),
        "modalities": ["mri", "snp", "clinical"],
        "network_def#fusion": "symmetric",
        "clinical_features": 7,
    }
    run(workflow("train.json", "train", **ov))
    sd = torch.load(run_dir / "models_ablation" / "model.pt", map_location="cpu", weights_only=True)
    assert "fusion.mri_to_clinical.attn.to_q.weight" in sd and not any(k.startswith("image_encoders.pet") for k in sd)


def test_user_dataset_dir_errors(run_dir, tmp_path):
    ov = {**TINY["train"], **paths(run_dir, "models_err"), "dataset_dir": str(tmp_path / "missing")}
    wf = workflow("train.json", "train", **ov)
    with pytest.raises(Exception) as info:
        wf.initialize()
        wf.run()
    chain, e = [], info.value
    while e is not None:  # the config parser wraps the error raised by the datalist
        chain.append(str(e))
        e = e.__cause__
    assert any("missing does not exist; expected <dataset_dir>/manifest.csv" in m for m in chain), chain


def test_verify_net_in_out_and_torchscript_with_vector_inputs(tmp_path):
    """MONAI's verify_net_in_out on the metadata shapes, with the SNP and clinical vectors as extra forward inputs,
    and a scripted export that reproduces the eager outputs (tiny encoders, full 224-pixel slices)."""
    from monai.bundle import ConfigParser, verify_net_in_out

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    inputs = meta["network_data_format"]["inputs"]
    extra = {k: torch.rand(1, *inputs[k]["spatial_shape"]) for k in ("snp", "clinical")}
    ov = {"bundle_root": str(BUNDLE), "network_def#backbone": "resnet10"}
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        device="cpu",
        extra_forward_args=extra,
        **ov,
    )
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update(ov)
    net = parser.get_parsed_content("network_def").eval()
    scripted = torch.jit.script(net)
    torch.jit.save(scripted, str(tmp_path / "model.ts"))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    image = torch.rand(1, inputs["image"]["num_channels"], *inputs["image"]["spatial_shape"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, **extra), net(image, **extra))


# --- the command line, as a user runs it ---------------------------------------------------------------------------

TRAIN = ["run", "training", "--config_file", str(CONFIGS / "train.json")]
EVALUATE = ["run", "evaluating", "--config_file", str([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])]
INFER = ["run", "--config_file", str(CONFIGS / "inference.json")]


def cli(overrides):
    """``--id value`` pairs as a user types them (Python literals: the runner reads ``true`` as a string)."""
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return args


@pytest.fixture(scope="module")
def splits(trained):
    """Subject ids of the tiny demo cohort per split (the bundle's defaults: seed 0, 0.2 / 0.2)."""
    recs = read_manifest(str(Path(trained["dataset_dir"]) / "manifest.csv"), modalities=("mri",), require_label=True)
    out = {k: [r["subject_id"] for r in v] for k, v in assign_splits(recs, 0.2, 0.2, 0, stratify=True).items()}
    assert "SUBJ0002" in out["training"]  # the subject the training cases edit
    return out


def user_copy(trained, tmp_path):
    """A user's folders: a copy of the demo cohort (a user folder: never rewritten as demo) and of the trained
    model folder (model.pt, checkpoint_last.pt, preprocessing.json)."""
    data, models = tmp_path / "cohort", tmp_path / "models"
    shutil.copytree(trained["dataset_dir"], data)
    shutil.copytree(trained["ckpt_dir"], models)
    paths = {
        "dataset_dir": str(data),
        "demo_dataset_dir": str(tmp_path / "no_demo"),
        "ckpt_dir": str(models),
        "output_dir": str(tmp_path / "out"),
    }
    return data, models, paths


def edit_manifest(data, edit):
    path = data / "manifest.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    edit(rows, header)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def row(rows, sid):
    return next(r for r in rows if r["subject_id"] == sid)


def rewrite_volume(path, fn):
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(fn(np.asarray(img.dataobj, np.float32)), img.affine), str(path))


def with_npy(data, sid, vector):
    """Point ``sid``'s snp column at a .npy file holding ``vector`` (bytes are written as they are)."""
    (data / "snp").mkdir(exist_ok=True)
    path = data / "snp" / f"{sid}.npy"
    if isinstance(vector, bytes):
        path.write_bytes(vector)
    else:
        np.save(path, np.asarray(vector))
    edit_manifest(data, lambda rows, h: row(rows, sid).update(snp=f"snp/{sid}.npy"))


def nan_volume(a):
    a[1, 2, 3] = np.nan
    return a


def case(table, name):
    """The row of a case table named ``name``."""
    return next(c for c in table if c[0] == name)


# (case id, edit(data, models, splits) -> extra overrides or None, expected fragments of the last line)
# The edited subject is SUBJ0002 (manifest line 3, a training subject) unless the case says otherwise; every training
# case runs with --overwrite True, so that the data check, not the fresh-run guard, is what stops it.
TRAIN_CASES = [
    (
        "manifest_missing_column",
        lambda d, m, s: edit_manifest(d, lambda rows, h: h.remove("mmse")),
        ["manifest.csv lacks column(s) ['mmse']"],
    ),
    (
        "manifest_bad_csv_line",
        lambda d, m, s: (d / "manifest.csv").write_text((d / "manifest.csv").read_text() + "SUBJ0099,extra\n"),
        ["manifest.csv line 14 has 2 fields, the header has 13"],
    ),
    (
        "manifest_not_text",
        lambda d, m, s: (d / "manifest.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(64)),
        ["manifest.csv is not a UTF-8 text file"],
    ),
    (
        "manifest_duplicate_id",
        lambda d, m, s: edit_manifest(d, lambda rows, h: rows[5].update(subject_id=rows[4]["subject_id"])),
        ["manifest.csv line 7: subject_id 'SUBJ0005' appears twice (lines 6 and 7)"],
    ),
    (
        "manifest_unknown_label",
        lambda d, m, s: edit_manifest(d, lambda rows, h: rows[2].update(label="Dementia")),
        ["line 4 (subject 'SUBJ0003') has label 'Dementia': expected one of ['CN', 'MCI', 'AD']"],
    ),
    (
        "manifest_empty_validation_split",
        lambda d, m, s: edit_manifest(
            d, lambda rows, h: (h.append("split"), [r.update(split="training") for r in rows])
        ),
        ["The validation split of", "is empty (12 subjects, split by a manifest 'split' column)"],
    ),
    (
        "mri_zero_bytes",
        lambda d, m, s: (d / "mri" / "SUBJ0002.nii.gz").write_bytes(b""),
        ["The MRI", "mri/SUBJ0002.nii.gz (manifest", "is empty (0 bytes)"],
    ),
    (
        "mri_truncated",
        lambda d, m, s: (d / "mri" / "SUBJ0002.nii.gz").write_bytes(
            (d / "mri" / "SUBJ0002.nii.gz").read_bytes()[:2000]
        ),
        ["The MRI", "SUBJ0002.nii.gz", "cannot be read as NIfTI / Analyze"],
    ),
    (
        "mri_not_nifti",
        lambda d, m, s: (d / "mri" / "SUBJ0002.nii.gz").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500)),
        ["The MRI", "SUBJ0002.nii.gz", "cannot be read as NIfTI / Analyze"],
    ),
    (
        "pet_wrong_rank",
        lambda d, m, s: rewrite_volume(d / "pet" / "SUBJ0002.nii.gz", lambda a: np.stack([a, a], -1)),
        ["The PET", "pet/SUBJ0002.nii.gz", "has 2 channels", "expected 1"],
    ),
    (
        "mri_nan",
        lambda d, m, s: rewrite_volume(d / "mri" / "SUBJ0002.nii.gz", nan_volume),
        ["The MRI", "SUBJ0002.nii.gz", "1 non-finite voxel(s) (1 NaN, 0 Inf), the first at index (1, 2, 3)"],
    ),
    (
        "pet_constant",
        lambda d, m, s: rewrite_volume(d / "pet" / "SUBJ0002.nii.gz", lambda a: np.full_like(a, 3.0)),
        ["The PET", "SUBJ0002.nii.gz", "is constant"],
    ),
    (
        "plink_truncated",
        lambda d, m, s: (d / "genotypes" / "cohort.bed").write_bytes(
            (d / "genotypes" / "cohort.bed").read_bytes()[:-7]
        ),
        ["PLINK file", "cohort.bed' has", "bytes, expected", "truncated"],
    ),
    (
        "snp_wrong_length",
        lambda d, m, s: with_npy(d, "SUBJ0002", np.zeros(150, np.float32)),
        ["SNP file", "SUBJ0002.npy' (subject 'SUBJ0002') has 150 SNPs, expected 200 (config snp_features)"],
    ),
    (
        "snp_bad_codes",
        lambda d, m, s: with_npy(d, "SUBJ0002", np.r_[np.zeros(199), 3.0].astype(np.float32)),
        ["SUBJ0002.npy' (subject 'SUBJ0002'): SNP index 199 holds 3, not a genotype code", "codes are 0, 1, 2"],
    ),
    (
        "snp_negative_code",
        lambda d, m, s: with_npy(d, "SUBJ0002", np.r_[np.zeros(17), -2.0, np.zeros(182)].astype(np.float32)),
        ["SUBJ0002.npy' (subject 'SUBJ0002'): SNP index 17 holds -2, not a genotype code", "missing as -1"],
    ),
    (
        "snp_unreadable",
        lambda d, m, s: with_npy(d, "SUBJ0002", b"\x93NUMPY garbage"),
        ["SNP file", "SUBJ0002.npy' (subject 'SUBJ0002')", "not a numeric .npy file"],
    ),
    (
        "clinical_not_a_number",
        lambda d, m, s: edit_manifest(d, lambda rows, h: row(rows, "SUBJ0002").update(education="sixteen")),
        ["line 3, subject 'SUBJ0002': clinical column 'education': value 'sixteen' is not a number"],
    ),
    (
        "clinical_word_in_a_test_subject",
        lambda d, m, s: edit_manifest(d, lambda rows, h: row(rows, s["test"][0]).update(age="seventy-two")),
        ["manifest.csv line", "subject 'SUBJ", "clinical column 'age': value 'seventy-two' is not a number"],
    ),
    (
        "clinical_out_of_range",
        lambda d, m, s: edit_manifest(d, lambda rows, h: row(rows, "SUBJ0002").update(mmse="-4")),
        ["subject 'SUBJ0002': clinical column 'mmse' is -4, outside its valid range [0, 30]"],
    ),
    (
        "clinical_level_unseen_in_training",
        lambda d, m, s: edit_manifest(d, lambda rows, h: row(rows, s["validation"][0]).update(sex="X")),
        ["clinical column 'sex' has level 'X', never seen in the training split ['F', 'M']"],
    ),
    ("config_wrong_type", lambda d, m, s: {"learning_rate": "fast"}, ["config id 'learning_rate' is 'fast' (str)"]),
    (
        "config_unknown_clinical_set",
        lambda d, m, s: {"clinical_set": "everything"},
        ["config id 'clinical_set' is 'everything'", "'diagnostic', 'non_diagnostic'"],
    ),
    ("config_out_of_range", lambda d, m, s: {"val_fraction": 1.5}, ["config id 'val_fraction' is 1.5"]),
    (
        "output_folder_not_writable",
        lambda d, m, s: ((d / "a_file").write_text("x"), {"output_dir": str(d / "a_file" / "eval")})[1],
        ["output folder", "a_file/eval cannot be written"],
    ),
    (
        "resume_with_another_split",
        lambda d, m, s: {"seed": 1, "overwrite": False},
        ["would resume", "checkpoint_last.pt, but its training split", "differs", "subjects"],
    ),
    (
        "resume_checkpoint_truncated",
        lambda d, m, s: (m / "checkpoint_last.pt").write_bytes((m / "checkpoint_last.pt").read_bytes()[:1000]),
        ["Checkpoint", "checkpoint_last.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "resume_checkpoint_of_another_bundle",
        lambda d, m, s: torch.save(spine_checkpoint(), m / "checkpoint_last.pt"),
        ["checkpoint_last.pt was made for AdaptiveSwinUNETR (spine_seg), not for this bundle's ACMCA"],
    ),
    (
        "dataset_dir_is_a_file",
        lambda d, m, s: {"dataset_dir": str(d / "manifest.csv")},
        ["dataset_dir", "manifest.csv is a file, not a folder", "expected <dataset_dir>/manifest.csv"],
    ),
    (
        "mri_claiming_16_gib",
        lambda d, m, s: claiming_nifti(d / "mri" / "SUBJ0002.nii.gz"),
        ["The MRI", "SUBJ0002.nii.gz (manifest", "claims 2048 x 2048 x 1024 float32 voxels"],
    ),
    (
        "fresh_run_would_replace_model",
        lambda d, m, s: {"resume": False, "overwrite": False},
        ["model.pt already holds a trained model", "--overwrite True"],
    ),
]


def _snapshot(models):
    return {p.name: p.read_bytes() for p in sorted(models.iterdir()) if p.is_file()}


def _assert_refused(done, expected, models, before, output_dir):
    assert done.returncode != 0, done.output[-3000:]
    assert done.last_line.startswith("ERROR: "), done.output[-3000:]
    for fragment in expected:
        assert fragment in done.last_line, (fragment, done.last_line)
    assert "Iter:" not in done.output and "Epoch[1] Metrics" not in done.output  # no iteration ran
    assert _snapshot(models) == before  # model.pt, checkpoint_last.pt and preprocessing.json untouched
    written = [p.name for p in Path(output_dir).rglob("*") if p.is_file() and not p.name.startswith("events.")]
    assert not written, written


@pytest.mark.parametrize("case, edit, expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input_stops_before_compute(trained, splits, tmp_path, case, edit, expected):
    data, models, paths = user_copy(trained, tmp_path)
    extra = edit(data, models, splits)
    extra = extra if isinstance(extra, dict) else {}  # an edit returns the overrides it needs, if any
    before = _snapshot(models)
    overrides = {**TINY["train"], **paths, "overwrite": True, "max_epochs": 2, **extra}
    done = run_bundle(TRAIN + cli(overrides), cwd=tmp_path)
    _assert_refused(done, expected, models, before, overrides["output_dir"])


EVAL_CASES = [
    ("no_test_split", lambda d, m, s: {"test_fraction": 0.0}, ["no test cases", "--eval_split validation"]),
    (
        "test_subjects_were_trained_on",
        lambda d, m, s: {"seed": 3},
        ["test subjects", "were used to train or select the model", "preprocessing.json"],
    ),
    ("eval_split_unknown", lambda d, m, s: {"eval_split": "training"}, ["config id 'eval_split' is 'training'"]),
    (
        "test_mri_nan",
        lambda d, m, s: rewrite_volume(d / "mri" / f"{s['test'][0]}.nii.gz", nan_volume),
        ["The MRI", "non-finite voxel(s)"],
    ),
    (
        "model_truncated",
        lambda d, m, s: (m / "model.pt").write_bytes((m / "model.pt").read_bytes()[:5000]),
        ["model.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "model_of_another_network",
        lambda d, m, s: {"network_def#backbone": "resnet18"},
        ["model.pt was not made for this network (ACMCA with these settings)"],
    ),
    (
        "model_pickled",
        lambda d, m, s: torch.save({"model": torch.nn.Linear(2, 2)}, m / "model.pt"),
        ["model.pt is not a plain state dict"],
    ),
    (
        "preprocessing_missing",
        lambda d, m, s: (m / "preprocessing.json").unlink(),
        ["preprocessing.json does not exist: training writes it beside model.pt"],
    ),
    (
        "preprocessing_corrupt",
        lambda d, m, s: (m / "preprocessing.json").write_text('{"format": "multiomic-preprocessing/2", "snp": [1,'),
        ["preprocessing.json is not valid JSON", "line 1, column"],
    ),
    (
        "preprocessing_of_another_config",
        lambda d, m, s: {"clinical_set": "non_diagnostic"},
        ["preprocessing.json was made with clinical_numeric", "--clinical_set"],
    ),
]


@pytest.mark.parametrize("case, edit, expected", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_bad_evaluation_input_stops_before_compute(trained, splits, tmp_path, case, edit, expected):
    data, models, paths = user_copy(trained, tmp_path)
    extra = edit(data, models, splits)
    extra = extra if isinstance(extra, dict) else {}  # an edit returns the overrides it needs, if any
    before = _snapshot(models)
    overrides = {**TINY["train"], **paths, **extra}
    done = run_bundle(EVALUATE + cli(overrides), cwd=tmp_path)
    _assert_refused(done, expected, models, before, overrides["output_dir"])


INFER_CASES = [
    case(TRAIN_CASES, "manifest_bad_csv_line"),  # manifest not valid CSV
    case(TRAIN_CASES, "mri_truncated"),  # truncated MRI
    case(TRAIN_CASES, "snp_wrong_length"),  # SNP vector of the wrong length
    (
        "clinical_level_unseen_in_training",
        lambda d, m, s: edit_manifest(d, lambda rows, h: rows[0].update(sex="X")),
        ["clinical column 'sex' has level 'X', never seen in the training split"],
    ),
    case(EVAL_CASES, "model_truncated"),  # truncated model.pt
    case(EVAL_CASES, "preprocessing_missing"),  # preprocessing.json missing
    case(EVAL_CASES, "preprocessing_of_another_config"),  # preprocessing.json of another clinical set
]


@pytest.mark.parametrize("case, edit, expected", INFER_CASES, ids=[c[0] for c in INFER_CASES])
def test_bad_inference_input_stops_before_compute(trained, splits, tmp_path, case, edit, expected):
    data, models, paths = user_copy(trained, tmp_path)
    extra = edit(data, models, splits)
    extra = extra if isinstance(extra, dict) else {}  # an edit returns the overrides it needs, if any
    before = _snapshot(models)
    overrides = {**TINY["infer"], **paths, **extra}
    done = run_bundle(INFER + cli(overrides), cwd=tmp_path)
    _assert_refused(done, expected, models, before, overrides["output_dir"])


def test_evaluation_from_another_ckpt_dir_scores_the_test_split(trained, splits, tmp_path):
    """The command line with a non-default --ckpt_dir: the model and its preprocessing are read from there, the test
    split is scored, and the run ends with its one-line score."""
    data, models, paths = user_copy(trained, tmp_path)
    elsewhere = tmp_path / "elsewhere" / "weights"
    shutil.move(str(models), str(elsewhere))
    done = run_bundle(EVALUATE + cli({**TINY["train"], **paths, "ckpt_dir": str(elsewhere)}), cwd=tmp_path)
    assert done.returncode == 0, done.output[-3000:]
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["split"] == "test" and report["cases"] == len(splits["test"]) == 3
    probs = rows(tmp_path / "out" / "probabilities.csv")
    assert sorted(r["subject_id"] for r in probs) == sorted(splits["test"])
    last = done.stdout.strip().splitlines()[-1]  # stderr holds only the progress bar, which clears itself
    assert last.startswith("test split (3 cases, 3 subjects): macro_auroc "), last
    assert last.endswith(str(tmp_path / "out" / "metrics.json"))
