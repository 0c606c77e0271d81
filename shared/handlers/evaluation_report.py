# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The scores of an evaluation run, written with the split they were computed on and printed as one line."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ignite.engine import Engine, Events

from shared.atomic import write_json

if TYPE_CHECKING:
    from shared.metrics import ClassificationMetrics

__all__ = ["EvaluationReport"]

logger = logging.getLogger(__name__)


def _strict(value: Any) -> Any:
    """NaN (an undefined score) -> None, so the report is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _labelled(item: Mapping[str, Any]) -> bool:
    label = item.get("label", 0)
    return label is not None and not (isinstance(label, (int, float)) and label < 0)


class EvaluationReport:
    """
    When the evaluator completes, write ``<output_dir>/<filename>``: the split scored, its numbers of cases and
    subjects, ``details`` (the model file, how a threshold was chosen, ...) and the scores: every scalar of
    ``engine.state.metrics``, renamed from ``<metric_prefix><name>`` (the names validation logs under) to ``<name>``,
    and, with ``metric``, its whole report (per-class scores, confusion matrix). Undefined scores are ``null``.
    :meth:`print_summary`, the last step of a bundle's ``run``, prints the ``headline`` scores in one line, so they
    are the last line of the run (the engine still logs after its handlers).

    Args:
        output_dir: where the report goes.
        split: the name of the split scored (``test``, or ``validation``, which chose ``model.pt``; ``None``: the
            labelled cases of an inference run).
        items: the scored datalist items (with ``subject_id``; those with a negative label are not scored), for the
            counts.
        metric: the evaluator's :class:`~shared.metrics.ClassificationMetrics`: its report is written whole, and
            with no labelled case no report is written.
        headline: the scores of the summary line (default: every scalar score).
        details: written as they are.
        exclude: scores left out (e.g. a threshold chosen on the scored split itself).
        filename: report file name.
        metric_prefix: prefix of the evaluator's metric names to remove.
    """

    def __init__(
        self,
        output_dir: str,
        split: str | None = "test",
        items: Sequence[Mapping[str, Any]] = (),
        metric: ClassificationMetrics | None = None,
        headline: Sequence[str] | None = None,
        details: Mapping[str, Any] | None = None,
        exclude: Sequence[str] = (),
        filename: str = "metrics.json",
        metric_prefix: str = "val_",
    ) -> None:
        self.path = os.path.join(os.fspath(output_dir), filename)
        self.split = split
        scored = [i for i in items if _labelled(i)]
        self.cases = len(scored)
        self.subjects = len({str(i.get("subject_id", i.get("image"))) for i in scored})
        self.metric = metric
        self.headline = list(headline) if headline is not None else None
        self.details = dict(details or {})
        self.exclude = set(exclude)
        self.metric_prefix = metric_prefix
        self.report: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        full = self.metric.report() if self.metric is not None else {}
        if full is None:
            logger.info("no labelled case was evaluated: no report")
            return
        scores: dict[str, Any] = {}
        for name, value in engine.state.metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # arrays and whole reports are not scores
            scores[name.removeprefix(self.metric_prefix)] = float(value)
        scores.update({k: v for k, v in full.items() if k not in ("n", "class_names")})
        scores = {k: v for k, v in scores.items() if k not in self.exclude}
        cases = full.get("n", self.cases)
        report = {"split": self.split, "cases": cases, "subjects": self.subjects, **self.details, **scores}
        self.report = _strict(report)
        write_json(self.path, self.report)
        logger.info(self.summary())

    def print_summary(self) -> None:
        print(self.summary(), flush=True)

    def summary(self) -> str:
        """``test split (4 cases, 4 subjects): auc 0.750, accuracy 0.500 -> .../metrics.json``."""
        if self.report is None:
            return "no labelled case was evaluated: no scores"
        r = self.report
        name = f"{self.split} split" if self.split else "labelled cases"
        name += " (it chose model.pt: optimistic)" if self.split == "validation" else ""
        keys = self.headline if self.headline is not None else [k for k, v in r.items() if isinstance(v, float)]
        scores = ", ".join(f"{k} {'n/a' if r.get(k) is None else f'{r[k]:.3f}'}" for k in keys)
        return f"{name} ({r['cases']} cases, {r['subjects']} subjects): {scores} -> {self.path}"
