# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""glaucoma_oct_classification end to end on its synthetic demo data (tiny sizes): both training stages, evaluation
on the test split and inference through monai.bundle.ConfigWorkflow; and, through the real command line
(tests/runner.py), every class of bad input for training, stage 2, evaluation and inference, each of which must stop
the run before its first iteration with one last line naming the file or config id, leaving the models untouched."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from tests.crafted import claiming_npy, spine_checkpoint
from tests.runner import run_bundle

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "glaucoma_oct_classification"
CONFIGS = BUNDLE / "configs"
TINY = json.loads((Path(__file__).parent / "tiny" / "glaucoma_oct_classification.json").read_text())
CLASSES = ("non_glaucoma", "glaucoma")


def _workflow(files, workflow_type, **overrides):
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in files],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    wf.initialize()
    assert wf.check_properties() == []
    return wf


def _run(files, workflow_type, **overrides):
    wf = _workflow(files, workflow_type, **overrides)
    wf.run()
    wf.finalize()
    return wf


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bundle root with the demo data, stage 1 (one tiny epoch) in models/ and stage 2 in models/finetune/."""
    root = tmp_path_factory.mktemp("glaucoma_bundle")
    _run(["train.json"], "train", bundle_root=str(root), **TINY["train"])
    _run(["train.json", "finetune.json"], "train", bundle_root=str(root), **TINY["train"])
    return root


@pytest.fixture(scope="module")
def record(trained):
    """Stage 1's training record, with each split's volumes also as paths relative to the demo folder."""
    rec = json.loads((trained / "models" / "training_record.json").read_text())
    demo = trained / "data" / "demo"
    paths = {s: rec[s].values() if isinstance(rec[s], dict) else rec[s] for s in ("training", "validation", "test")}
    rec["splits"] = {s: sorted(str(Path(p).relative_to(demo)) for p in v) for s, v in paths.items()}
    return rec


def test_stage1_writes_model_threshold_and_record(trained, record):
    models = trained / "models"
    assert {"model.pt", "checkpoint_last.pt", "threshold.json", "training_record.json"} <= set(
        p.name for p in models.iterdir()
    )
    assert "arch_signature" in torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert 0.0 <= json.loads((models / "threshold.json").read_text())["threshold"] <= 1.0
    assert "best_model" in torch.load(
        models / "checkpoint_last.pt", weights_only=True
    )  # the bar a resumed run must beat
    assert len(list((trained / "data" / "demo" / "glaucoma").iterdir())) == 8  # 4 patients x 2 eyes
    # patient-level splits (2 of 8 patients each for validation and test), recorded with the settings
    patients = {
        s: {Path(p).name.split("_")[0] for p in record["splits"][s]} for s in ("training", "validation", "test")
    }
    assert [len(patients[s]) for s in ("training", "validation", "test")] == [4, 2, 2]
    assert not (patients["training"] & patients["test"] or patients["validation"] & patients["test"])
    assert record["settings"]["input_size"] == TINY["train"]["input_size"]
    volume = trained / "data" / "demo" / record["splits"]["training"][0]
    assert record["training"][hashlib.sha256(volume.read_bytes()).hexdigest()] == str(volume)  # known by content


def test_stage2_finetunes_stage1_in_its_own_folder(trained):
    stage1 = torch.load(trained / "models" / "model.pt", map_location="cpu", weights_only=True)
    ft = trained / "models" / "finetune"
    assert {"model.pt", "checkpoint_last.pt", "threshold.json", "training_record.json"} <= set(
        p.name for p in ft.iterdir()
    )
    stage2 = torch.load(ft / "model.pt", map_location="cpu", weights_only=True)
    key = "stages.1.block.attn.0.kv.weight"
    assert not torch.equal(stage1[key], stage2[key])  # trained further, starting from stage 1
    assert "best_model" in torch.load(ft / "checkpoint_last.pt", weights_only=True)
    assert (trained / "models" / "training_record.json").read_text() == (ft / "training_record.json").read_text()


def test_stage1_resumes_where_it_stopped(trained, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(trained / "models", models, ignore=shutil.ignore_patterns("finetune"))
    wf = _workflow(
        ["train.json"], "train", bundle_root=str(trained), **{**TINY["train"], "max_epochs": 2}, ckpt_dir=str(models)
    )
    epochs = []
    wf.parser.get_parsed_content("train#trainer").add_event_handler(
        Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch)
    )
    wf.run()
    wf.finalize()
    assert epochs == [2]  # epoch 1 came from checkpoint_last.pt
    assert torch.load(models / "checkpoint_last.pt", weights_only=True)["trainer"]["iteration"] == 2 * 4  # 8 volumes


def test_evaluation_scores_the_test_split_with_the_youden_threshold(trained, record):
    out = trained / "eval_test"
    _run(
        ["train.json", "evaluate.json"],
        "eval",
        bundle_root=str(trained),
        output_dir=str(out),
        use_youden_threshold=True,
        **TINY["train"],
    )
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test" and report["cases"] == 4 and report["subjects"] == 2
    assert report["model"] == str(trained / "models" / "finetune" / "model.pt")  # the latest stage
    assert report["threshold"] == pytest.approx(
        json.loads((trained / "models" / "finetune" / "threshold.json").read_text())["threshold"]
    )
    assert {"accuracy", "auroc", "sensitivity", "specificity", "precision", "f1", "loss", "confusion_matrix"} <= set(
        report
    )
    rows = _rows(out / "test_predictions.csv")
    demo = trained / "data" / "demo"
    assert sorted(str(Path(r["image"]).relative_to(demo)) for r in rows) == record["splits"]["test"]
    assert all(0 <= float(r["prob_glaucoma"]) <= 1 and r["label"] in CLASSES for r in rows)


def test_inference_writes_probabilities_and_maps(trained):
    out = trained / "infer_out"
    data = trained / "data" / "demo" / "glaucoma"
    _run(
        ["inference.json"],
        "infer",
        bundle_root=str(trained),
        output_dir=str(out),
        dataset_dir=str(data),
        save_maps=True,
        **TINY["infer"],
    )
    rows = _rows(out / "predictions.csv")
    assert len(rows) == 8 and "label" not in rows[0]
    assert float(rows[0]["prob_glaucoma"]) + float(rows[0]["prob_non_glaucoma"]) == pytest.approx(1.0, abs=1e-4)
    stem = Path(rows[0]["image"]).name[: -len(".npy")]
    care = nib.load(out / f"{stem}_care.nii.gz").get_fdata()
    assert care.shape == tuple(TINY["infer"]["input_size"]) and 0 <= care.min() and care.max() <= 1 + 1e-6
    assert (out / f"{stem}_gradcam.nii.gz").is_file() and (out / f"{stem}_montage.png").stat().st_size > 1000
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


# --- the command line, as a user runs it ---------------------------------------------------------------------------

TRAIN = ["run", "training", "--config_file", str(CONFIGS / "train.json")]
FINETUNE = ["run", "finetuning", "--config_file", str([str(CONFIGS / "train.json"), str(CONFIGS / "finetune.json")])]
EVALUATE = ["run", "evaluating", "--config_file", str([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])]
INFER = ["run", "--config_file", str(CONFIGS / "inference.json")]


def cli(overrides):
    """``--id value`` pairs as a user types them (Python literals for non-strings)."""
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return args


def user_copy(trained, tmp_path):
    """A user's folders: a copy of the demo data (as user data: never rewritten as a demo) and of the models."""
    data, models = tmp_path / "oct", tmp_path / "models"
    shutil.copytree(trained / "data" / "demo", data)
    shutil.copytree(trained / "models", models)
    paths = {
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(data),
        "demo_dataset_dir": str(tmp_path / "no_demo"),
        "ckpt_dir": str(models),
        "output_dir": str(tmp_path / "out"),
    }
    return data, models, paths


