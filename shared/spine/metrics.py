# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Segmentation scores with the definitions the model cards give, from one pass over the evaluated volumes.

For every volume and foreground class the metric counts true positives, false positives and false negatives. Then:

- **per-volume Dice / IoU** (``mean_dice``, ``mean_iou``): ``2TP / (2TP + FP + FN)`` and ``TP / (TP + FP + FN)`` for
  each (volume, class), averaged over every defined pair. A class predicted in a volume whose ground truth lacks it
  scores 0 (a hallucinated vertebra costs); a class absent from both prediction and ground truth is ignored.
- **dataset-level Dice / IoU** (``dataset_dice``, ``dataset_iou``): the same ratios of TP, FP, FN summed over the
  volumes, per class, and their mean over the classes that occur in the ground truth or the prediction.
- **mAcc** (``mean_acc``): the mean, over the foreground classes that occur in the ground truth of the evaluated set,
  of each class's voxel accuracy ``ΣTP / (ΣTP + ΣFN)`` summed over the volumes. (MONAI's ``ConfusionMatrixMetric``
  with its defaults pools the counts over classes before the ratio, which is not this.)

:class:`SegmentationMetrics` is an ignite metric (training validation and evaluation share it); :func:`select`
makes one of its scalars a key metric; :class:`SegmentationReportSaver` writes the per-class and per-case tables
and a ``metrics.json`` summary from the same counts.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric, MetricsLambda

from shared.atomic import atomic_write, write_json
from shared.errors import InputError

__all__ = [
    "segmentation_counts",
    "segmentation_scores",
    "SegmentationMetrics",
    "select",
    "SegmentationReportSaver",
    "check_class_names",
]

logger = logging.getLogger(__name__)


