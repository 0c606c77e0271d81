"""End-to-end runs of the ad_multiomic_classification bundle through monai.bundle.ConfigWorkflow on a tiny synthetic
cohort (12 subjects, 6 mm volumes, 200 SNPs, 64-pixel slices, ResNet10 encoders)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

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
    assert report["n"] == 3 and set(report["per_class"]) == {"CN", "MCI", "AD"}  # test split: 1 subject per class
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
    assert any("missing' does not exist (expected <dataset_dir>/manifest.csv" in m for m in chain), chain


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
