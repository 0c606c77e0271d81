# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Which subjects a training run fitted and selected its model on, kept with the model, so that an evaluation can
refuse to score them and a resumed run cannot silently continue on other splits."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import InputError

__all__ = ["SplitRecord"]


class SplitRecord:
    """
    The subject ids of each split of a training run, with the settings that drew them.

    - Checkpointable: put it in the training checkpoint's ``save_dict`` and in the resume loader's ``load_dict``
      (first, so nothing is restored before the check): ``load_state_dict`` refuses to resume a run whose splits
      differ from this run's (another ``fold``, ``seed`` or datalist), which would mix the held-out subjects of one
      split into the training of another.
    - Its content goes to ``path`` (``model_split.json`` beside ``model.pt``) with every better model
      (:class:`shared.handlers.run_record.RecordWriter`); :func:`shared.brain.datalist.evaluation_items` reads it.

    Args:
        split: ``{"training": [...], "validation": [...], "test": [...]}`` items with ``subject_id``.
        path: the JSON file it is written to.
        fold, num_folds, seed, datalist: recorded as they were set (they name the settings to use again).
    """

    def __init__(
        self,
        split: Mapping[str, Sequence[Mapping[str, Any]]],
        path: str,
        fold: int | None = None,
        num_folds: int | None = None,
        seed: int | None = None,
        datalist: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        fixed = any("split" in i for items in split.values() for i in items)
        self.record: dict[str, Any] = {
            "datalist": os.path.abspath(datalist) if datalist else None,
            "splits": "fixed by the datalist" if fixed else "cross-validation",
            **({} if fixed else {"fold": fold, "num_folds": num_folds, "seed": seed}),
            "subjects": {k: sorted({str(i.get("subject_id", i.get("image"))) for i in v}) for k, v in split.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        return dict(self.record)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("subjects") == self.record["subjects"]:
            return
        was = ", ".join(f"{k} {state.get(k)!r}" for k in ("fold", "num_folds", "seed", "datalist") if k in state)
        raise InputError(
            f"checkpoint_last.pt in {os.path.dirname(os.path.abspath(self.path))} was trained on other splits "
            f"({was}): resuming with these would train on subjects that run held out. Resume with its settings, "
            "or start a new run in another --ckpt_dir."
        )
