# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Checks a bundle runs in ``initialize``, before any data is read or any compute is spent.

- :func:`check_ids`: a bundle's user-facing config ids against a small declared table of types and ranges (each rule
  read as a JSON Schema and validated by ``jsonschema``), so that ``--learning_rate abc`` is one clear message, not a
  ``TypeError`` deep inside torch.
- :func:`check_output_folders`: every folder a run writes to exists (or is created) and can be written; temporary
  files left by an interrupted atomic write are removed.
- :func:`check_fresh_run`: a new training run never replaces a trained ``model.pt`` unless asked to.

A config declares its table as an id (``id_checks``) whose entries hold the value by reference::

    "id_checks": {
        "learning_rate": {"value": "@learning_rate", "type": "number", "gt": 0},
        "roi_size": {"value": "@roi_size", "type": "ints", "len": 3, "min": 32},
        "val_fraction": {"value": "@val_fraction", "type": "number", "min": 0, "lt": 1}
    }

Types: ``int``, ``number``, ``bool``, ``str``, ``path``, ``ints``, ``numbers`` (lists of those); constraints:
``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive), ``choices``, ``len`` (lists), ``nullable`` (``None`` allowed).
"""

from __future__ import annotations

import logging
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator, validators

from shared.atomic import remove_stale_partials
from shared.errors import InputError

__all__ = ["check_ids", "check_output_folders", "check_fresh_run"]

logger = logging.getLogger(__name__)

_BOUNDS = {"min": (">=", "minimum"), "max": ("<=", "maximum"), "gt": (">", "exclusiveMinimum")}
_BOUNDS["lt"] = ("<", "exclusiveMaximum")
_WORDS = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string", "path": "a path"}


def _is_int(_, v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(_, v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_list(_, v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes))


def _is_path(_, v: Any) -> bool:
    return isinstance(v, (str, os.PathLike)) and str(v) != ""


# JSON Schema's types, with Python's idea of them: 2.0 is no integer, a tuple is a list (the command line gives
# tuples), and a path may be any os.PathLike
_TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"integer": _is_int, "number": _is_number, "array": _is_list, "path": _is_path}
)
_Validator = validators.extend(Draft202012Validator, type_checker=_TYPE_CHECKER)
_SCHEMA_TYPES = {"int": "integer", "number": "number", "bool": "boolean", "str": "string", "path": "path"}


def _schema(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one ``id_checks`` rule."""
    kind = rule["type"]
    item_kind = kind[:-1] if kind in ("ints", "numbers") else kind
    if item_kind not in _SCHEMA_TYPES:
        raise ValueError(f"unknown check type {kind!r}; expected one of {sorted(_WORDS) + ['ints', 'numbers']}")
    item: dict[str, Any] = {"type": _SCHEMA_TYPES[item_kind]}
    item.update({keyword: rule[k] for k, (_, keyword) in _BOUNDS.items() if k in rule})
    if "choices" in rule:
        item["enum"] = list(rule["choices"])
    schema = item
    if item_kind != kind:
        schema = {"type": "array", "items": item}
        if "len" in rule:
            schema.update(minItems=rule["len"], maxItems=rule["len"])
    return {"anyOf": [{"type": "null"}, schema]} if rule.get("nullable") else schema


def _expected(rule: Mapping[str, Any]) -> str:
    kind = rule["type"]
    if kind in ("ints", "numbers"):
        item = _WORDS[kind[:-1]].replace("an ", "").replace("a ", "")
        text = f"a list of {rule['len']} {item}s" if "len" in rule else f"a list of {item}s"
    else:
        text = _WORDS[kind]
    limits = [f"{op} {rule[k]}" for k, (op, _) in _BOUNDS.items() if k in rule]
    if limits:
        text += (" each " if kind in ("ints", "numbers") else " ") + " and ".join(limits)
    if "choices" in rule:
        text += f" (one of {', '.join(repr(c) for c in rule['choices'])})"
    if rule.get("nullable"):
        text += ", or null"
    return text


def check_ids(table: Mapping[str, Mapping[str, Any]]) -> None:
    """Check every ``{id: {"value": ..., "type": ..., <constraints>}}`` entry; raise one :class:`InputError` naming
    the first id whose value does not fit, its value, and what is expected."""
    for name, rule in table.items():
        value = rule.get("value")
        if not _Validator(_schema(rule)).is_valid(value):
            # the command line reads Python literals: true/false stay strings
            how = "True or False" if rule["type"] == "bool" else "<value>"
            raise InputError(
                f"config id '{name}' is {value!r} ({type(value).__name__}): expected {_expected(rule)}. "
                f"Set it with --{name} {how}."
            )


def check_output_folders(folders: Sequence[str | os.PathLike | None]) -> None:
    """Create every folder a run writes to, check it can be written, and remove stale ``.partial`` files there
    (``None`` entries are skipped)."""
    for folder in folders:
        if folder is None:
            continue
        folder = os.path.abspath(folder)
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as e:
            raise InputError(
                f"output folder {folder} cannot be written ({e.strerror or type(e).__name__}): choose another folder "
                "(--ckpt_dir / --output_dir) or fix its permissions."
            ) from e
        removed = remove_stale_partials(folder)
        if removed:
            logger.info(f"removed {len(removed)} temporary file(s) an interrupted run left in {folder}: {removed}")


def check_fresh_run(
    ckpt_dir: str | os.PathLike,
    resume: bool = True,
    overwrite: bool = False,
    model_file: str = "model.pt",
    resume_file: str = "checkpoint_last.pt",
) -> None:
    """Refuse a training run that would start from scratch into a ``ckpt_dir`` that already holds a trained model.

    A run resumes when ``resume`` is on and ``resume_file`` exists: it then keeps the best score it restores, and
    ``model_file`` is replaced only by a better model. Anything else is a fresh run, whose first validation would
    replace ``model_file`` with a worse one; it stops here unless ``overwrite`` is set.
    """
    model = os.path.join(os.path.abspath(ckpt_dir), model_file)
    resuming = resume and os.path.isfile(os.path.join(os.path.abspath(ckpt_dir), resume_file))
    if os.path.isfile(model) and not resuming and not overwrite:
        raise InputError(
            f"{model} already holds a trained model and this run would start from scratch and replace it: "
            f"resume instead (keep --resume True and {resume_file} beside it), choose another --ckpt_dir, or pass "
            "--overwrite True to replace it."
        )
