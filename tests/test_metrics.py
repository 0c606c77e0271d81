# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from shared.metrics import ClassificationMetrics, classification_report, select, youden_threshold

NAMES = ["CN", "MCI", "AD"]


def test_binary_scores_at_a_threshold():
    probs = [0.9, 0.8, 0.4, 0.3, 0.6, 0.1]
    labels = [1, 1, 1, 0, 0, 0]
    m = classification_report(probs, labels)
    # at 0.5: TP=2 FN=1 FP=1 TN=2
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    # AUROC from the probabilities (8 of 9 positive/negative pairs ordered), not from thresholded predictions
    assert m["auroc"] == pytest.approx(8 / 9) and m["macro_auroc"] == pytest.approx(8 / 9)
    assert classification_report(probs, labels, threshold=0.35)["sensitivity"] == 1.0


def test_balanced_accuracy_does_not_follow_the_class_balance():
    """One positive among nine negatives, all called negative: accuracy 0.9, balanced accuracy 0.5; the precision
    of a class never predicted is undefined, not 0."""
    m = classification_report([0.1] * 10, [1] + [0] * 9)
    assert m["accuracy"] == pytest.approx(0.9) and m["balanced_accuracy"] == pytest.approx(0.5)
    assert math.isnan(m["precision"]) and m["macro_precision"] == pytest.approx(0.9)


def test_youden_threshold():
    assert youden_threshold([0.1, 0.2, 0.3, 0.35, 0.6], [0, 0, 1, 1, 1]) == pytest.approx(0.3)
    assert youden_threshold([0.1, 0.2], [0, 0]) == 0.5
    m = classification_report([0.1, 0.2, 0.3, 0.35], [0, 0, 1, 1])
    assert m["youden_threshold"] == pytest.approx(0.3) and m["accuracy"] == 0.5
    assert math.isnan(classification_report([0.2, 0.3], [0, 0])["auroc"])


def test_multiclass_report_values():
    y = [0, 0, 1, 1, 2, 2]
    p = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    r = classification_report(p, y, NAMES)
    assert r["accuracy"] == pytest.approx(5 / 6)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert r["per_class"]["CN"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "auroc": 1.0}
    )
    assert r["per_class"]["MCI"]["precision"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8, 1.0]))
    assert r["macro_auroc"] == pytest.approx(1.0)  # each class ranked above the rest
    assert "sensitivity" not in r  # the binary view needs two classes


def test_undefined_auroc_is_left_out_of_the_mean_and_labels_are_checked():
    r = classification_report(np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.3, 0.7, 0]]), [0, 0, 1], NAMES)
    assert math.isnan(r["per_class"]["AD"]["auroc"]) and r["macro_auroc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="labels must be in"):
        classification_report(np.ones((1, 3)) / 3, [3], NAMES)
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        classification_report(np.ones((1, 3)) / 3, [0], NAMES[:2])


def test_ignite_metric_accumulates_batches_and_lists():
    batches = [
        ([torch.tensor([0.9, 0.05, 0.05]), torch.tensor([0.1, 0.8, 0.1])], [torch.tensor(0), torch.tensor(1)]),
        (torch.tensor([[0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]), torch.tensor([[0, 0, 1], [0, 0, 1]])),  # one-hot labels
    ]
    engine = Engine(lambda e, b: b)
    metric = ClassificationMetrics(NAMES, prefix="val_")
    metric.attach(engine, "val_report")
    m = engine.run(batches).metrics
    assert m["val_accuracy"] == pytest.approx(0.75) and m["val_recall_AD"] == pytest.approx(0.5)
    assert m["val_precision_CN"] == pytest.approx(0.5)
    assert all(isinstance(v, float) for k, v in m.items() if k != "val_report")  # scalars only, for trackers
    assert metric.report()["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]


def test_one_score_selected_as_a_key_metric():
    """The AUROC of the accumulated probabilities as a key metric, beside the metric itself: computed once."""
    engine = Engine(lambda e, b: b)
    metric = ClassificationMetrics(["no", "yes"])
    select(metric, "auroc").attach(engine, "val_auroc")
    metric.attach(engine, "val_classification")
    data = [(torch.tensor([[0.8, 0.2], [0.3, 0.7]]), torch.tensor([0, 1])), (torch.tensor([[0.6, 0.4]]), [1])]
    state = engine.run(data)
    assert state.metrics["val_auroc"] == pytest.approx(1.0) and metric.report()["n"] == 3
    assert state.metrics["sensitivity"] == pytest.approx(0.5)
