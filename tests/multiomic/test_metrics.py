# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from shared.multiomic.metrics import MulticlassReport, macro_auroc, multiclass_report

NAMES = ["CN", "MCI", "AD"]


def test_report_values():
    y = [0, 0, 1, 1, 2, 2]
    p = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    r = multiclass_report(y, p, NAMES)
    assert r["accuracy"] == pytest.approx(5 / 6)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert r["per_class"]["CN"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "auroc": 1.0}
    )
    assert r["per_class"]["MCI"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["AD"]["auroc"] == pytest.approx(1.0)
    assert r["macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8, 1.0]))
    # MCI one-vs-rest: positives (.7, .8) vs negatives (.1, .5, .2, .3) -> perfectly ranked
    assert r["macro_auroc"] == pytest.approx(1.0)


def test_auroc_undefined_class_is_skipped():
    r = multiclass_report([0, 0, 1], np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.3, 0.7, 0]]), NAMES)
    assert math.isnan(r["per_class"]["AD"]["auroc"]) and r["macro_auroc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="labels must be in"):
        multiclass_report([3], np.ones((1, 3)) / 3, NAMES)


def test_ignite_metric_with_decollated_lists():
    eng = Engine(lambda e, b: b)
    MulticlassReport(NAMES, prefix="val_").attach(eng, "report")
    batches = [
        ([torch.tensor([0.9, 0.05, 0.05]), torch.tensor([0.1, 0.8, 0.1])], [torch.tensor(0), torch.tensor(1)]),
        (torch.tensor([[0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]), torch.tensor([[0, 0, 1], [0, 0, 1]])),  # one-hot labels
    ]
    eng.run(batches, max_epochs=1)
    m = eng.state.metrics
    assert m["val_accuracy"] == pytest.approx(0.75) and m["val_recall_AD"] == pytest.approx(0.5)
    assert m["val_precision_CN"] == pytest.approx(0.5)


def test_macro_auroc_as_an_epoch_metric_key():
    """The key metric of model selection: ignite's EpochMetric over macro_auroc, the report's definition."""
    from ignite.metrics import EpochMetric

    y = torch.tensor([0, 0, 1, 1, 2, 2])
    p = torch.tensor(
        [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]]
    )
    assert macro_auroc(p, y) == pytest.approx(multiclass_report(y.tolist(), p.numpy())["macro_auroc"])
    assert macro_auroc(p, y) < 1.0  # the last AD subject is ranked below a CN one for AD
    eng = Engine(lambda e, b: b)
    EpochMetric(macro_auroc, check_compute_fn=False).attach(eng, "val_macro_auroc")
    MulticlassReport(NAMES, prefix="val_", with_accuracy=False, with_auroc=False).attach(eng, "report")
    eng.run([(p[:3], y[:3]), (p[3:], y[3:])], max_epochs=1)
    assert eng.state.metrics["val_macro_auroc"] == pytest.approx(macro_auroc(p, y))
    assert "val_accuracy" not in eng.state.metrics and "val_macro_f1" in eng.state.metrics
