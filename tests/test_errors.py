# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import subprocess

import pytest

from shared.errors import InputError, MissingInputError, find_input_error
from tests.conftest import PYTHON, REPO, run_env

RAISE_WRAPPED = """
from shared.errors import InputError, install_excepthook
install_excepthook()
try:
    raise InputError("Label /data/x.nii.gz holds values [30]\\noutside the configured classes.")
except InputError as e:
    raise RuntimeError("Failed to instantiate component 'datalist'") from e
"""


def _run(code, **env):
    return subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, env={**run_env(), **env}, capture_output=True, text=True, timeout=120
    )


def test_input_error_is_the_last_line_and_the_exit_code_is_not_zero():
    done = _run(RAISE_WRAPPED)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "ERROR: Label /data/x.nii.gz holds values [30] outside the configured classes."
    assert "Traceback" not in done.stderr and "Failed to instantiate" not in done.stderr


def test_full_traceback_on_request_still_ends_with_the_message():
    done = _run(RAISE_WRAPPED, BUNDLE_TRACEBACK="1")
    assert done.returncode == 1 and "Traceback" in done.stderr and "Failed to instantiate" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("ERROR: Label /data/x.nii.gz")


def test_importing_installs_nothing():
    """The hook is a step of each config's ``initialize``, not a side effect of an import."""
    done = _run(RAISE_WRAPPED.replace("install_excepthook()", ""))
    assert done.returncode == 1 and "Traceback" in done.stderr and not done.stderr.strip().startswith("ERROR")
    assert not done.stderr.strip().splitlines()[-1].startswith("ERROR:")


def test_other_errors_keep_their_traceback():
    done = _run("import shared.errors\nshared.errors.install_excepthook()\nraise KeyError('plain')")
    assert done.returncode == 1 and "Traceback" in done.stderr and "KeyError: 'plain'" in done.stderr


def test_find_input_error_walks_causes_and_contexts():
    inner = MissingInputError("gone")
    try:
        try:
            raise inner
        except MissingInputError:
            raise RuntimeError("wrapped")  # context, not cause
    except RuntimeError as outer:
        assert find_input_error(outer) is inner
    assert find_input_error(ValueError("no")) is None
    assert isinstance(inner, FileNotFoundError) and isinstance(inner, ValueError)
    with pytest.raises(ValueError):
        raise InputError("still a ValueError for callers that catch those")
