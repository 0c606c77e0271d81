# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""What the classification bundles share about their training lists: class balance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["class_weights"]


def class_weights(items: Sequence[Mapping[str, Any]], num_classes: int) -> list[float]:
    """Inverse-frequency class weights (mean 1) for an imbalanced training list."""
    counts = np.bincount([int(i["label"]) for i in items], minlength=num_classes).astype(float)
    if np.any(counts == 0):
        missing = [c for c in range(num_classes) if counts[c] == 0]
        raise ValueError(f"training list has no example of class(es) {missing}.")
    w = counts.sum() / (num_classes * counts)
    return (w / w.mean()).tolist()
