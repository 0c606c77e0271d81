# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Classification scores from class probabilities, one definition for every classification bundle.

:func:`classification_report` scores ``(N, C)`` probabilities against class indices: accuracy, balanced accuracy,
per-class precision / recall / F1 / one-vs-rest AUROC, their macro means over the classes present, and the confusion
matrix (``C x C``, rows true, columns predicted). Two classes add the binary view of the positive class (index 1):
``auroc``, ``sensitivity``, ``specificity``, ``precision``, ``f1`` at a decision ``threshold`` on its probability,
and the Youden threshold of the scores. A score without a definition on the data (the precision of a class never
predicted, the AUROC of a class absent or alone) is NaN and left out of the macro means.

:class:`ClassificationMetrics` is the ignite metric over an epoch (gathered across ranks), :func:`select` one of its
scores as a metric of its own (a key metric for model selection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric, MetricsLambda
from monai.utils import evenly_divisible_all_gather

__all__ = ["classification_report", "youden_threshold", "ClassificationMetrics", "select"]


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def youden_threshold(probs: Any, labels: Any) -> float:
    """Threshold on the positive-class probability that maximises Youden's J (sensitivity + specificity - 1; ties:
    the larger threshold); 0.5 when the labels hold one class."""
    p = _as_numpy(probs).astype(float).ravel()
    y = _as_numpy(labels).astype(int).ravel()
    if len(set(y.tolist())) < 2:
        return 0.5
    best_j, best_t = -np.inf, 0.5
    for t in np.unique(p):
        pred = p >= t
        j = (pred & (y == 1)).sum() / (y == 1).sum() + (~pred & (y == 0)).sum() / (y == 0).sum() - 1
        if j >= best_j:
            best_j, best_t = j, float(t)
    return best_t


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def classification_report(
    probs: Any, labels: Any, class_names: Sequence[str] | None = None, threshold: float = 0.5
) -> dict[str, Any]:
    """
    Args:
        probs: ``(N, C)`` class probabilities, ``C >= 2`` (or ``(N,)`` positive-class probabilities of two classes).
        labels: ``(N,)`` class indices.
        class_names: ``C`` names (default ``"0" .. "C-1"``).
        threshold: two classes: the positive class is predicted where its probability is at least this; more
            classes: the most probable class is predicted and the threshold does not apply.

    Returns:
        ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``,
        ``macro_auroc``, ``per_class`` (name -> ``precision``, ``recall``, ``f1``, ``support``, ``auroc``),
        ``confusion_matrix`` (rows true, columns predicted) and ``class_names``; with two classes also ``threshold``,
        ``auroc``, ``sensitivity``, ``specificity``, ``precision``, ``f1`` and ``youden_threshold``.
    """
    from sklearn.metrics import confusion_matrix, roc_auc_score

    p = _as_numpy(probs).astype(np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    y = _as_numpy(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] != y.shape[0] or y.size == 0:
        raise ValueError(f"probs must be (N={y.shape[0]} > 0, C >= 2), got {p.shape}.")
    c = p.shape[1]
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names for {c} classes.")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"labels must be in [0, {c}), got range [{y.min()}, {y.max()}].")
    pred = (p[:, 1] >= threshold).astype(np.int64) if c == 2 else p.argmax(1)
    cm = confusion_matrix(y, pred, labels=list(range(c)))
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1).astype(float), cm.sum(0).astype(float)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)
    auroc = np.array([roc_auc_score(y == k, p[:, k]) if 0 < support[k] < y.size else np.nan for k in range(c)])
    present = support > 0
    report: dict[str, Any] = {
        "n": int(y.size),
        "accuracy": float(tp.sum() / y.size),
        "balanced_accuracy": _mean(recall[present]),
        "macro_precision": _mean(precision[present]),
        "macro_recall": _mean(recall[present]),
        "macro_f1": _mean(f1[present]),
        "macro_auroc": _mean(auroc),
        "per_class": {
            names[k]: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
                "auroc": float(auroc[k]),
            }
            for k in range(c)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": names,
    }
    if c == 2:
        report.update(
            threshold=float(threshold),
            auroc=float(auroc[1]),
            sensitivity=float(recall[1]),
            specificity=float(recall[0]),
            precision=float(precision[1]),
            f1=float(f1[1]),
            youden_threshold=youden_threshold(p[:, 1], y),
        )
    return report


