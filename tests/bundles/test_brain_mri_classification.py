# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""End-to-end runs of the brain_mri_classification bundle on tiny demo data (random backbone weights, 4 slices of 28
pixels, 8 synthetic volumes, 2 folds): through monai.bundle.ConfigWorkflow, and every class of bad input through the
real command line (tests.runner.run_bundle), each stopped with one last line before any compute."""

import csv
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from tests.crafted import claiming_nifti, spine_checkpoint
from tests.runner import run_bundle

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "brain_mri_classification"
CONFIGS = BUNDLE / "configs"
TINY = json.loads((Path(__file__).parent / "tiny" / "brain_mri_classification.json").read_text())


def workflow(config, workflow_type, **overrides):
    files = [str(CONFIGS / c) for c in ([config] if isinstance(config, str) else config)]
    return ConfigWorkflow(
        config_file=files,
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        **overrides,
    )


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("brain_mri")
    return root


def paths(root):
    return {
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(root / "demo"),
        "demo_dataset_dir": str(root / "demo"),
        "embedding_cache_dir": str(root / "cache"),
        "ckpt_dir": str(root / "models"),
        "output_dir": str(root / "eval"),
    }


@pytest.fixture(scope="module")
def trained(run_dir):
    ov = {**TINY["train"], **paths(run_dir)}
    wf = workflow("train.json", "train", **ov)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return ov


def test_training_writes_checkpoints_and_cache(trained, run_dir):
    assert (run_dir / "models" / "model.pt").is_file() and (run_dir / "models" / "checkpoint_last.pt").is_file()
    sd = torch.load(run_dir / "models" / "model.pt", map_location="cpu", weights_only=True)
    sd = sd.get("model", sd)
    assert "backbone.pos_embed" in sd and "attention.attention_v.weight" in sd  # self-contained: backbone + head
    assert "attention.attention_u.weight" not in sd  # the paper's plain tanh attention by default
    # the subjects model.pt was fitted and selected on, beside it and in the resume checkpoint
    record = json.loads((run_dir / "models" / "model_split.json").read_text())
    last = torch.load(run_dir / "models" / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert last["split"] == record and (record["fold"], record["num_folds"], record["seed"]) == (0, 2, 0)
    assert [len(record["subjects"][k]) for k in ("training", "validation", "test")] == [4, 2, 2]
    # 2 folds of 4 subjects per class: 4 training + 2 validation volumes embedded once each
    assert len(list((run_dir / "cache").rglob("*.pt"))) == 6
    assert len(list((run_dir / "demo" / "images").glob("*.nii.gz"))) == 8


def test_resume_continues_from_last_epoch_and_reuses_cache(trained, run_dir):
    wf = workflow("train.json", "train", **{**trained, "max_epochs": 2})
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    wf.run()
    embed = wf.parser.get_parsed_content("train#deterministic_transforms")[0]
    wf.finalize()
    assert epochs == [2] and trainer.state.epoch == 2
    assert embed.cache.misses == 0 and embed.cache.hits > 0


def test_evaluation_on_test_split(trained, run_dir):
    wf = workflow(["train.json", "evaluate.json"], None, **{**trained, "output_dir": str(run_dir / "test_eval")})
    wf.initialize()
    wf.run()
    metrics = dict(wf.parser.get_parsed_content("validate#evaluator").state.metrics)
    split = wf.parser.get_parsed_content("split")
    wf.finalize()
    assert set(metrics) >= {"val_auc", "val_accuracy"} and 0.0 <= metrics["val_accuracy"] <= 1.0
    out = run_dir / "test_eval"
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test" and (report["cases"], report["subjects"]) == (2, 2)
    assert report["accuracy"] == pytest.approx(metrics["val_accuracy"])
    probs = rows(out / "probabilities.csv")
    assert sorted(r["image"] for r in probs) == sorted(i["image"] for i in split["test"])  # the test split only
    assert {r["label"] for r in probs} <= {"control", "anomaly"} and len(probs) == 2
    assert len(rows(out / "slice_attention.csv")) == 4 * len(split["test"])


def test_inference_outputs(trained, run_dir):
    out = run_dir / "infer"
    ov = {**TINY["infer"], **paths(run_dir), "output_dir": str(out)}
    wf = workflow("inference.json", "infer", **ov)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    probs = rows(out / "probabilities.csv")
    assert len(probs) == 8 and list(probs[0]) == ["image", "prob_control", "prob_anomaly", "predicted"]
    for r in probs:
        assert abs(float(r["prob_control"]) + float(r["prob_anomaly"]) - 1) < 1e-4
        assert r["predicted"] in ("control", "anomaly")
    att = rows(out / "slice_attention.csv")
    assert len(att) == 8 * 4
    first = [r for r in att if r["image"] == probs[0]["image"]]
    assert abs(sum(float(r["weight"]) for r in first) - 1) < 1e-4
    assert sorted(int(r["rank"]) for r in first) == [1, 2, 3, 4]
    assert sorted(p.name for p in (out / "attention").glob("*.png")) == [f"sub-{i:03d}.png" for i in range(8)]


def test_cross_validation_reports_mean_and_std(trained, run_dir):
    cv_dir = run_dir / "cv"
    ov = {**trained, "cv_output_dir": str(cv_dir)}
    wf = workflow("train.json", None, run_id="cross_validation", **ov, cv_overrides={**trained})
    wf.initialize()
    wf.run()
    wf.finalize()
    report = json.loads((cv_dir / "cv_results.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [0, 1]
    tested = [{r["image"] for r in rows(cv_dir / f"fold_{k}" / "probabilities.csv")} for k in (0, 1)]
    assert len(tested[0]) == len(tested[1]) == 2 and not tested[0] & tested[1]  # disjoint test parts
    for key in ("test_auc", "test_accuracy"):
        assert set(report["summary"][key]) == {"mean", "std", "n"} and report["summary"][key]["n"] == 2
    for fold in (0, 1):
        assert (cv_dir / f"fold_{fold}" / "model.pt").is_file()
        assert (cv_dir / f"fold_{fold}" / "probabilities.csv").is_file()


def test_user_dataset_dir_errors_name_the_path(tmp_path):
    ov = {**TINY["train"], **paths(tmp_path), "dataset_dir": str(tmp_path / "my_data")}
    wf = workflow("train.json", "train", **ov)
    wf.initialize()
    with pytest.raises(Exception) as e:
        wf.parser.get_parsed_content("datalist")
    chain, err = [], e.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__
    assert any(str(tmp_path / "my_data") in m and "does not exist" in m for m in chain)
    os.makedirs(tmp_path / "my_data")
    (tmp_path / "my_data" / "datalist.csv").write_text("image,label\nmissing.nii.gz,control\n")
    wf = workflow("train.json", "train", **ov)
    wf.initialize()
    with pytest.raises(Exception) as e:
        wf.parser.get_parsed_content("datalist")
    chain, err = [], e.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__
    assert any("datalist.csv, line 2: image" in m and "does not exist" in m for m in chain)


# ----------------------------------------------------------------------------------------------------------------
# bad input through the real command line: one last line naming the file or id, exit code 1, before any compute


def cli(overrides):
    """Command-line overrides: the runner reads Python literals (True, None), strings as they are."""
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return args


TRAIN = ["run", "training", "--config_file", str(CONFIGS / "train.json")]
EVAL = ["run", "evaluating", "--config_file", json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])]
INFER = ["run", "inference", "--config_file", str(CONFIGS / "inference.json")]


@pytest.fixture(scope="module")
def inputs(trained, run_dir):
    """The demo datalist rows (absolute paths) and a guard folder holding the trained model.pt (a hard link) and
    its model_split.json, but no checkpoint_last.pt: a run that got past the checks would train from scratch."""
    demo = run_dir / "demo"
    good = [
        f"{demo / r['image']},{r['label']},{r['subject_id']}" for r in rows(demo / "datalist.csv")
    ]  # 4 subjects per class: the least 2 folds take
    guard = run_dir / "guard"
    guard.mkdir(exist_ok=True)
    for name in ("model.pt", "model_split.json"):
        if not (guard / name).exists():
            os.link(run_dir / "models" / name, guard / name)
    return {"good": good, "guard": guard, "models": run_dir / "models", "cache": run_dir / "cache"}


def stamp(folder):
    """Identity of every file in a folder: an atomic replace changes the inode, a write in place the mtime."""
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).iterdir())}


def volume(path, shape=(20, 24, 12), value=None, nan=False):
    data = np.random.default_rng(0).random(shape).astype(np.float32) + 1 if value is None else np.full(shape, value)
    if nan:
        data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), str(path))
    return path


# image problems: (case, writes the bad file at the given path, fragments of the last line)
IMAGE_CASES = [
    ("zero_byte", lambda p: p.write_bytes(b""), ["bad.nii.gz", "is empty (0 bytes)"]),
    ("not_nifti", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500)), ["bad.nii.gz", "not a readable NIfTI"]),
    ("truncated", lambda p: p.write_bytes(volume(p).read_bytes()[:-2000]), ["bad.nii.gz", "is truncated or corrupt"]),
    ("two_d", lambda p: volume(p, (20, 24)), ["bad.nii.gz", "has shape (20, 24): expected a 3D volume"]),
    ("multi_channel", lambda p: volume(p, (20, 24, 12, 3)), ["bad.nii.gz", "has 3 channels", "expected 1"]),
    ("nan", lambda p: volume(p, nan=True), ["bad.nii.gz", "1 non-finite voxel(s) (1 NaN, 0 Inf)", "index (1, 2, 3)"]),
    ("constant", lambda p: volume(p, value=5.0), ["bad.nii.gz", "is constant"]),
    ("too_few_slices", lambda p: volume(p, (20, 24, 3)), ["bad.nii.gz", "has 3 axial slices, fewer than the 4"]),
    ("claiming_16_gib", claiming_nifti, ["bad.nii.gz", "claims 2048 x 2048 x 1024 float32 voxels, 16.0 GiB"]),
]


def datalist(tmp_path, good, extra_rows=(), header="image,label,subject_id", name="list.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *good, *extra_rows]) + "\n")
    return path


def with_bad_image(tmp_path, good, make):
    make(tmp_path / "bad.nii.gz")
    return {"datalist_file": str(datalist(tmp_path, good, [f"{tmp_path / 'bad.nii.gz'},control,bad"]))}


def weights_file(tmp_path, content):
    path = tmp_path / "dinov2.pth"
    torch.save(content, path) if isinstance(content, dict) else path.write_bytes(content)
    return {"backbone_weights": str(path)}


def resume_from(tmp_path, inputs, truncate=False, foreign=False):
    """A ckpt_dir with the trained model.pt (linked) and the run's checkpoint_last.pt, whole or truncated, or
    spine_seg's checkpoint_last.pt (``foreign``)."""
    ckpt = tmp_path / "resume"
    ckpt.mkdir()
    os.link(inputs["models"] / "model.pt", ckpt / "model.pt")
    if foreign:
        torch.save(spine_checkpoint(), ckpt / "checkpoint_last.pt")
    else:
        data = (inputs["models"] / "checkpoint_last.pt").read_bytes()
        (ckpt / "checkpoint_last.pt").write_bytes(data[:4096] if truncate else data)
    return {"ckpt_dir": str(ckpt), "overwrite": False, "max_epochs": 9}


