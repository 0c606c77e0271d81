# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Errors a user can act on, and how a bundle run reports them: one line, last, with a non-zero exit code.

A bundle raises :class:`InputError` (or :class:`MissingInputError`) for anything the user gave that cannot work: a
missing or unreadable file, a wrong shape, non-finite voxels, a bad config value, a checkpoint of another network.
The message names the file or config id, says what is wrong and what is expected.

MONAI's runner wraps every error raised while a component is built in ``RuntimeError: Failed to instantiate
component ...`` and prints the whole chain, which buries the message in the middle of a long traceback.
:func:`install_excepthook` (the first step of every config's ``initialize``) installs an exception hook that, for an
uncaught exception whose chain holds an :class:`InputError`, prints only that message (prefixed ``ERROR:``) as the
last line on stderr; Python then exits with status 1. Every other exception is left to the previous hook. Set
``BUNDLE_TRACEBACK=1`` (or MONAI's ``MONAI_DEBUG_CONFIG=1``) to get the full traceback too, still followed by the
message.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

__all__ = ["InputError", "MissingInputError", "find_input_error", "install_excepthook"]

TRACEBACK_ENV = "BUNDLE_TRACEBACK"


class InputError(ValueError):
    """Something the user gave (a file, a folder, a config value) that the bundle cannot use."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named (or the bundle expects) does not exist."""


def find_input_error(exc: BaseException | None) -> InputError | None:
    """The first :class:`InputError` in ``exc``'s chain of causes and contexts (``None`` when there is none)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _message(error: InputError) -> str:
    text = str(error).strip()
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: the worker's own message is the last line
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split())  # one line


def _hook(previous):
    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        error = find_input_error(value)
        if error is None:
            previous(kind, value, tb)
            return
        sys.stdout.flush()
        if os.environ.get(TRACEBACK_ENV) or os.environ.get("MONAI_DEBUG_CONFIG", "").lower() in ("1", "true"):
            traceback.print_exception(kind, value, tb)
        else:
            print(f"(set {TRACEBACK_ENV}=1 for the full traceback)", file=sys.stderr)
        print(f"ERROR: {_message(error)}", file=sys.stderr, flush=True)

    excepthook.is_bundle_hook = True
    return excepthook


def install_excepthook() -> None:
    """Install the hook once (idempotent); it hands every exception without an :class:`InputError` to the hook that
    was there before."""
    if not getattr(sys.excepthook, "is_bundle_hook", False):
        sys.excepthook = _hook(sys.excepthook)