def snapshot(models):
    return {str(p.relative_to(models)): p.read_bytes() for p in sorted(models.rglob("*")) if p.is_file()}


def write_datalist(data, name="list.csv", edit=None):
    """A CSV datalist of every demo volume (relative paths, class names as labels); ``edit(rows, header)`` first."""
    header = ["image", "label"]
    rows = [{"image": str(p.relative_to(data)), "label": p.parent.name} for p in sorted(data.rglob("*.npy"))]
    if edit:
        edit(rows, header)
    with open(data / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return {"datalist_file": str(data / name)}


def with_splits(record, drop=()):
    """A datalist edit giving every row the split the record has for it (splits in ``drop`` become training)."""

    def edit(rows, header):
        header.append("split")
        where = {p: s for s in ("training", "validation", "test") for p in record["splits"][s]}
        for r in rows:
            r["split"] = "training" if where.get(r["image"], "training") in drop else where.get(r["image"], "training")

    return edit


def resave(path, fn):
    np.save(path, fn(np.load(path)))


def nan_at_123(a):
    a = a.astype(np.float32)
    a[1, 2, 3] = np.nan
    return a


def train_volume(data, record):
    return data / record["splits"]["training"][0]


def held_out_volume(data, record):
    return data / record["splits"]["test"][0]


def case(table, name):
    """The row of a case table named ``name``."""
    return next(c for c in table if c[0] == name)


# (case, edit(data, models, record) -> extra overrides or None, fragments the last line must hold)
TRAIN_CASES = [
    ("volume_zero_bytes", lambda d, m, r: train_volume(d, r).write_bytes(b""), ["OCT volume", "is empty (0 bytes)"]),
    (
        "volume_truncated",
        lambda d, m, r: train_volume(d, r).write_bytes(train_volume(d, r).read_bytes()[:2000]),
        ["is truncated: 2000 bytes, but its header declares (16, 24, 16) uint8"],
    ),
    (
        "volume_not_npy",
        lambda d, m, r: train_volume(d, r).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600)),
        ["is not a NumPy .npy file"],
    ),
    (
        "volume_wrong_rank",
        lambda d, m, r: resave(train_volume(d, r), lambda a: a[0]),
        ["has shape (24, 16): expected a 3D volume"],
    ),
    (
        "volume_three_channels",
        lambda d, m, r: resave(train_volume(d, r), lambda a: np.stack([a, a, a], -1)),
        ["has 3 channels (shape (16, 24, 16, 3)): expected 1"],
    ),
    (
        "volume_nan",
        lambda d, m, r: resave(train_volume(d, r), nan_at_123),
        ["1 non-finite voxel(s) (1 NaN, 0 Inf), the first at index (1, 2, 3)"],
    ),
    ("volume_constant", lambda d, m, r: resave(train_volume(d, r), np.zeros_like), ["is constant (every voxel is 0)"]),
    (
        "volume_claiming_256_gib",
        lambda d, m, r: claiming_npy(train_volume(d, r)),
        ["OCT volume", "claims 4096 x 4096 x 4096 uint8 voxels, 256.0 GiB as float32"],
    ),
    (
        "dataset_dir_is_a_file",
        lambda d, m, r: {"dataset_dir": str(train_volume(d, r))},
        ["dataset_dir", ".npy is a file, not a folder", "expected class folders"],
    ),
    (
        "resume_checkpoint_of_another_bundle",
        lambda d, m, r: torch.save(spine_checkpoint(), m / "checkpoint_last.pt"),
        ["checkpoint_last.pt was made for AdaptiveSwinUNETR (spine_seg), not for this bundle's AICNet3D"],
    ),
    (
        "nifti_truncated",
        lambda d, m, r: (
            nib.save(nib.Nifti1Image(np.load(train_volume(d, r)), np.eye(4)), str(train_volume(d, r))[:-4] + ".nii.gz"),
            Path(str(train_volume(d, r))[:-4] + ".nii.gz").write_bytes(
                Path(str(train_volume(d, r))[:-4] + ".nii.gz").read_bytes()[:300]
            ),
            train_volume(d, r).unlink(),
        )
        and None,
        [".nii.gz is truncated or corrupt"],
    ),
    (
        "nifti_not_gzip",
        lambda d, m, r: (
            Path(str(train_volume(d, r))[:-4] + ".nii.gz").write_bytes(bytes(400)),
            train_volume(d, r).unlink(),
        )
        and None,
        ["is not gzip-compressed although its name ends in .gz"],
    ),
    (
        "class_folder_missing",
        lambda d, m, r: shutil.rmtree(d / "glaucoma"),
        ["class folder", "oct/glaucoma does not exist"],
    ),
    (
        "class_folder_not_a_class",
        lambda d, m, r: shutil.copytree(d / "glaucoma", d / "suspect"),
        ["holds volumes in folder(s) ['suspect'], which are not configured classes"],
    ),
    (
        "datalist_json_syntax",
        lambda d, m, r: (
            (d / "list.json").write_text('{"data": [\n {"image": "glaucoma/P0001_OD.npy",\n  label: 1}]}'),
            {"datalist_file": str(d / "list.json")},
        )[1],
        ["list.json is not valid JSON: Expecting property name enclosed in double quotes at line 3, column 3"],
    ),
    (
        "datalist_missing_column",
        lambda d, m, r: write_datalist(d, edit=lambda rows, h: h.remove("label")),
        ["list.csv lacks column(s) ['label']"],
    ),
    (
        "datalist_field_count",
        lambda d, m, r: (write_datalist(d), (d / "list.csv").write_text((d / "list.csv").read_text() + "a.npy,1,2\n"))[
            0
        ],
        ["list.csv, line 18 has 3 fields, the header has 2"],
    ),
    (
        "datalist_unknown_label",
        lambda d, m, r: write_datalist(d, edit=lambda rows, h: rows[2].update(label="suspect")),
        ["list.csv, line 4: label 'suspect' is not one of the classes"],
    ),
    (
        "datalist_non_integer_label",
        lambda d, m, r: write_datalist(d, edit=lambda rows, h: rows[2].update(label="0.5")),
        ["list.csv, line 4: label 0.5 is not an integer"],
    ),
    (
        "datalist_missing_image",
        lambda d, m, r: write_datalist(d, edit=lambda rows, h: rows[0].update(image="glaucoma/P0099_OD.npy")),
        ["list.csv, line 2: image", "P0099_OD.npy does not exist"],
    ),
    (
        "datalist_bad_volume_names_line",
        lambda d, m, r: (train_volume(d, r).write_bytes(b""), write_datalist(d))[1],
        ["is empty (0 bytes)", "datalist", "list.csv, line"],
    ),
    (
        "datalist_empty_validation_split",
        lambda d, m, r: write_datalist(d, edit=with_splits(r, drop=("validation",))),
        ["The validation split of", "list.csv is empty (8 patients, split by its 'split' column)"],
    ),
    (
        "datalist_patient_in_two_splits",
        lambda d, m, r: write_datalist(
            d,
            edit=lambda rows, h: (
                with_splits(r)(rows, h),
                [x.update(split="test") for x in rows if x["image"] == r["splits"]["training"][0]],
            ),
        ),
        ["puts subject 'P", "all scans of a subject belong to one split"],
    ),
    ("config_wrong_type", lambda d, m, r: {"learning_rate": "fast"}, ["config id 'learning_rate' is 'fast' (str)"]),
    ("config_out_of_range", lambda d, m, r: {"val_fraction": 1.5}, ["config id 'val_fraction' is 1.5"]),
    (
        "config_unknown_choice",
        lambda d, m, r: {"attention_type": "diagonal"},
        ["config id 'attention_type' is 'diagonal'"],
    ),
    (
        "config_axis_order",
        lambda d, m, r: {"axis_order": [0, 0, 2], "resume": False},
        ["config id 'axis_order' is [0, 0, 2]: expected a permutation"],
    ),
    (
        "output_folder_not_writable",
        lambda d, m, r: ((d / "a_file").write_text("x"), {"output_dir": str(d / "a_file" / "eval")})[1],
        ["output folder", "a_file/eval cannot be written"],
    ),
    (
        "resume_checkpoint_truncated",
        lambda d, m, r: (m / "checkpoint_last.pt").write_bytes((m / "checkpoint_last.pt").read_bytes()[:1000]),
        ["checkpoint_last.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "resume_with_another_attention_type",
        lambda d, m, r: {"attention_type": "onh_macula"},
        [
            "The resume checkpoint",
            "does not fit this network: checkpoint was trained with attention_type='hemiretinal'",
        ],
    ),
    (
        "resume_with_another_selection_metric",
        lambda d, m, r: {"selection_metric": "loss"},
        ["would resume", "whose best model was selected on validation auroc", "--selection_metric auroc"],
    ),
    (
        "resume_with_another_split",
        lambda d, m, r: {"seed": 1},
        ["would resume", "checkpoint_last.pt, but this run's splits differ", "training: "],
    ),
    (
        "resume_with_another_input_size",
        lambda d, m, r: {"input_size": [16, 24, 24]},
        ["config id 'input_size' is [16, 24, 24], but it was trained with [16, 24, 16]", '--input_size "[16, 24, 16]"'],
    ),
    (
        "demo_of_other_settings",
        lambda d, m, r: {"demo_dataset_dir": str(d), "demo_patients": 10},
        ["holds a synthetic set written with demo_patients=8", "asks for demo_patients=10"],
    ),
    (
        "fresh_run_would_replace_model",
        lambda d, m, r: {"resume": False, "overwrite": False},
        ["model.pt already holds a trained model", "--overwrite True"],
    ),
]


