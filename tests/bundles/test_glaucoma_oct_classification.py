"""Both training stages, evaluation and inference of the glaucoma_oct_classification bundle through
monai.bundle.ConfigWorkflow on its synthetic demo data (tiny sizes)."""

import csv
import json
import os

import nibabel as nib
import pytest
import torch
from monai.bundle import ConfigWorkflow

BUNDLE = os.path.join(os.path.dirname(__file__), "..", "..", "bundles", "glaucoma_oct_classification")
CONFIGS = os.path.join(BUNDLE, "configs")
with open(os.path.join(os.path.dirname(__file__), "tiny", "glaucoma_oct_classification.json")) as f:
    TINY = json.load(f)


def _messages(exc):
    """All messages along an exception's cause chain (the bundle runner wraps errors of config expressions)."""
    out = []
    while exc is not None:
        out.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(out)


def _cfg(*names):
    return [os.path.join(CONFIGS, n) for n in names]


def _workflow(files, workflow_type, root, **override):
    wf = ConfigWorkflow(
        config_file=_cfg(*files),
        meta_file=os.path.join(CONFIGS, "metadata.json"),
        logging_file=os.path.join(CONFIGS, "logging.conf"),
        workflow_type=workflow_type,
        bundle_root=str(root),
        **override,
    )
    wf.initialize()
    assert wf.check_properties() == []
    return wf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("glaucoma_bundle")
    wf = _workflow(["train.json"], "train", root, **TINY["train"])
    wf.run()
    wf.finalize()
    return root


def test_stage1_training(trained):
    models = os.path.join(trained, "models")
    assert {"model.pt", "checkpoint_last.pt", "threshold.json"} <= set(os.listdir(models))
    state = torch.load(os.path.join(models, "model.pt"), map_location="cpu", weights_only=True)
    assert "arch_signature" in state
    with open(os.path.join(models, "threshold.json")) as f:
        assert 0.0 <= json.load(f)["threshold"] <= 1.0
    assert len(os.listdir(os.path.join(trained, "data", "demo", "glaucoma"))) == 8  # 4 patients x 2 eyes


def test_stage2_finetune_changes_weights(trained):
    stage1 = torch.load(os.path.join(trained, "models", "model.pt"), map_location="cpu", weights_only=True)
    wf = _workflow(["train.json", "finetune.json"], "train", trained, **TINY["train"])
    wf.run()
    wf.finalize()
    ft = os.path.join(trained, "models", "finetune")
    assert {"model.pt", "checkpoint_last.pt", "threshold.json"} <= set(os.listdir(ft))
    stage2 = torch.load(os.path.join(ft, "model.pt"), map_location="cpu", weights_only=True)
    key = "stages.1.block.attn.0.kv.weight"
    assert not torch.equal(stage1[key], stage2[key])  # trained further, starting from stage 1


def test_evaluation_with_youden_threshold(trained):
    out = os.path.join(trained, "eval_test")
    wf = _workflow(
        ["train.json", "evaluate.json"], "infer", trained, output_dir=out, use_youden_threshold=True, **TINY["train"]
    )
    wf.run()
    wf.finalize()
    with open(os.path.join(out, "metrics.csv")) as f:
        metrics = dict(line.strip().split(",", 1) for line in f if line.strip())
    for name in ("accuracy", "auroc", "sensitivity", "specificity", "precision", "f1", "confusion_matrix"):
        assert name in metrics
    with open(os.path.join(trained, "models", "finetune", "threshold.json")) as f:
        assert float(metrics["threshold"]) == pytest.approx(json.load(f)["threshold"])
    with open(os.path.join(out, "test_predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(0 <= float(r["prob_glaucoma"]) <= 1 for r in rows)  # 2 test patients x 2 eyes


def test_inference_writes_probabilities_and_maps(trained):
    out = os.path.join(trained, "infer_out")
    data = os.path.join(trained, "data", "demo", "glaucoma")
    wf = _workflow(
        ["inference.json"], "infer", trained, output_dir=out, dataset_dir=data, save_maps=True, **TINY["infer"]
    )
    wf.run()
    wf.finalize()
    with open(os.path.join(out, "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    p = float(rows[0]["prob_glaucoma"]) + float(rows[0]["prob_non_glaucoma"])
    assert p == pytest.approx(1.0, abs=1e-4)
    stem = os.path.basename(rows[0]["image"])[: -len(".npy")]
    care = nib.load(os.path.join(out, f"{stem}_care.nii.gz")).get_fdata()
    assert care.shape == tuple(TINY["infer"]["input_size"]) and 0 <= care.min() and care.max() <= 1 + 1e-6
    assert os.path.isfile(os.path.join(out, f"{stem}_gradcam.nii.gz"))
    assert os.path.getsize(os.path.join(out, f"{stem}_montage.png")) > 1000


def test_stage2_without_stage1_checkpoint(tmp_path):
    with pytest.raises(Exception) as err:
        _workflow(["train.json", "finetune.json"], "train", tmp_path, **TINY["train"])
    assert "stage-1 checkpoint not found" in _messages(err.value)


def test_checkpoint_of_another_attention_type(trained):
    wf = _workflow(["inference.json"], "infer", trained, attention_type="onh_macula", **TINY["infer"])
    with pytest.raises(Exception) as err:
        wf.run()
    assert "checkpoint was trained with attention_type='hemiretinal'" in _messages(err.value)
