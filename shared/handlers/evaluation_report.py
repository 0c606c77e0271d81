# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The scores of an evaluation run, written with the split they were computed on and printed as one line."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ignite.engine import Engine, Events

from shared.atomic import write_json

__all__ = ["EvaluationReport"]

logger = logging.getLogger(__name__)


class EvaluationReport:
    """
    When the evaluator completes, write ``<output_dir>/<filename>``: the split scored, its numbers of volumes and
    subjects, and every scalar metric of the evaluator, renamed from ``<metric_prefix><name>`` (the names validation
    logs under) to ``<split>_<name>``. :meth:`print_summary`, the last step of a bundle's ``run``, prints the scores
    in one line, so they are the last line of the run (the engine still logs after its handlers).

    Args:
        output_dir: where the report goes.
        split: the name of the split scored (``test``, or ``validation``, which chose ``model.pt``).
        items: the scored datalist items (with ``subject_id``), for the counts.
        filename: report file name.
        metric_prefix: prefix of the evaluator's metric names to replace by the split name.
    """

    def __init__(
        self,
        output_dir: str,
        split: str = "test",
        items: Sequence[Mapping[str, Any]] = (),
        filename: str = "metrics.json",
        metric_prefix: str = "val_",
    ) -> None:
        self.path = os.path.join(os.fspath(output_dir), filename)
        self.split = split
        self.volumes = len(items)
        self.subjects = len({str(i.get("subject_id", i.get("image"))) for i in items})
        self.metric_prefix = metric_prefix
        self.report: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        scores = {}
        for name, value in engine.state.metrics.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # arrays and reports are not headline scores
            name = name[len(self.metric_prefix) :] if name.startswith(self.metric_prefix) else name
            scores[f"{self.split}_{name}"] = None if math.isnan(value) else value
        self.report = {"split": self.split, "volumes": self.volumes, "subjects": self.subjects, **scores}
        write_json(self.path, self.report)
        logger.info(self.summary())

    def print_summary(self) -> None:
        print(self.summary(), flush=True)

    def summary(self) -> str:
        """``test split (4 volumes, 4 subjects): auc 0.750, accuracy 0.500 -> .../metrics.json``."""
        if self.report is None:
            return "no evaluation has completed"
        name = f"{self.split} split" + (" (it chose model.pt: optimistic)" if self.split == "validation" else "")
        scores = ", ".join(
            f"{k[len(self.split) + 1 :]} {'n/a' if v is None else f'{v:.3f}'}"
            for k, v in self.report.items()
            if k.startswith(f"{self.split}_")
        )
        return f"{name} ({self.volumes} volumes, {self.subjects} subjects): {scores} -> {self.path}"
