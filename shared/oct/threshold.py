# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The decision threshold glaucoma_oct_classification keeps beside its model: chosen on validation (the Youden
threshold of :func:`shared.metrics.classification_report`), applied at evaluation and inference."""

from __future__ import annotations

import os

from shared.atomic import write_json
from shared.errors import InputError, MissingInputError
from shared.inputs import read_json

__all__ = ["read_threshold", "write_threshold"]


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
