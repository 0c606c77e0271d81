# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""What the bundles share about their splits: the split an evaluation scores, and class balance of a training list."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.errors import InputError

__all__ = ["select_split", "class_weights"]

logger = logging.getLogger(__name__)


def class_weights(items: Sequence[Mapping[str, Any]], num_classes: int) -> list[float]:
    """Inverse-frequency class weights (mean 1) for an imbalanced training list."""
    counts = np.bincount([int(i["label"]) for i in items], minlength=num_classes).astype(float)
    if np.any(counts == 0):
        missing = [c for c in range(num_classes) if counts[c] == 0]
        raise ValueError(f"training list has no example of class(es) {missing}.")
    w = counts.sum() / (num_classes * counts)
    return (w / w.mean()).tolist()


def select_split(datalists: Mapping[str, Sequence[Mapping[str, Any]]], split: str = "test") -> list[dict[str, Any]]:
    """The items an evaluation scores: ``datalists[split]``, ``test`` by default. ``validation`` must be asked for
    knowingly (it chose ``model.pt``, so its scores are optimistic); an empty split stops the evaluation, saying how
    to give one."""
    if split not in ("test", "validation"):
        raise InputError(
            f"config id 'eval_split' is {split!r}: expected 'test' (the held-out subjects) or 'validation'."
        )
    items = [dict(item) for item in datalists.get(split) or []]
    if not items:
        raise InputError(
            f"The dataset has no {split} cases, so there is nothing to evaluate. Give a test split: test_fraction > 0 "
            "when the bundle draws the splits (with enough subjects, see the card), or the test subjects marked in "
            "the data (a 'split' column, a decathlon 'testing' list with labels, a release's test folder), at "
            "training and at evaluation alike. Or evaluate the validation split knowingly with --eval_split "
            "validation: it chose model.pt, so its scores are optimistic."
        )
    if split == "validation":
        logger.warning("evaluating the validation split: it chose model.pt, so its scores are optimistic")
    return items
