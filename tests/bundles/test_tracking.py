# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Experiment tracking with MONAI's runner: ``run training`` and ``run evaluating`` with ``--tracking mlflow`` on
every bundle (one tiny epoch, from its unpacked release zip, started from a neutral folder), then the local MLflow
store read back with ``MlflowClient``: one finished run per workflow with its parameters, metrics and the executed
config as an artifact."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from shared.bundle.package import package_bundle
from shared.bundle.paths import safe_extract
from tests.conftest import BUNDLES, PYTHON, REPO, run_env

mlflow = pytest.importorskip("mlflow")

# what each bundle's validation (in the training run) and evaluation log, besides the training loss
METRICS = {
    "spine_seg": ["val_mean_dice", "val_mean_iou"],
    "brain_mri_classification": ["val_auc", "val_accuracy"],
    "glaucoma_oct_classification": ["val_loss", "auroc", "sensitivity", "recall_glaucoma"],
    "ad_multiomic_classification": ["val_accuracy", "val_macro_auroc", "val_macro_f1"],
}

# both workflows in one process, through the same function the command line calls (`python -m monai.bundle run`)
RUN = """
import json, sys
import monai.bundle
spec = json.loads(sys.argv[1])
for run_id, configs in (("training", spec["train"]), ("evaluating", spec["evaluate"])):
    monai.bundle.run(run_id, config_file=configs, tracking="mlflow", tracking_uri=spec["uri"], **spec["tiny"])
"""


@pytest.mark.parametrize("name", BUNDLES)
def test_mlflow_tracks_training_and_evaluation(name, tmp_path):
    assert name in METRICS, f"add the metrics {name} logs to METRICS"
    tiny = json.loads((REPO / "tests" / "bundles" / "tiny" / f"{name}.json").read_text())["train"]
    root = safe_extract(package_bundle(REPO / "bundles" / name, tmp_path / "dist"), tmp_path / "unpacked") / name
    configs = root / "configs"
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    spec = {
        "train": str(configs / "train.json"),
        "evaluate": [str(configs / "train.json"), str(configs / "evaluate.json")],
        "uri": uri,
        "tiny": tiny,
    }
    neutral = tmp_path / "neutral"
    neutral.mkdir()
    done = subprocess.run(
        [PYTHON, "-c", RUN, json.dumps(spec)], cwd=neutral, env=run_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("monai_experiment")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2, [r.info.run_name for r in runs]
    train, evaluate = runs
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["max_epochs"] == "1" and int(run.data.params["epoch_length"]) >= 1
        assert set(METRICS[name]) <= set(run.data.metrics), sorted(run.data.metrics)
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert len(artifacts) == 1 and artifacts[0].startswith("config_"), artifacts  # the executed config
        executed = json.loads(Path(client.download_artifacts(run.info.run_id, artifacts[0], str(tmp_path))).read_text())
        assert executed["max_epochs"] == 1
    # the training run logged every iteration's loss and learning rate; the evaluation run trained nothing
    losses = client.get_metric_history(train.info.run_id, "train_loss")
    assert len(losses) == int(train.data.params["epoch_length"]) and all(math.isfinite(m.value) for m in losses)
    assert "lr_group_0" in train.data.metrics
    assert "train_loss" not in evaluate.data.metrics and "lr_group_0" not in evaluate.data.metrics