def _scalars(report: dict[str, Any], prefix: str) -> dict[str, float]:
    """The report's scalar scores, per class as ``<score>_<class name>``, each under ``prefix``."""
    out = {prefix + k: float(v) for k, v in report.items() if k != "n" and isinstance(v, (int, float))}
    for name, scores in report["per_class"].items():
        out.update({f"{prefix}{k}_{name}": scores[k] for k in ("precision", "recall", "f1", "auroc")})
    return out


def _as_index(label: Any) -> int:
    t = torch.as_tensor(label).reshape(-1)
    return int(t.argmax()) if t.numel() > 1 else int(t.item())  # one-hot or index


class ClassificationMetrics(Metric):
    """
    Ignite metric over an epoch: :func:`classification_report` of the probabilities and labels of all ranks.

    ``compute`` gives the report's scalars (``<prefix>accuracy``, ``<prefix>macro_auroc``,
    ``<prefix>recall_<class>``, ...), each of which also lands in ``engine.state.metrics`` under its own name, as
    trackers log scalars; :meth:`report` gives the whole last report, confusion matrix included.

    ``output_transform`` must give ``(probabilities, labels)``: batched ``(B, C)`` / ``(B,)`` tensors or MONAI's
    decollated lists; labels as indices, ``(B, 1)`` or one-hot. A negative label marks a case without one: it is
    not scored.

    Args:
        class_names: the ``C`` class names.
        threshold: two classes: the decision threshold on the positive class (index 1).
        prefix: put before every score's name (``"val_"``).
        output_transform: engine output -> ``(probabilities, labels)``.
        device: where the gathered tensors go.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        threshold: float = 0.5,
        prefix: str = "",
        output_transform: Callable = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        self.class_names = [str(c) for c in class_names]
        self.threshold = float(threshold)
        self.prefix = prefix
        self._last: dict[str, Any] | None = None
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._probs: list[torch.Tensor] = []
        self._labels: list[int] = []

    def update(self, output: Sequence[Any]) -> None:
        y_pred, y = output[0], output[1]
        if isinstance(y_pred, torch.Tensor) and y_pred.ndim == 2:
            preds = list(y_pred.detach().double().cpu())
        else:
            preds = [torch.as_tensor(v).detach().double().cpu().reshape(-1) for v in y_pred]
        labels = list(y.detach().cpu()) if isinstance(y, torch.Tensor) else list(y)
        if len(preds) != len(labels):
            raise ValueError(f"{len(preds)} predictions for {len(labels)} labels.")
        for pred, label in zip(preds, labels):
            index = _as_index(label)
            if index >= 0:  # a negative label is no label (an unlabelled case of an inference run)
                self._probs.append(pred)
                self._labels.append(index)

    def compute(self) -> dict[str, float]:
        c = len(self.class_names)
        probs = torch.stack(self._probs) if self._probs else torch.zeros((0, c), dtype=torch.float64)
        labels = torch.as_tensor(self._labels, dtype=torch.float64).reshape(-1, 1)
        rows = evenly_divisible_all_gather(torch.cat([probs, labels], 1).to(self._device), concat=True).cpu()
        if rows.shape[0] == 0:
            self._last = None
            return {}  # nothing labelled was seen: no scores
        self._last = classification_report(rows[:, :c], rows[:, c].long(), self.class_names, self.threshold)
        return _scalars(self._last, self.prefix)

    def report(self) -> dict[str, Any] | None:
        """The last :func:`classification_report` this metric computed (``None`` when it saw no labelled case)."""
        return self._last


def select(metric: ClassificationMetrics, key: str) -> MetricsLambda:
    """One score of ``metric`` (its name with the prefix, e.g. ``"auroc"`` or ``"val_macro_auroc"``) as an ignite
    metric of its own, for a key metric; the samples are gathered once, by ``metric``."""
    return MetricsLambda(lambda scores: scores[key], metric)
