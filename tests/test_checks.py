# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import os
from pathlib import Path

import pytest

from shared.checks import check_fresh_run, check_ids, check_output_folders
from shared.errors import InputError

TABLE = {
    "learning_rate": {"value": 2e-4, "type": "number", "gt": 0},
    "max_epochs": {"value": 5, "type": "int", "min": 1},
    "roi_size": {"value": [96, 96, 96], "type": "ints", "len": 3, "min": 64},
    "val_fraction": {"value": 0.2, "type": "number", "gt": 0, "lt": 1},
    "balance": {"value": "weighted", "type": "str", "choices": ["undersample", "weighted", "off"]},
    "datalist_file": {"value": None, "type": "path", "nullable": True},
    "resume": {"value": True, "type": "bool"},
}


def test_valid_values_pass():
    check_ids(TABLE)


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("learning_rate", "abc", "expected a number > 0"),
        ("learning_rate", 0, "expected a number > 0"),
        ("max_epochs", 1.5, "expected an integer >= 1"),
        ("max_epochs", True, "expected an integer >= 1"),
        ("roi_size", [96, 96], "expected a list of 3 integers each >= 64"),
        ("roi_size", [96, 96, 32], "expected a list of 3 integers each >= 64"),
        ("val_fraction", 1.0, "expected a number > 0 and < 1"),
        ("balance", "oversample", "one of 'undersample', 'weighted', 'off'"),
        ("resume", "yes", "expected true or false"),
    ],
)
def test_a_bad_value_names_the_id_the_value_and_what_is_expected(name, value, expected):
    table = {**TABLE, name: {**TABLE[name], "value": value}}
    with pytest.raises(InputError) as e:
        check_ids(table)
    assert f"config id '{name}' is {value!r}" in str(e.value) and expected in str(e.value)
    assert f"--{name} {'True or False' if name == 'resume' else '<value>'}" in str(e.value)


def test_output_folders_are_created_and_stale_partials_removed(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / ".model.pt.abc123.partial").write_bytes(b"half")
    (tmp_path / "models" / "model.pt").write_bytes(b"kept")
    check_output_folders([tmp_path / "models", tmp_path / "eval", None])
    assert sorted(os.listdir(tmp_path / "models")) == ["model.pt"] and (tmp_path / "eval").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_output_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InputError, match=r"ro cannot be written.*--ckpt_dir"):
            check_output_folders([ro])
    finally:
        ro.chmod(0o700)


def test_a_file_in_place_of_the_output_folder_is_refused(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(InputError, match="cannot be written"):
        check_output_folders([tmp_path / "models"])


def test_fresh_run_never_replaces_a_trained_model(tmp_path):
    check_fresh_run(tmp_path)  # nothing there yet
    (tmp_path / "model.pt").write_bytes(b"trained")
    with pytest.raises(InputError, match=r"already holds a trained model.*--overwrite True"):
        check_fresh_run(tmp_path)
    check_fresh_run(tmp_path, overwrite=True)
    (tmp_path / "checkpoint_last.pt").write_bytes(b"resumable")
    check_fresh_run(tmp_path)  # resumes: the restored best score protects model.pt
    with pytest.raises(InputError, match="already holds a trained model"):
        check_fresh_run(tmp_path, resume=False)


def test_an_unwritable_location_is_refused_before_anything_runs():
    with pytest.raises(InputError, match="/proc/self/models cannot be written"):
        check_output_folders(["/proc/self/models"])


NULL = {"nullable": True}


def test_rules_read_as_python_values():
    """Command-line values are Python's: a tuple is a list, a Path a path; null only where a rule allows it."""
    check_ids({"roi_size": {"value": (96, 96, 64), "type": "ints", "len": 3, "min": 64}})
    check_ids({"dataset_dir": {"value": Path("/data"), "type": "path"}, "seed": {"value": None, "type": "int", **NULL}})
    with pytest.raises(InputError, match="config id 'seed' is None .*expected an integer"):
        check_ids({"seed": {"value": None, "type": "int"}})
    with pytest.raises(ValueError, match="unknown check type 'float'"):
        check_ids({"seed": {"value": 1.0, "type": "float"}})
