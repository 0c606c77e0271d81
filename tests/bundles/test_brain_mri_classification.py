"""End-to-end runs of the brain_mri_classification bundle through monai.bundle.ConfigWorkflow on tiny demo data
(random backbone weights, 4 slices of 28 pixels, 8 synthetic volumes, 2 folds)."""

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

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
    assert "backbone.pos_embed" in sd and "attention.attention_u.weight" in sd  # self-contained: backbone + head
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
    test_items = wf.parser.get_parsed_content("split")["test"]
    wf.finalize()
    assert set(metrics) >= {"val_auc", "val_accuracy"} and 0.0 <= metrics["val_accuracy"] <= 1.0
    out = run_dir / "test_eval"
    assert (out / "metrics.csv").is_file()
    probs = rows(out / "probabilities.csv")
    assert sorted(r["filename"] for r in probs) == sorted(i["image"] for i in test_items)
    assert len(rows(out / "slice_attention.csv")) == 4 * len(test_items)


def test_inference_outputs(trained, run_dir):
    out = run_dir / "infer"
    ov = {**TINY["infer"], **paths(run_dir), "output_dir": str(out)}
    wf = workflow("inference.json", "infer", **ov)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    probs = rows(out / "probabilities.csv")
    assert len(probs) == 8 and set(probs[0]) == {"filename", "predicted_class", "prob_control", "prob_anomaly"}
    for r in probs:
        assert abs(float(r["prob_control"]) + float(r["prob_anomaly"]) - 1) < 1e-4
        assert r["predicted_class"] in ("control", "anomaly")
    att = rows(out / "slice_attention.csv")
    assert len(att) == 8 * 4
    first = [r for r in att if r["filename"] == probs[0]["filename"]]
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
    assert any("datalist.csv, entry 1: image not found" in m for m in chain)