def segmentation_counts(pred: torch.Tensor, label: torch.Tensor, num_classes: int, spatial_dims: int = 3) -> np.ndarray:
    """``(3, num_classes - 1)`` int64 counts TP, FP, FN of the foreground classes of one volume.

    ``pred`` and ``label`` are channel-first, one-hot ``(num_classes, *spatial)`` or class indices
    ``(1, *spatial)``, or plain class-index maps ``(*spatial)``.
    """

    def indices(x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x).detach()
        if x.ndim == spatial_dims:
            return x.long()
        if x.ndim == spatial_dims + 1 and x.shape[0] in (1, num_classes):
            return x.argmax(0) if x.shape[0] == num_classes and num_classes > 1 else x[0].long()
        raise ValueError(
            f"expected a {spatial_dims}D class-index map or a channel-first tensor with 1 or {num_classes} channels, "
            f"got shape {tuple(x.shape)}"
        )

    p, g = indices(pred).reshape(-1), indices(label).reshape(-1)
    if p.shape != g.shape:
        raise ValueError(f"prediction and label differ in size: {tuple(pred.shape)} vs {tuple(label.shape)}")
    # one bincount over (label, prediction) pairs gives the whole confusion matrix
    confusion = torch.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = confusion.diagonal()
    fp = confusion.sum(0) - tp
    fn = confusion.sum(1) - tp
    return torch.stack([tp, fp, fn])[:, 1:].cpu().numpy().astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _nanmean(x: np.ndarray, axis=None) -> Any:
    with np.errstate(invalid="ignore"):
        defined = ~np.isnan(x)
        total = np.where(defined, x, 0.0).sum(axis=axis)
        count = defined.sum(axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def segmentation_scores(counts: np.ndarray) -> dict[str, Any]:
    """Scores from per-volume counts ``(V, 3, K)`` (TP, FP, FN of K foreground classes); see the module docstring.

    Returns scalars ``mean_dice``, ``mean_iou``, ``mean_acc``, ``dataset_dice``, ``dataset_iou`` (NaN when nothing is
    defined) and per-class arrays ``(K,)``: ``class_dice``, ``class_iou`` (per-volume means), ``class_acc``,
    ``class_dataset_dice``, ``class_dataset_iou``, ``class_volumes`` (volumes whose ground truth holds the class),
    and per-volume arrays ``(V, K)``: ``volume_dice``, ``volume_iou``.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3, np.shape(counts)[-1])
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    volume_dice, volume_iou = _ratio(2 * tp, 2 * tp + fp + fn), _ratio(tp, tp + fp + fn)
    stp, sfp, sfn = tp.sum(0), fp.sum(0), fn.sum(0)
    class_acc = _ratio(stp, stp + sfn)  # NaN for classes absent from every ground truth
    dataset_dice, dataset_iou = _ratio(2 * stp, 2 * stp + sfp + sfn), _ratio(stp, stp + sfp + sfn)
    return {
        "mean_dice": float(_nanmean(volume_dice)),
        "mean_iou": float(_nanmean(volume_iou)),
        "mean_acc": float(_nanmean(class_acc)),
        "dataset_dice": float(_nanmean(dataset_dice)),
        "dataset_iou": float(_nanmean(dataset_iou)),
        "class_dice": _nanmean(volume_dice, axis=0),
        "class_iou": _nanmean(volume_iou, axis=0),
        "class_acc": class_acc,
        "class_dataset_dice": dataset_dice,
        "class_dataset_iou": dataset_iou,
        "class_volumes": (tp + fn > 0).sum(0),
        "volume_dice": volume_dice,
        "volume_iou": volume_iou,
    }


class SegmentationMetrics(Metric):
    """Counts TP/FP/FN per volume and foreground class over an epoch; ``compute()`` returns
    :func:`segmentation_scores` with every key prefixed by ``prefix`` (e.g. ``val_mean_dice``).

    ``output_transform`` gives ``(preds, labels)`` or ``(preds, labels, names)``: lists of per-volume tensors
    (one-hot ``(C, *spatial)`` or index maps) and, optionally, each volume's name for the per-case table. Under
    torch.distributed the counts of every process are gathered.
    """

    def __init__(
        self,
        num_classes: int,
        spatial_dims: int = 3,
        prefix: str = "val_",
        output_transform: Callable = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must count the background and at least one class, got {num_classes}.")
        self.num_classes, self.spatial_dims, self.prefix = int(num_classes), int(spatial_dims), prefix
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self.counts: list[np.ndarray] = []
        self.names: list[str] = []

    def update(self, output: Sequence) -> None:
        preds, labels = output[0], output[1]
        names = output[2] if len(output) > 2 else [""] * len(preds)
        if isinstance(preds, torch.Tensor) and preds.ndim == self.spatial_dims + 2:
            preds, labels = list(preds), list(labels)  # a batch tensor: one volume per row
        for pred, label, name in zip(preds, labels, names):
            self.counts.append(segmentation_counts(pred, label, self.num_classes, self.spatial_dims))
            self.names.append(str(name))

    def all_counts(self) -> tuple[np.ndarray, list[str]]:
        """Every process's counts ``(V, 3, K)`` and volume names (this process's, when it runs alone)."""
        k = self.num_classes - 1
        local = np.stack(self.counts) if self.counts else np.zeros((0, 3, k), np.int64)
        if idist.get_world_size() == 1:
            return local, list(self.names)
        parts = idist.all_gather((local, list(self.names)))  # picklable objects: any number of volumes per process
        return np.concatenate([c for c, _ in parts]), [n for _, names in parts for n in names]

    def compute(self) -> dict[str, Any]:
        counts, _ = self.all_counts()
        if not len(counts):
            raise RuntimeError("SegmentationMetrics needs at least one volume before it can be computed.")
        return {f"{self.prefix}{k}": v for k, v in segmentation_scores(counts).items()}


def select(metric: SegmentationMetrics, key: str) -> MetricsLambda:
    """One scalar of ``metric`` (e.g. ``"mean_dice"``) as its own ignite metric, for a key metric; the counts are
    taken once, by ``metric``."""
    name = f"{metric.prefix}{key}"
    return MetricsLambda(lambda scores: scores[name], metric)


class SegmentationReportSaver:
    """After each evaluation, write from :class:`SegmentationMetrics`' counts (atomically, into ``output_dir``):

    - ``metrics.json``: the summary (mDice, mIoU, mAcc, dataset-level Dice/IoU), each class's values, the number
      of volumes, and the definitions' one-line reminders;
    - ``per_class.csv``: class, volumes holding it, per-volume mean Dice and IoU, accuracy, dataset Dice and IoU;
    - ``per_case.csv``: each volume's name and Dice per class (empty where the class is absent from both).

    It also logs (and prints) one line with the held-out score and the per-class Dice.
    """

    def __init__(
        self, metric: SegmentationMetrics, output_dir: str, class_names: Sequence[str], split: str = "test"
    ) -> None:
        check_class_names(class_names, metric.num_classes)
        self.metric, self.output_dir, self.class_names, self.split = metric, output_dir, list(class_names), split
        self.summary_line = ""  # the last summary, for the workflow to print as its last line

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        counts, names = self.metric.all_counts()
        if idist.get_rank() != 0 or not len(counts):
            return
        s = segmentation_scores(counts)
        per_class = {
            name: {
                "volumes": int(s["class_volumes"][i]),
                "dice": _num(s["class_dice"][i]),
                "iou": _num(s["class_iou"][i]),
                "acc": _num(s["class_acc"][i]),
                "dataset_dice": _num(s["class_dataset_dice"][i]),
                "dataset_iou": _num(s["class_dataset_iou"][i]),
            }
            for i, name in enumerate(self.class_names)
        }
        summary = {k: _num(s[k]) for k in ("mean_dice", "mean_iou", "mean_acc", "dataset_dice", "dataset_iou")}
        write_json(
            os.path.join(self.output_dir, "metrics.json"),
            {
                "split": self.split,
                "volumes": len(counts),
                **summary,
                "per_class": per_class,
                "definitions": {
                    "mean_dice": "mean Dice over (volume, class); predicted but absent = 0, absent from both skipped",
                    "mean_acc": "mean over classes in the ground truth of sum TP / sum (TP + FN) over volumes",
                    "dataset_dice": "Dice of TP/FP/FN summed over volumes, per class, averaged over classes",
                },
            },
            allow_nan=False,
        )
        self._write_csv(
            "per_class.csv",
            ["class", "volumes", "dice", "iou", "acc", "dataset_dice", "dataset_iou"],
            [[n, *[v if v is not None else "" for v in row.values()]] for n, row in per_class.items()],
        )
        self._write_csv(
            "per_case.csv",
            ["case", *self.class_names, "mean_dice"],
            [
                [name, *[_cell(v) for v in dice], _cell(_nanmean(dice))]
                for name, dice in zip(names or [""] * len(counts), s["volume_dice"])
            ],
        )
        present = ", ".join(f"{n} {row['dice']:.2f}" for n, row in per_class.items() if row["dice"] is not None)
        line = f"{self.split} mDice {summary['mean_dice']:.4f} over {len(counts)} volume(s): {present}"
        self.summary_line = line
        logger.info(line)
        print(line, flush=True)

    def _write_csv(self, name: str, header: list[str], rows: list[list]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        with atomic_write(os.path.join(self.output_dir, name), newline="") as f:
            f.write(buf.getvalue())


def check_class_names(class_names: Sequence[str], num_classes: int) -> None:
    """One name per foreground class: ``len(class_names) == num_classes - 1``, checked before training so that a
    long run does not end in an evaluation that cannot name its classes."""
    if isinstance(class_names, str) or len(class_names) != num_classes - 1:
        n = 1 if isinstance(class_names, str) else len(class_names)
        raise InputError(
            f"config id 'label_names' has {n} name(s) for {num_classes - 1} foreground classes (num_classes - 1): "
            "give one name per class with --label_names, e.g. --label_names \"['L1', 'L2']\"."
        )


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


def _cell(x: Any) -> str:
    x = float(x)
    return "" if np.isnan(x) else f"{x:.6f}"
