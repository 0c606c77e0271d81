# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Binary classification metrics from probabilities: AUROC on the scores, the rest at a decision threshold.

Accuracy, sensitivity (recall of the positive class), specificity, precision, F1 and the confusion matrix use
``prob >= threshold``; AUROC uses the probabilities themselves (MONAI ``compute_roc_auc``). The Youden threshold
(maximising sensitivity + specificity - 1) is chosen on validation and then applied to the test set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from ignite.metrics import Metric, MetricsLambda
from monai.metrics import compute_roc_auc
from monai.utils import evenly_divisible_all_gather

from shared.atomic import write_json
from shared.errors import InputError, MissingInputError
from shared.inputs import read_json

__all__ = [
    "binary_metrics",
    "youden_threshold",
    "BinaryClassificationMetrics",
    "select",
    "read_threshold",
    "write_threshold",
]


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def youden_threshold(probs, labels) -> float:
    """Threshold on the positive-class probability that maximises Youden's J (ties: the larger threshold)."""
    p = _as_numpy(probs).astype(float).ravel()
    y = _as_numpy(labels).astype(int).ravel()
    if len(set(y.tolist())) < 2:
        return 0.5
    best_j, best_t = -np.inf, 0.5
    for t in np.unique(p):
        pred = p >= t
        sens = (pred & (y == 1)).sum() / max((y == 1).sum(), 1)
        spec = (~pred & (y == 0)).sum() / max((y == 0).sum(), 1)
        if sens + spec - 1 >= best_j:
            best_j, best_t = sens + spec - 1, float(t)
    return best_t


def binary_metrics(probs, labels, threshold: float = 0.5) -> dict[str, float | dict[str, int]]:
    """All metrics for positive-class probabilities ``(N,)`` and labels ``(N,)`` in {0, 1}; ``confusion_matrix``
    is ``{"tn", "fp", "fn", "tp"}`` counts."""
    p = _as_numpy(probs).astype(float).ravel()
    y = _as_numpy(labels).astype(int).ravel()
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"probs and labels must be non-empty and the same length, got {p.shape} and {y.shape}.")
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    auroc = float("nan")
    if len(set(y.tolist())) == 2:
        auroc = float(compute_roc_auc(torch.as_tensor(p), torch.as_tensor(y)))
    return {
        "accuracy": (tp + tn) / y.size,
        "balanced_accuracy": (sens + spec) / 2,
        "auroc": auroc,
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "f1": f1,
        "threshold": float(threshold),
        "youden_threshold": youden_threshold(p, y),
        # named counts, not a nested list: trackers (MLflow) log a dict entry by entry but refuse a matrix
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


class BinaryClassificationMetrics(Metric):
    """Ignite metric accumulating positive-class probabilities and labels; ``compute()`` gives
    :func:`binary_metrics` (each entry also lands in ``engine.state.metrics`` under its own name).

    ``output_transform`` must give ``(probs, labels)``: probabilities ``(B, 2)`` (or ``(B,)`` positive class) or a
    list of ``(2,)`` tensors, labels ``(B,)``, ``(B, 1)`` or one-hot ``(B, 2)``.
    """

    def __init__(
        self, threshold: float = 0.5, positive_index: int = 1, output_transform: Callable = lambda x: x
    ) -> None:
        self.threshold = float(threshold)
        self.positive_index = positive_index
        super().__init__(output_transform=output_transform)

    def reset(self) -> None:
        self._probs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def _to_rows(self, x) -> torch.Tensor:
        if isinstance(x, Sequence) and not isinstance(x, torch.Tensor):
            x = torch.stack([torch.as_tensor(v) for v in x])
        return torch.as_tensor(x).detach().float().cpu()

    def update(self, output) -> None:
        probs, labels = output
        probs, labels = self._to_rows(probs), self._to_rows(labels)
        if probs.ndim == 2 and probs.shape[1] > 1:
            probs = probs[:, self.positive_index]
        if labels.ndim == 2 and labels.shape[1] > 1:
            labels = labels.argmax(dim=1)
        self._probs.append(probs.reshape(-1).numpy())
        self._labels.append(labels.reshape(-1).numpy())

    def compute(self) -> dict:
        probs = np.concatenate(self._probs) if self._probs else np.zeros(0)
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0)
        probs, labels = _gather(probs), _gather(labels)  # distributed validation: every rank sees all cases
        if probs.size == 0:
            raise RuntimeError("BinaryClassificationMetrics needs at least one batch before compute().")
        return binary_metrics(probs, labels, self.threshold)


def select(metric: BinaryClassificationMetrics, key: str) -> MetricsLambda:
    """One scalar of ``metric`` (``"auroc"``, ``"balanced_accuracy"``, ...) as its own ignite metric, for a key
    metric; the probabilities are gathered once, by ``metric``."""
    return MetricsLambda(lambda scores: scores[key], metric)


def _gather(values: np.ndarray) -> np.ndarray:
    """Concatenate a 1D array over all ranks (shards may differ in size)."""
    import ignite.distributed as idist

    t = torch.as_tensor(values, dtype=torch.float64, device=idist.device())
    return evenly_divisible_all_gather(t, concat=True).cpu().numpy()


def write_threshold(path: str, threshold: float, **extra) -> None:
    """``{"threshold": t, **extra}`` to ``path``, atomically."""
    write_json(path, {"threshold": float(threshold), **extra})


def read_threshold(path: str) -> float:
    """Decision threshold saved during training validation (``{"threshold": t}``)."""
    if not os.path.isfile(path):
        raise MissingInputError(
            f"The threshold file {path} does not exist. Training's validation writes it beside model.pt; train first, "
            "or set --use_youden_threshold false (threshold 0.5)."
        )
    content = read_json(path, what="threshold file")
    t = content.get("threshold") if isinstance(content, dict) else None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
        raise InputError(f'The threshold file {path} must hold {{"threshold": <a number in [0, 1]>}}, got {content!r}.')
    return float(t)
