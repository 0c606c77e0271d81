# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The record a training run keeps beside its model: which volumes trained and selected it, and the settings that
must match wherever the model is used.

``training_record.json`` is written with ``model.pt`` (:class:`shared.handlers.run_record.RecordWriter`)::

    {"format": "oct-training-record/1",
     "settings": {"input_size": [128, 192, 112], "axis_order": [0, 1, 2], "class_names": [...], "seed": 0, ...},
     "training": {"<sha256 of the file>": "/data/oct/glaucoma/P0003_OD.npy", ...},
     "validation": {...},
     "test": ["/data/oct/glaucoma/P0007_OD.npy", ...]}

Volumes are identified by the SHA-256 of their file, so a copied or moved dataset is still recognised, and another
dataset never matches by accident of its file names. Checks, each one :class:`~shared.errors.InputError`
naming the record and what differs:

- :func:`check_resume` / :func:`check_same_training`: resuming a run, or fine-tuning stage 1's model, trains and
  selects on the volumes and with the settings that model started with (a changed seed would move test patients
  into training);
- :func:`check_model_use`: evaluation and inference use the settings the model was trained with, and evaluation
  scores no volume that trained the model, nor one that selected it when the test split is scored.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import InputError
from shared.inputs import file_digest, read_json

__all__ = [
    "RECORD_FILE",
    "MATCHED_SETTINGS",
    "training_record",
    "read_record",
    "check_same_training",
    "check_resume",
    "check_model_use",
]

logger = logging.getLogger(__name__)

RECORD_FILE = "training_record.json"
FORMAT = "oct-training-record/1"
MATCHED_SETTINGS = ("input_size", "axis_order", "class_names")  # a model only works with the ones it learnt with
_SELECTION = ("training", "validation")  # the splits that make a model: what it was trained and selected on


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def training_record(datalists: Mapping[str, Sequence[dict]], settings: Mapping) -> dict:
    """The record of one training run (see the module docstring); ``settings`` must hold :data:`MATCHED_SETTINGS`."""
    missing = [k for k in MATCHED_SETTINGS if k not in dict(settings)]
    if missing:
        raise ValueError(f"training_record needs the settings {missing}")
    record: dict[str, Any] = {"format": FORMAT, "settings": _plain(dict(settings))}
    for split in _SELECTION:
        record[split] = {file_digest(i["image"]): os.path.abspath(i["image"]) for i in datalists[split]}
    record["test"] = [os.path.abspath(i["image"]) for i in datalists["test"]]
    return record


def read_record(path: str) -> dict | None:
    """The record at ``path`` (``None`` when there is none); a malformed one is an error naming it."""
    if not os.path.isfile(path):
        return None
    record = read_json(path, what="training record")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"The training record {path} is not a {FORMAT} file: training writes it beside model.pt.")
    return record


def _settings_difference(old: dict, settings: Mapping) -> list[tuple[str, Any, Any]]:
    theirs = old.get("settings", {})
    ours = {k: _plain(settings[k]) for k in MATCHED_SETTINGS if k in settings}
    return [(k, v, theirs[k]) for k, v in ours.items() if k in theirs and v != theirs[k]]


def _settings_message(diffs: list[tuple[str, Any, Any]], trained: str, path: str) -> str:
    name, ours, theirs = diffs[0]
    others = f" (and {', '.join(d[0] for d in diffs[1:])} differ too)" if len(diffs) > 1 else ""
    return (
        f"config id '{name}' is {ours}{others}, but {trained} {theirs} ({path}): pass --{name} "
        f'"{json.dumps(theirs)}".'
    )


def check_same_training(path: str, record: dict, what: str) -> None:
    """``record`` (this run's) has the training and validation volumes and the settings of the record at ``path``
    (of the run whose model this run continues); nothing to check when there is none. ``what`` names that
    continuation, for the message."""
    old = read_record(path)
    if old is None:
        return
    diffs = _settings_difference(old, record["settings"])
    if diffs:
        raise InputError(f"{what}: " + _settings_message(diffs, "it was trained with", path))
    changes = []
    for split in _SELECTION:
        a, b = set(old.get(split, {})), set(record[split])
        if a != b:
            changes.append(f"{split}: {len(b - a)} volume(s) added, {len(a - b)} removed")
    if changes:
        raise InputError(
            f"{what}, but this run's splits differ from those it was trained on ({path}; {'; '.join(changes)}): use "
            "the data, seed, val_fraction and test_fraction it was trained with, or start a new run in another "
            "--ckpt_dir."
        )


def check_resume(ckpt_dir: str, record: dict, resume: bool = True, resume_file: str = "checkpoint_last.pt") -> None:
    """A run that resumes ``ckpt_dir/resume_file`` must train on the volumes and settings it started with, and select
    on the same metric (the best score it restores is of that metric)."""
    last = os.path.join(ckpt_dir, resume_file)
    if resume and os.path.isfile(last):
        path = os.path.join(ckpt_dir, RECORD_FILE)
        check_same_training(path, record, f"This run would resume {last}")
        old = read_json(path, what="training record").get("settings", {}).get("selection_metric")
        new = record["settings"].get("selection_metric")
        if old is not None and new is not None and old != new:
            raise InputError(
                f"This run would resume {last}, whose best model was selected on validation {old}, with "
                f"selection_metric {new!r}: resume with --selection_metric {old}, or start a new run in another "
                "--ckpt_dir."
            )


def check_model_use(
    model_path: str, settings: Mapping, items: Sequence[dict] | None = None, split: str = "test"
) -> None:
    """Before evaluating or inferring with ``model_path``: the settings match its record and (evaluation: the
    ``items`` of ``split``) no evaluated volume trained the model, nor selected it when ``split`` is the test split.

    Without a record beside the model (one trained elsewhere) this is logged, not an error.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), RECORD_FILE)
    record = read_record(path)
    if record is None:
        logger.warning(f"no {RECORD_FILE} beside {model_path}: its input settings and held-out data are not checked")
        return
    diffs = _settings_difference(record, settings)
    if diffs:
        raise InputError(_settings_message(diffs, f"the model {model_path} was trained with", path))
    if items is None:
        return
    used = dict(record.get("training", {}))
    if split == "test":
        used.update(record.get("validation", {}))
    seen = [(i["image"], used[d]) for i in items if (d := file_digest(i["image"])) in used]
    if seen:
        role = "trained or selected" if split == "test" else "trained"
        image, was = seen[0]
        same = "" if os.path.abspath(image) == was else f", the same file as {was}"
        raise InputError(
            f"{len(seen)} of the {len(items)} {split} volumes {role} the model {model_path} ({path}), e.g. "
            f"{image}{same}: evaluate with the data, seed, val_fraction and test_fraction it was trained with, so "
            f"that the {split} split stays held out."
        )
