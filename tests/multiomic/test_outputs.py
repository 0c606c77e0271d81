# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import csv
import json

import numpy as np
import torch
from ignite.engine import Engine
from monai.handlers import from_engine

from shared.handlers.evaluation_report import EvaluationReport
from shared.handlers.predictions import ProbabilityWriter
from shared.metrics import ClassificationMetrics
from shared.multiomic.outputs import CrossAttentionSaver
from shared.networks.acmca import ACMCA

NAMES = ["CN", "MCI", "AD"]


def test_outputs_of_an_evaluation_epoch(tmp_path):
    torch.manual_seed(0)
    net = ACMCA(snp_features=10, img_size=(64, 64), backbone="resnet10").eval()
    batches = [
        {
            "image": torch.rand(2, 2, 64, 64),
            "snp": torch.rand(2, 10),
            "clinical": torch.rand(2, 7),
            "label": torch.tensor([0, 2]),
            "subject_id": ["a/1", "b"],
        },
        {
            "image": torch.rand(1, 2, 64, 64),
            "snp": torch.rand(1, 10),
            "clinical": torch.rand(1, 7),
            "label": torch.tensor([-1]),
            "subject_id": ["c"],
        },  # unlabelled subject
    ]

    def step(engine, batch):
        with torch.no_grad():
            probs = net(batch["image"], batch["snp"], batch["clinical"]).softmax(1)
        # MONAI engines decollate batch and output into per-subject dicts
        engine.state.batch = [{"subject_id": s, "label": batch["label"][i]} for i, s in enumerate(batch["subject_id"])]
        return [{"pred": p, "label": batch["label"][i]} for i, p in enumerate(probs)]

    eng = Engine(step)
    metric = ClassificationMetrics(NAMES, output_transform=from_engine(["pred", "label"]))
    metric.attach(eng, "report")
    items = [{"subject_id": s, "label": int(b["label"][i])} for b in batches for i, s in enumerate(b["subject_id"])]
    report = EvaluationReport(str(tmp_path), "test", items, metric, headline=["macro_auroc", "accuracy", "macro_f1"])
    probabilities = ProbabilityWriter(str(tmp_path), NAMES, id_key="subject_id", id_column="subject_id")
    for h in (probabilities, CrossAttentionSaver(net, str(tmp_path)), report):
        h.attach(eng)
    eng.run(batches, max_epochs=1)

    rows = list(csv.DictReader(open(tmp_path / "probabilities.csv")))
    assert [r["subject_id"] for r in rows] == ["a/1", "b", "c"] and [r["label"] for r in rows] == ["CN", "AD", ""]
    assert abs(sum(float(rows[0][f"prob_{c}"]) for c in NAMES) - 1) < 1e-5
    att = np.load(tmp_path / "attention" / "a_1.npz")  # unsafe characters replaced in file names
    assert att["clinical_to_mri_grid"].shape == (4, 1, 2, 2) and list(att["region_grid"]) == [2, 2]
    long = list(csv.DictReader(open(tmp_path / "cross_attention.csv")))
    assert len(long) == 3 * 2 * 4
    per_subject = sum(float(r["weight"]) for r in long if r["subject_id"] == "c" and r["block"] == "snp_to_pet")
    assert abs(per_subject - 1) < 1e-4  # head-averaged weights over the regions still sum to one
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["cases"] == saved["subjects"] == 2  # the unlabelled subject is not scored
    assert saved["split"] == "test" and np.asarray(saved["confusion_matrix"]).sum() == 2
    assert report.summary().startswith("test split (2 cases, 2 subjects): macro_auroc ")
    assert report.summary().endswith(str(tmp_path / "metrics.json"))
    assert not [p.name for p in tmp_path.rglob("*.partial")]  # every file was renamed into place
