# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import math
import os

import pytest
import torch
from ignite.engine import Engine

from shared.errors import InputError, MissingInputError
from shared.oct.metrics import (
    BinaryClassificationMetrics,
    binary_metrics,
    read_threshold,
    select,
    write_threshold,
    youden_threshold,
)


def test_binary_metrics_values():
    probs = [0.9, 0.8, 0.4, 0.3, 0.6, 0.1]
    labels = [1, 1, 1, 0, 0, 0]
    m = binary_metrics(probs, labels)
    # at 0.5: TP=2 FN=1 FP=1 TN=2
    assert m["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    # AUROC from the probabilities (8 of 9 positive/negative pairs ordered), not from thresholded predictions
    assert m["auroc"] == pytest.approx(8 / 9)
    assert binary_metrics(probs, labels, threshold=0.35)["sensitivity"] == 1.0


def test_balanced_accuracy_does_not_follow_the_class_balance():
    """One positive among nine negatives, all called negative: accuracy 0.9, balanced accuracy 0.5."""
    m = binary_metrics([0.1] * 10, [1] + [0] * 9)
    assert m["accuracy"] == pytest.approx(0.9) and m["balanced_accuracy"] == pytest.approx(0.5)


def test_one_score_selected_as_its_own_metric():
    """A key metric for model selection: the AUROC of the accumulated probabilities, computed once."""
    engine = Engine(lambda e, b: b)
    metric = BinaryClassificationMetrics(threshold=0.5)
    select(metric, "auroc").attach(engine, "val_auroc")
    state = engine.run([(torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), torch.tensor([0, 1, 1]))])
    assert state.metrics["val_auroc"] == pytest.approx(1.0)


def test_youden_threshold():
    assert youden_threshold([0.1, 0.2, 0.3, 0.35, 0.6], [0, 0, 1, 1, 1]) == pytest.approx(0.3)
    assert youden_threshold([0.1, 0.2], [0, 0]) == 0.5
    m = binary_metrics([0.1, 0.2, 0.3, 0.35], [0, 0, 1, 1])
    assert m["youden_threshold"] == pytest.approx(0.3) and m["accuracy"] == 0.5
    assert math.isnan(binary_metrics([0.2, 0.3], [0, 0])["auroc"])


def test_ignite_metric_accumulates_batches():
    batches = [
        (torch.tensor([[0.1, 0.9], [0.2, 0.8]]), torch.tensor([1, 1])),
        (torch.tensor([[0.6, 0.4], [0.7, 0.3]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])),  # one-hot labels
    ]
    engine = Engine(lambda e, b: b)
    BinaryClassificationMetrics(threshold=0.5).attach(engine, "cls")
    state = engine.run(batches)
    assert state.metrics["accuracy"] == pytest.approx(0.75)
    assert state.metrics["sensitivity"] == pytest.approx(2 / 3)
    assert state.metrics["auroc"] == pytest.approx(1.0)
    assert state.metrics["cls"]["confusion_matrix"] == {"tn": 1, "fp": 0, "fn": 1, "tp": 2}


def test_threshold_file(tmp_path):
    path = str(tmp_path / "t" / "threshold.json")
    with pytest.raises(MissingInputError, match="threshold file .*threshold.json does not exist"):
        read_threshold(path)
    write_threshold(path, 0.37, epoch=3)
    assert read_threshold(path) == pytest.approx(0.37)
    assert not [p for p in os.listdir(tmp_path / "t") if p != "threshold.json"]  # no temporary file left
    with open(path, "w") as f:
        f.write('{"threshold": 1.7}')
    with pytest.raises(InputError, match="must hold .*a number in \\[0, 1\\].*1.7"):
        read_threshold(path)
