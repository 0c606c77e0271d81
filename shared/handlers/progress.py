# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""A tqdm progress bar for long epochs, attachable from a bundle config's handler list."""

from __future__ import annotations

from collections.abc import Callable

from ignite.engine import Engine
from ignite.handlers import ProgressBar as _IgniteProgressBar

__all__ = ["ProgressBar"]


class ProgressBar(_IgniteProgressBar):
    """ignite's ProgressBar whose ``attach`` options are constructor arguments, because MONAI engines attach their
    handlers with ``handler.attach(engine)`` alone.

    Args:
        output_transform: maps the engine output to the values shown beside the bar, e.g.
            ``lambda out: {"loss": out[0]["loss"]}`` for a SupervisedTrainer's batch of dicts.
        metric_names: engine metrics to show (``"all"`` for every one).
        kwargs: :py:class:`ignite.handlers.ProgressBar` arguments (``persist``, ``bar_format``, tqdm options).
    """

    def __init__(self, output_transform: Callable | None = None, metric_names: str | list | None = None, **kwargs):
        super().__init__(**kwargs)
        self._output_transform = output_transform
        self._metric_names = metric_names

    def attach(self, engine: Engine, *args, **kwargs) -> None:  # type: ignore[override]
        kwargs.setdefault("output_transform", self._output_transform)
        kwargs.setdefault("metric_names", self._metric_names)
        super().attach(engine, *args, **kwargs)
