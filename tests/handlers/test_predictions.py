# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import csv

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from shared.handlers.predictions import ProbabilityWriter

CLASSES = ["non_glaucoma", "glaucoma"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _run(writer, iterations, tmp_path):
    """Run one pass over ``iterations`` of (inputs, outputs); the names the folder held after each iteration."""

    def step(engine, iteration):
        engine.state.batch = iteration[0]  # as MONAI's engines leave it: decollated inputs and outputs
        return iteration[1]

    engine = Engine(step)
    writer.attach(engine)
    seen = []
    engine.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: seen.append(sorted(p.name for p in tmp_path.iterdir()))
    )
    engine.run(iterations, max_epochs=1)
    return seen


def test_a_thresholded_pass_with_labels_appears_complete_at_the_end(tmp_path):
    iterations = [
        ([{"label": torch.tensor([1])}], [{"prob": torch.tensor([0.35, 0.65]), "source_file": "/d/P1_OD.npy"}]),
        ([{"label": torch.tensor(0)}], [{"prob": torch.tensor([0.7, 0.3]), "source_file": "/d/P2_OD.npy"}]),
    ]
    writer = ProbabilityWriter(str(tmp_path), CLASSES, "test.csv", pred_key="prob", id_key="source_file", threshold=0.6)
    seen = _run(writer, iterations, tmp_path)
    assert seen[-1] == []  # never a half-written CSV
    rows = _rows(tmp_path / "test.csv")
    assert list(rows[0]) == ["image", "prob_non_glaucoma", "prob_glaucoma", "predicted", "threshold", "label"]
    assert [(r["image"], r["predicted"], r["label"]) for r in rows] == [
        ("/d/P1_OD.npy", "glaucoma", "glaucoma"),
        ("/d/P2_OD.npy", "non_glaucoma", "non_glaucoma"),
    ]
    assert float(rows[0]["prob_glaucoma"]) == pytest.approx(0.65) and rows[0]["threshold"] == "0.6"


def test_unlabelled_cases_and_names_from_image_metadata(tmp_path):
    """Inference: no label column; a case named by its image's file; a label of -1 is no label."""
    names = ["CN", "MCI", "AD"]
    image = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": "/scans/s1.nii.gz"})
    iterations = [([{"image": image, "label": -1}], [{"pred": torch.tensor([0.2, 0.5, 0.3])}])]
    _run(ProbabilityWriter(str(tmp_path), names), iterations, tmp_path)
    assert _rows(tmp_path / "probabilities.csv") == [
        {
            "image": "/scans/s1.nii.gz",
            "prob_CN": "0.200000",
            "prob_MCI": "0.500000",
            "prob_AD": "0.300000",
            "predicted": "MCI",
        }
    ]
    with pytest.raises(ValueError, match="a decision threshold needs two classes"):
        ProbabilityWriter(str(tmp_path), names, threshold=0.5)