# training: (case, returns the overrides of the bad input, fragments of the last line)
TRAIN_CASES = [
    *[(f"image_{c}", lambda t, i, m=m: with_bad_image(t, i["good"], m), e) for c, m, e in IMAGE_CASES],
    (
        "image_missing",
        lambda t, i: {"datalist_file": str(datalist(t, i["good"], [f"{t / 'gone.nii.gz'},control,gone"]))},
        ["list.csv, line 10: image", "gone.nii.gz does not exist"],
    ),
    (
        "label_unknown",
        lambda t, i: {
            "datalist_file": str(datalist(t, [i["good"][0].replace(",control,", ",migraine,")] + i["good"][1:]))
        },
        ["list.csv, line 2: unknown label 'migraine'", "known classes: ['control', 'anomaly']"],
    ),
    (
        "label_not_integer",
        lambda t, i: {"datalist_file": str(datalist(t, [g.replace(",control,", ",0.5,", 1) for g in i["good"]]))},
        ["list.csv, line 2: label 0.5 is not an integer class index"],
    ),
    (
        "csv_missing_column",
        lambda t, i: {"datalist_file": str(datalist(t, i["good"], header="image,diagnosis,subject_id"))},
        ["list.csv has no 'label' column (header: image,diagnosis,subject_id)"],
    ),
    (
        "csv_ragged_line",
        lambda t, i: {"datalist_file": str(datalist(t, i["good"][:3] + [i["good"][3] + ",x"] + i["good"][4:]))},
        ["list.csv, line 5, has 4 fields but the header has 3"],
    ),
    (
        "json_syntax",
        lambda t, i: (
            (t / "list.json").write_text('[{"image": "a.nii.gz",\n "label" 0}]'),
            {"datalist_file": str(t / "list.json")},
        )[1],
        ["list.json is not valid JSON", "line 2, column"],
    ),
    ("too_few_subjects_for_the_folds", lambda t, i: {"num_folds": 3}, ["too few subjects for 3-fold", "at least 6"]),
    (
        "fixed_split_without_validation",
        lambda t, i: {
            "datalist_file": str(datalist(t, [g + ",train" for g in i["good"]], header="image,label,subject_id,split"))
        },
        ["list.csv gives no validation scans in its 'split' column"],
    ),
    (
        "subject_in_two_splits",
        lambda t, i: {
            "datalist_file": str(
                datalist(
                    t,
                    [g.rsplit(",", 1)[0] + f",same,{s}" for g, s in zip(i["good"][:2], ("train", "test"))],
                    header="image,label,subject_id,split",
                )
            )
        },
        ["puts subject 'same' in both the training and the test split"],
    ),
    (
        "dataset_dir_missing",
        lambda t, i: {"dataset_dir": str(t / "nowhere"), "datalist_file": None},  # no datalist: the folder is read
        ["dataset_dir", "nowhere does not exist"],
    ),
    ("config_type", lambda t, i: {"learning_rate": "fast"}, ["config id 'learning_rate' is 'fast' (str)"]),
    ("config_range", lambda t, i: {"temperature": 0}, ["config id 'temperature' is 0 (int): expected a number > 0"]),
    ("fold_out_of_range", lambda t, i: {"fold": 2}, ["config id 'fold' is 2: expected one of 0..1"]),
    ("class_names", lambda t, i: {"class_names": ["control"]}, ["config id 'class_names'", "at least two"]),
    (
        "weights_missing",
        lambda t, i: {"backbone_weights": str(t / "none.pth")},
        ["config id 'backbone_weights'", "none.pth", "expected 'official'"],
    ),
    (
        "weights_other_layout",
        lambda t, i: weights_file(t, {"encoder.weight": torch.zeros(2)}),
        ["config id 'backbone_weights'", "not a DINOv2 checkpoint"],
    ),
    (
        "weights_truncated",
        lambda t, i: weights_file(t, b"PK\x03\x04" + bytes(100)),
        ["config id 'backbone_weights'", "dinov2.pth is truncated or not a PyTorch"],
    ),
    (
        "weights_official_offline",
        lambda t, i: {
            "backbone_weights": "official",
            "_env": {"TORCH_HOME": str(t / "torch"), "HTTPS_PROXY": "http://127.0.0.1:9"},
        },
        ["config id 'backbone_weights' is 'official'", "not available offline", "dinov2_vits14_pretrain.pth"],
    ),
    (
        "resume_checkpoint_truncated",
        lambda t, i: resume_from(t, i, truncate=True),
        ["checkpoint_last.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "resume_checkpoint_of_another_bundle",
        lambda t, i: resume_from(t, i, foreign=True),
        ["checkpoint_last.pt was made for AdaptiveSwinUNETR (spine_seg), not for this bundle's DinoAtten3D"],
    ),
    (
        "dataset_dir_is_a_file",
        lambda t, i: {"dataset_dir": str(i["models"] / "model.pt"), "datalist_file": None},
        ["dataset_dir", "model.pt is a file, not a folder", "expected a folder with datalist.csv"],
    ),
    (
        "resume_with_another_fold",
        lambda t, i: {**resume_from(t, i, truncate=False), "fold": 1},
        ["checkpoint_last.pt in", "was trained on other splits (fold 0"],
    ),
    (
        "output_folder_not_writable",
        lambda t, i: ((t / "a_file").write_text("x"), {"output_dir": str(t / "a_file" / "eval")})[1],
        ["output folder", "a_file/eval cannot be written"],
    ),
    (
        "fresh_run_would_replace_model",
        lambda t, i: {"overwrite": False, "resume": False},
        ["model.pt already holds a trained model", "--overwrite"],
    ),
]


def refused(done, expected, folders, before):
    assert done.returncode == 1, done.output[-3000:]
    assert done.last_line.startswith("ERROR: "), done.output[-3000:]
    for fragment in expected:
        assert fragment in done.last_line, (fragment, done.last_line)
    assert "Iter:" not in done.output and "Metrics --" not in done.output  # no iteration ran
    assert [stamp(f) for f in folders] == before  # model.pt (and everything beside it) untouched


@pytest.mark.parametrize("case, edit, expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input_stops_before_compute(inputs, tmp_path, case, edit, expected):
    base = {
        **TINY["train"],
        "datalist_file": str(datalist(tmp_path, inputs["good"])),
        "embedding_cache_dir": str(inputs["cache"]),
        "ckpt_dir": str(inputs["guard"]),
        "output_dir": str(tmp_path / "out"),
        "overwrite": True,  # past the fresh-run guard: the input check must be what stops the run
    }
    overrides = {**base, **edit(tmp_path, inputs)}
    env = overrides.pop("_env", None)
    folders = [inputs["guard"], overrides["ckpt_dir"]]
    before = [stamp(f) for f in folders]
    refused(run_bundle(TRAIN + cli(overrides), cwd=tmp_path, env=env), expected, folders, before)


def model_copy(tmp_path, inputs, model=None):
    """A ckpt_dir with the trained model.pt (linked, or the given bytes / object) and its model_split.json."""
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    os.link(inputs["models"] / "model_split.json", ckpt / "model_split.json")
    if model is None:
        os.link(inputs["models"] / "model.pt", ckpt / "model.pt")
    elif isinstance(model, bytes):
        (ckpt / "model.pt").write_bytes(model)
    else:
        torch.save(model, ckpt / "model.pt")
    return {"ckpt_dir": str(ckpt)}


def truncated_model(inputs):
    with open(inputs["models"] / "model.pt", "rb") as f:
        return f.read(100_000)


EVAL_CASES = [
    ("image_nan", lambda t, i: with_bad_image(t, i["good"], IMAGE_CASES[5][1]), ["bad.nii.gz", "non-finite voxel"]),
    (
        "no_test_split",
        lambda t, i: {
            "datalist_file": str(
                datalist(
                    t,
                    [g + s for g, s in zip(i["good"], [",train", ",validation"] * 4)],
                    header="image,label,subject_id,split",
                )
            )
        },
        ["list.csv has no test cases", "--eval_split validation"],
    ),
    (
        "test_subjects_trained_on",
        lambda t, i: {"fold": 1},
        ["2 of the test subjects", "were used to train or select model.pt", "model_split.json: fold 0"],
    ),
    ("eval_split_unknown", lambda t, i: {"eval_split": "train"}, ["config id 'eval_split' is 'train'"]),
    ("model_missing", lambda t, i: {"ckpt_dir": str(t / "empty")}, ["model.pt does not exist"]),
    (
        "model_truncated",
        lambda t, i: model_copy(t, i, truncated_model(i)),
        ["model.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "model_not_a_state_dict",
        lambda t, i: model_copy(t, i, {"model": torch.nn.Linear(2, 2)}),
        ["model.pt is not a plain state dict"],
    ),
    (
        "model_of_another_network",
        lambda t, i: {**model_copy(t, i), "hidden_dims": [64, 32]},
        ["model.pt was not made for this network", "shape mismatches: embedding.0.weight"],
    ),
]


@pytest.mark.parametrize("case, edit, expected", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_bad_evaluation_input_stops_before_compute(inputs, tmp_path, case, edit, expected):
    base = {
        **TINY["train"],
        "datalist_file": str(datalist(tmp_path, inputs["good"])),
        "embedding_cache_dir": str(inputs["cache"]),
        "ckpt_dir": str(inputs["guard"]),
        "output_dir": str(tmp_path / "out"),
    }
    overrides = {**base, **edit(tmp_path, inputs)}
    folders = [inputs["guard"]] + ([overrides["ckpt_dir"]] if os.path.isdir(overrides["ckpt_dir"]) else [])
    before = [stamp(f) for f in folders]
    refused(run_bundle(EVAL + cli(overrides), cwd=tmp_path), expected, folders, before)
    assert not (tmp_path / "out" / "metrics.json").exists()


INFER_CASES = [
    *[
        (f"image_{c}", lambda t, i, m=m: (m(t / "bad.nii.gz"), {"input_path": str(t / "bad.nii.gz")})[1], e)
        for c, m, e in IMAGE_CASES
    ],
    (
        "input_missing",
        lambda t, i: {"input_path": str(t / "nothing")},
        ["nothing is neither an image file nor a folder"],
    ),
    (
        "model_truncated",
        lambda t, i: model_copy(t, i, truncated_model(i)),
        ["model.pt is truncated or not a PyTorch checkpoint"],
    ),
    (
        "model_of_another_network",
        lambda t, i: {**model_copy(t, i), "gated_attention": True},
        ["model.pt was not made for this network", "missing keys: attention.attention_u.weight"],
    ),
    (
        "output_folder_not_writable",
        lambda t, i: ((t / "a_file").write_text("x"), {"output_dir": str(t / "a_file" / "eval")})[1],
        ["output folder", "a_file/eval cannot be written"],
    ),
]


@pytest.mark.parametrize("case, edit, expected", INFER_CASES, ids=[c[0] for c in INFER_CASES])
def test_bad_inference_input_stops_before_compute(inputs, tmp_path, case, edit, expected):
    base = {
        **TINY["infer"],
        "input_path": str(inputs["models"].parent / "demo" / "images"),
        "ckpt_dir": str(inputs["guard"]),
        "output_dir": str(tmp_path / "out"),
    }
    overrides = {**base, **edit(tmp_path, inputs)}
    folders = [inputs["guard"], overrides["ckpt_dir"]]
    before = [stamp(f) for f in folders]
    refused(run_bundle(INFER + cli(overrides), cwd=tmp_path), expected, folders, before)
    assert not (tmp_path / "out" / "probabilities.csv").exists()


def test_cross_validation_refuses_fixed_splits_before_any_fold(inputs, tmp_path):
    splits = [",train", ",validation", ",test", ",train"] * 2
    listed = datalist(tmp_path, [g + s for g, s in zip(inputs["good"], splits)], header="image,label,subject_id,split")
    overrides = {**TINY["train"], "datalist_file": str(listed), "ckpt_dir": str(tmp_path / "models")}
    done = run_bundle(
        ["run", "cross_validation", "--config_file", str(CONFIGS / "train.json"), *cli(overrides)], tmp_path
    )
    assert done.returncode == 1 and "fixes the splits (column 'split'), so there are no folds" in done.last_line
    assert not list((tmp_path / "models" / "cv").iterdir())


def test_evaluation_from_another_ckpt_dir_prints_the_test_score_last(inputs, tmp_path):
    overrides = {
        **TINY["train"],
        **model_copy(tmp_path, inputs),
        "dataset_dir": str(inputs["models"].parent / "demo"),
        "demo_dataset_dir": str(inputs["models"].parent / "demo"),
        "embedding_cache_dir": str(inputs["cache"]),
        "output_dir": str(tmp_path / "out"),
    }
    done = run_bundle(EVAL + cli(overrides), cwd=tmp_path)
    assert done.returncode == 0, done.output[-3000:]
    last = [line for line in done.stdout.splitlines() if line.strip()][-1]
    assert last.startswith("test split (2 cases, 2 subjects): auc ") and ", accuracy " in last
    assert last.endswith(str(tmp_path / "out" / "metrics.json"))
    assert "Restored model from " + str(tmp_path / "models" / "model.pt") in done.stdout
    record = json.loads((tmp_path / "models" / "model_split.json").read_text())
    scored = {r["image"].rsplit("/", 1)[-1][: -len(".nii.gz")] for r in rows(tmp_path / "out" / "probabilities.csv")}
    assert scored == set(record["subjects"]["test"])
