# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Multi-class classification report: accuracy, per-class precision / recall / F1, one-vs-rest and macro AUROC,
confusion matrix (scikit-learn), as a plain function and as an ignite metric for MONAI engines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from monai.utils import evenly_divisible_all_gather

__all__ = ["multiclass_report", "macro_auroc", "MulticlassReport"]


def multiclass_report(
    y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """
    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` class probabilities (rows sum to 1).
        class_names: ``C`` names (default ``"0" .. "C-1"``).

    Returns:
        dict with ``n``, ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``, ``macro_auroc``
        (mean over classes whose one-vs-rest AUROC is defined; NaN if none), ``per_class`` (name -> precision,
        recall, f1, support, auroc) and ``confusion_matrix`` (rows true, columns predicted).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N={y.shape[0]}, C), got {p.shape}.")
    c = p.shape[1]
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names for {c} classes.")
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels must be in [0, {c}), got range [{y.min()}, {y.max()}].")
    pred = p.argmax(1)
    labels = list(range(c))
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    aurocs: list[float] = []
    for k in labels:
        pos = y == k
        aurocs.append(float(roc_auc_score(pos, p[:, k])) if 0 < pos.sum() < y.size else float("nan"))
    defined = [a for a in aurocs if not math.isnan(a)]
    present = support > 0  # macro over classes present in y_true, as sklearn's "macro" over observed labels
    return {
        "n": int(y.size),
        "accuracy": float((pred == y).mean()) if y.size else float("nan"),
        "macro_precision": float(prec[present].mean()) if present.any() else float("nan"),
        "macro_recall": float(rec[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "macro_auroc": float(np.mean(defined)) if defined else float("nan"),
        "per_class": {
            names[k]: {
                "precision": float(prec[k]),
                "recall": float(rec[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
                "auroc": aurocs[k],
            }
            for k in labels
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "class_names": names,
    }


def macro_auroc(probs: torch.Tensor, y_true: torch.Tensor) -> float:
    """The macro AUROC of :func:`multiclass_report` for ``probs (N, C)`` and class indices ``y_true (N,)``, in the
    ``compute_fn(y_pred, y)`` form of ignite's ``EpochMetric`` (a bundle's key metric for model selection)."""
    p = torch.as_tensor(probs).detach().float().cpu().numpy()
    return multiclass_report(torch.as_tensor(y_true).detach().cpu().long().reshape(-1).numpy(), p)["macro_auroc"]


def _as_index(label: Any) -> int:
    t = torch.as_tensor(label).reshape(-1)
    return int(t.argmax()) if t.numel() > 1 else int(t.item())  # one-hot or index


class MulticlassReport(Metric):
    """
    ignite metric over an epoch: ``output_transform`` must give ``(probabilities, labels)`` either as batched
    tensors ``(B, C)`` / ``(B,)`` or as MONAI decollated lists. Under torch.distributed the samples of all ranks
    are gathered before computing. ``compute`` returns the flat scalar part of
    :func:`multiclass_report` (``accuracy``, ``macro_auroc``, ``macro_f1``, ``<metric>_<class>``); the full report
    (with the confusion matrix) is available from :meth:`report` after an epoch.

    Args:
        class_names: class names.
        prefix: prefix of the keys put in ``engine.state.metrics`` (e.g. ``"val_"``).
        output_transform: engine output -> ``(y_pred, y)``.
        with_accuracy: also report accuracy (off when another metric of the engine already does).
        with_auroc: also report macro AUROC (off when another metric of the engine already does).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        prefix: str = "",
        output_transform: Callable = lambda x: x,
        device: str = "cpu",
        with_accuracy: bool = True,
        with_auroc: bool = True,
    ) -> None:
        self.class_names = [str(c) for c in class_names]
        self.prefix = prefix
        self.with_accuracy = with_accuracy
        self.with_auroc = with_auroc
        self._last: dict[str, Any] | None = None
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._probs: list[np.ndarray] = []
        self._labels: list[int] = []

    def update(self, output: Sequence[Any]) -> None:
        y_pred, y = output[0], output[1]
        if isinstance(y_pred, torch.Tensor) and y_pred.ndim == 2:
            preds = list(y_pred.detach().float().cpu())
        else:
            preds = [torch.as_tensor(v).detach().float().cpu().reshape(-1) for v in y_pred]
        labels = list(y.detach().cpu()) if isinstance(y, torch.Tensor) else list(y)
        if len(preds) != len(labels):
            raise ValueError(f"{len(preds)} predictions for {len(labels)} labels.")
        for pr, lb in zip(preds, labels):
            self._probs.append(np.asarray(pr, np.float64))
            self._labels.append(_as_index(lb))

    def report(self) -> dict[str, Any]:
        if self._last is None:
            raise RuntimeError("MulticlassReport has not been computed yet.")
        return self._last

    def _gathered(self) -> tuple[np.ndarray, np.ndarray]:
        """All ranks' samples under torch.distributed (shards may differ in size), else this process's."""
        c = len(self.class_names)
        probs = torch.as_tensor(np.stack(self._probs) if self._probs else np.zeros((0, c)), dtype=torch.float64)
        labels = torch.as_tensor(self._labels, dtype=torch.float64).reshape(-1, 1)
        local = torch.cat([probs, labels], dim=1)
        local = evenly_divisible_all_gather(local.to(self._device), concat=True).cpu()
        return local[:, :c].numpy(), local[:, c].long().numpy()

    def compute(self) -> dict[str, float]:
        probs, labels = self._gathered()
        if labels.size == 0:
            raise RuntimeError("MulticlassReport needs at least one sample.")
        rep = multiclass_report(labels, probs, self.class_names)
        self._last = rep
        keys = ("accuracy",) * self.with_accuracy + ("macro_precision", "macro_recall", "macro_f1")
        out = {self.prefix + k: rep[k] for k in keys}
        if self.with_auroc:
            out[self.prefix + "macro_auroc"] = rep["macro_auroc"]
        for name, vals in rep["per_class"].items():
            for m in ("precision", "recall", "f1"):
                out[f"{self.prefix}{m}_{name}"] = vals[m]
        return out
