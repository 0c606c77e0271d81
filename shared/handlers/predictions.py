# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The class probabilities of every case of an evaluation or inference pass, as one CSV."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.data import decollate_batch

from shared.atomic import atomic_write

__all__ = ["ProbabilityWriter"]

logger = logging.getLogger(__name__)


def _cases(engine: Engine) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(input item, output item) pairs of the last iteration, decollated if the engine did not."""
    batch, output = engine.state.batch, engine.state.output
    if isinstance(batch, Mapping):
        batch = decollate_batch(batch)
    if isinstance(output, Mapping):
        output = decollate_batch(output)
    return list(zip(batch, output))


def _label(value: Any) -> int | None:
    """A class index from an index, a ``(1,)`` tensor or a one-hot vector; ``None`` (or a negative index) is none."""
    if value is None:
        return None
    t = torch.as_tensor(value).reshape(-1)
    index = int(t.argmax()) if t.numel() > 1 else int(t.item())
    return index if index >= 0 else None


class ProbabilityWriter:
    """
    Attach to an evaluator: when its pass completes, write ``<output_dir>/<filename>`` atomically, one row per case:
    ``<id_column>, prob_<class>..., predicted[, threshold][, label]``. ``label`` is written when a case of the pass
    has one (evaluation), and empty for a case without.

    Args:
        output_dir: where the CSV goes.
        class_names: the classes, in the order of the probabilities.
        filename: the CSV's name.
        pred_key: the output key of the class probabilities (after softmax).
        id_key: the key (of the output, else the input) that names a case: a string, or an image whose
            ``filename_or_obj`` is used.
        id_column: the header of the first column.
        threshold: two classes: the last class is predicted where its probability is at least ``threshold``
            (written in a column of its own); ``None``: the most probable class.
        label_key: the key (of the output, else the input) of the true class.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        filename: str = "probabilities.csv",
        pred_key: str = "pred",
        id_key: str = "image",
        id_column: str = "image",
        threshold: float | None = None,
        label_key: str = "label",
    ) -> None:
        self.path = os.path.join(os.fspath(output_dir), filename)
        self.class_names = [str(c) for c in class_names]
        self.pred_key, self.id_key, self.id_column, self.label_key = pred_key, id_key, id_column, label_key
        if threshold is not None and len(self.class_names) != 2:
            raise ValueError(f"a decision threshold needs two classes, got {self.class_names}.")
        self.threshold = None if threshold is None else float(threshold)
        self._rows: list[list[Any]] = []
        self._labels: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._rows, self._labels = [], []

    def _collect(self, engine: Engine) -> None:
        for item, out in _cases(engine):
            name = out.get(self.id_key, item.get(self.id_key))
            name = (getattr(name, "meta", None) or {}).get("filename_or_obj", name)
            name = str(name) if name is not None and str(name) else f"case_{len(self._rows)}"
            probs = torch.as_tensor(out[self.pred_key]).detach().float().cpu().reshape(-1)
            if self.threshold is None:
                predicted = int(probs.argmax())
            else:
                predicted = int(float(probs[-1]) >= self.threshold)
            row = [name, *(f"{float(p):.6f}" for p in probs), self.class_names[predicted]]
            self._rows.append(row if self.threshold is None else row + [self.threshold])
            label = _label(out.get(self.label_key, item.get(self.label_key)))
            self._labels.append(self.class_names[label] if label is not None else "")

    def _write(self, engine: Engine) -> None:
        header = [self.id_column, *(f"prob_{c}" for c in self.class_names), "predicted"]
        header += [] if self.threshold is None else ["threshold"]
        rows = self._rows
        if any(self._labels):
            header.append("label")
            rows = [row + [label] for row, label in zip(rows, self._labels)]
        with atomic_write(self.path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        logger.info(f"class probabilities of {len(rows)} cases written to {self.path}")