def _assert_refused(done, expected, models, before, output_dir):
    assert done.returncode != 0, done.output[-3000:]
    assert done.last_line.startswith("ERROR: "), done.output[-3000:]
    for fragment in expected:
        assert fragment in done.last_line, (fragment, done.last_line)
    assert "Iter:" not in done.output and "Engine run resuming" not in done.output  # no iteration, no evaluation ran
    assert snapshot(models) == before  # model.pt, checkpoints, thresholds and records untouched
    written = [p.name for p in Path(output_dir).rglob("*") if p.is_file() and not p.name.startswith("events.")]
    assert not written, written


def _refused(command, base, trained, record, tmp_path, edit, expected):
    data, models, paths = user_copy(trained, tmp_path)
    extra = edit(data, models, record)
    overrides = {**base, **paths, **(extra if isinstance(extra, dict) else {})}  # an edit returns its overrides
    before = snapshot(models)
    done = run_bundle(command + cli(overrides), cwd=tmp_path)
    _assert_refused(done, expected, models, before, overrides["output_dir"])


@pytest.mark.parametrize("case, edit, expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input_stops_before_compute(trained, record, tmp_path, case, edit, expected):
    # --overwrite true: the input check, not the fresh-run guard, is what must stop the run; max_epochs 2 would resume
    base = {**TINY["train"], "overwrite": True, "max_epochs": 2}
    _refused(TRAIN, base, trained, record, tmp_path, edit, expected)


FINETUNE_CASES = [
    (
        "stage1_model_missing",
        lambda d, m, r: (m / "model.pt").unlink(),
        ["The stage-1 model", "models/model.pt does not exist: run stage 1 first"],
    ),
    (
        "stage1_model_truncated",
        lambda d, m, r: (m / "model.pt").write_bytes((m / "model.pt").read_bytes()[:3000]),
        ["The stage-1 model", "model.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "stage1_model_of_another_network",
        lambda d, m, r: {"attention_type": "both", "stage_ckpt_dir": str(m / "finetune_both")},
        ["The stage-1 model", "was not made for this network"],
    ),
    (
        "stage2_on_another_split",
        lambda d, m, r: ({"seed": 1, "stage_ckpt_dir": str(m / "finetune_seed1")}),
        ["Stage 2 would fine-tune", "but this run's splits differ from those it was trained on"],
    ),
    ("config_consistency_weight", lambda d, m, r: {"consistency_weight": 2}, ["config id 'consistency_weight' is 2"]),
    (
        "config_consistency_distance",
        lambda d, m, r: {"consistency_distance": "l1"},
        ["config id 'consistency_distance' is 'l1'"],
    ),
    (
        "fresh_stage2_would_replace_its_model",
        lambda d, m, r: {"resume": False, "overwrite": False},
        ["finetune/model.pt already holds a trained model"],
    ),
    case(TRAIN_CASES, "volume_nan"),  # a NaN voxel
]


@pytest.mark.parametrize("case, edit, expected", FINETUNE_CASES, ids=[c[0] for c in FINETUNE_CASES])
def test_bad_stage2_input_stops_before_compute(trained, record, tmp_path, case, edit, expected):
    base = {**TINY["train"], "overwrite": True, "max_epochs": 2}
    _refused(FINETUNE, base, trained, record, tmp_path, edit, expected)


EVAL_CASES = [
    ("no_test_split", lambda d, m, r: {"test_fraction": 0.0}, ["no test cases", "--eval_split validation"]),
    ("eval_split_unknown", lambda d, m, r: {"eval_split": "training"}, ["config id 'eval_split' is 'training'"]),
    (
        "test_volume_nan",
        lambda d, m, r: resave(held_out_volume(d, r), nan_at_123),
        ["OCT volume", "non-finite voxel(s)"],
    ),
    ("model_missing", lambda d, m, r: {"ckpt_dir": str(m / "empty")}, ["The model", "empty/model.pt does not exist"]),
    (
        "model_truncated",
        lambda d, m, r: (m / "finetune" / "model.pt").write_bytes((m / "finetune" / "model.pt").read_bytes()[:5000]),
        ["The model", "finetune/model.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "model_pickled",
        lambda d, m, r: torch.save({"model": torch.nn.Linear(2, 2)}, m / "finetune" / "model.pt"),
        ["finetune/model.pt is not a plain state dict"],
    ),
    (
        "model_of_another_attention_type",
        lambda d, m, r: {"attention_type": "onh_macula"},
        ["does not fit this network: checkpoint was trained with attention_type='hemiretinal'"],
    ),
    (
        "test_split_trained_the_model",
        lambda d, m, r: {"seed": 5},  # another seed draws training patients into the test split
        ["test volumes trained or selected the model", "training_record.json), e.g.", "the same file as"],
    ),
    (
        "input_size_of_another_model",
        lambda d, m, r: {"input_size": [24, 24, 24]},
        ["config id 'input_size' is [24, 24, 24], but the model", "was trained with [16, 24, 16]"],
    ),
    (
        "threshold_missing",
        lambda d, m, r: ((m / "finetune" / "threshold.json").unlink(), {"use_youden_threshold": True})[1],
        ["The threshold file", "threshold.json does not exist"],
    ),
    (
        "threshold_corrupt",
        lambda d, m, r: (
            (m / "finetune" / "threshold.json").write_text('{"threshold": 0.4'),
            {"use_youden_threshold": True},
        )[1],
        ["threshold.json is not valid JSON", "line 1, column 18"],
    ),
    (
        "training_record_corrupt",
        lambda d, m, r: (m / "finetune" / "training_record.json").write_text("{\n"),
        ["The training record", "training_record.json is not valid JSON"],
    ),
]


@pytest.mark.parametrize("case, edit, expected", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_bad_evaluation_input_stops_before_compute(trained, record, tmp_path, case, edit, expected):
    _refused(EVALUATE, TINY["train"], trained, record, tmp_path, edit, expected)


def infer_in(folder):
    return {"dataset_dir": str(folder)}


INFER_CASES = [
    (
        "volume_zero_bytes",
        lambda d, m, r: (train_volume(d, r).write_bytes(b""), infer_in(d))[1],
        ["OCT volume", "is empty (0 bytes)"],
    ),
    (
        "not_a_volume_file",
        lambda d, m, r: ((d / "notes.txt").write_text("x"), infer_in(d / "notes.txt"))[1],
        ["notes.txt is not a volume file: expected .npy, .nii, .nii.gz"],
    ),
    case(TRAIN_CASES, "nifti_truncated"),  # truncated NIfTI
    (
        "no_volumes",
        lambda d, m, r: ((d / "none").mkdir(), infer_in(d / "none"))[1],
        ["No volumes", "none (config id dataset_dir)"],
    ),
    ("input_missing", lambda d, m, r: infer_in(d / "absent"), ["The inference input", "absent does not exist"]),
    case(EVAL_CASES, "model_truncated"),  # truncated model
    case(EVAL_CASES, "model_of_another_attention_type"),  # model of another attention type
    case(EVAL_CASES, "input_size_of_another_model"),  # input size the model was not trained with
    ("threshold_out_of_range", lambda d, m, r: {"threshold": 1.5}, ["config id 'threshold' is 1.5"]),
]


@pytest.mark.parametrize("case, edit, expected", INFER_CASES, ids=[c[0] for c in INFER_CASES])
def test_bad_inference_input_stops_before_compute(trained, record, tmp_path, case, edit, expected):
    _refused(INFER, TINY["infer"], trained, record, tmp_path, edit, expected)


def test_evaluation_from_another_ckpt_dir(trained, record, tmp_path):
    """The command line with a non-default --ckpt_dir: the latest stage's model, its threshold and record are read
    from there, the test split is scored, and the run ends with its one-line score."""
    data, models, paths = user_copy(trained, tmp_path)
    elsewhere = tmp_path / "elsewhere" / "weights"
    shutil.move(str(models), str(elsewhere))
    overrides = {**TINY["train"], **paths, "ckpt_dir": str(elsewhere), "use_youden_threshold": True}
    done = run_bundle(EVALUATE + cli(overrides), cwd=tmp_path)
    assert done.returncode == 0, done.output[-3000:]
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["model"] == str(elsewhere / "finetune" / "model.pt") and report["split"] == "test"
    assert report["threshold"] == json.loads((elsewhere / "finetune" / "threshold.json").read_text())["threshold"]
    assert (
        sorted(str(Path(r["image"]).relative_to(data)) for r in _rows(tmp_path / "out" / "test_predictions.csv"))
        == record["splits"]["test"]
    )
    # the last line on the terminal: the progress bar (stderr) is erased when the pass ends, the summary follows
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("test split (4 cases, 2 subjects): auroc ") and last.endswith(
        str(tmp_path / "out" / "metrics.json")
    )
    assert not done.stderr.replace("\r", "\n").splitlines()[-1].strip()
