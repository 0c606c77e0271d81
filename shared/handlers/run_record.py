# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""What a training run keeps beside ``model.pt``, written whenever ``model.pt`` is."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events

from shared.atomic import write_json
from shared.errors import InputError
from shared.inputs import read_json

__all__ = ["RecordWriter"]

logger = logging.getLogger(__name__)


class RecordWriter:
    """
    Attach to the validation evaluator after the best-model saver: whenever its key metric improves (the saver has
    just written ``model.pt``), write ``record`` to ``path`` as JSON, atomically and only when the file's content
    differs. ``model.pt`` then always sits beside the record of the run that made it: the splits it was trained and
    selected on, the settings it needs, the fitted preprocessing. A new run leaves the previous pair as it was until
    its first better model.

    Args:
        record: a mapping, or an object with ``state_dict()`` (its content at the time of writing).
        path: the JSON file, beside ``model.pt``.
    """

    def __init__(self, record: Mapping[str, Any] | Any, path: str) -> None:
        self.record = record
        self.path = os.fspath(path)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def content(self) -> dict[str, Any]:
        return dict(self.record.state_dict() if hasattr(self.record, "state_dict") else self.record)

    def __call__(self, engine: Engine) -> None:
        if getattr(engine.state, "best_metric_epoch", -1) != engine.state.epoch:
            return
        content = self.content()
        if os.path.isfile(self.path):
            try:
                if read_json(self.path, what="run record") == content:
                    return
            except InputError:
                pass  # unreadable: rewrite it
        write_json(self.path, content)
        logger.info(f"{os.path.basename(self.path)} written beside the best model: {self.path}")
