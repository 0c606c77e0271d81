# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json

import torch
from ignite.engine import Engine, Events

from shared.handlers.evaluation_report import EvaluationReport
from shared.metrics import ClassificationMetrics


def _evaluate(report, metric=None, data=((torch.tensor([[0.7, 0.3], [0.2, 0.8]]), torch.tensor([1, 1])),)):
    engine = Engine(lambda e, b: b)
    if metric is not None:
        metric.attach(engine, "val_classification")
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(val_loss=0.7, val_auc=0.5))
    report.attach(engine)
    engine.run(list(data), max_epochs=1)


def test_a_classification_report_with_details_and_its_one_line_summary(tmp_path):
    """Two eyes of one glaucoma patient: AUROC undefined (null), the confusion matrix and details kept, the
    threshold chosen on this very split left out."""
    metric = ClassificationMetrics(["non_glaucoma", "glaucoma"], threshold=0.5)
    items = [{"image": "a", "subject_id": "P1", "label": 1}, {"image": "b", "subject_id": "P1", "label": 1}]
    report = EvaluationReport(
        str(tmp_path),
        "validation",
        items,
        metric,
        headline=["auroc", "accuracy", "sensitivity", "specificity", "threshold"],
        details={"model": "/m/model.pt"},
        exclude=["youden_threshold"],
    )
    _evaluate(report, metric)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["auroc"] is None and saved["cases"] == 2 and saved["subjects"] == 1 and saved["loss"] == 0.7
    assert saved["confusion_matrix"] == [[0, 0], [1, 1]] and saved["per_class"]["glaucoma"]["recall"] == 0.5
    assert saved["model"] == "/m/model.pt" and "youden_threshold" not in saved
    assert report.summary() == (
        "validation split (it chose model.pt: optimistic) (2 cases, 1 subjects): auroc n/a, accuracy 0.500, "
        f"sensitivity 0.500, specificity n/a, threshold 0.500 -> {tmp_path / 'metrics.json'}"
    )


def test_scores_from_the_engine_alone(tmp_path):
    items = [{"image": f"s{i}.nii.gz", "label": i % 2} for i in range(3)] + [{"image": "u.nii.gz", "label": -1}]
    report = EvaluationReport(str(tmp_path), "test", items, headline=["auc"])
    _evaluate(report)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == {"split": "test", "cases": 3, "subjects": 3, "loss": 0.7, "auc": 0.5}
    assert report.summary().startswith("test split (3 cases, 3 subjects): auc 0.500 -> ")


def test_no_labelled_case_writes_no_report(tmp_path):
    metric = ClassificationMetrics(["CN", "AD"])
    report = EvaluationReport(str(tmp_path), None, [{"subject_id": "x", "label": -1}], metric)
    _evaluate(report, metric, [(torch.tensor([[0.4, 0.6]]), torch.tensor([-1]))])
    assert not (tmp_path / "metrics.json").exists()
    assert report.summary() == "no labelled case was evaluated: no scores"
