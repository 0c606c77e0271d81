# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
import shutil

import pytest

from shared.errors import InputError
from shared.oct.datalist import oct_datalists
from shared.oct.phantom import write_oct_phantom_dataset
from shared.oct.record import check_model_use, check_resume, check_same_training, training_record

SETTINGS = {"input_size": [8, 8, 8], "axis_order": [0, 1, 2], "class_names": ["non_glaucoma", "glaucoma"], "seed": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("oct_record") / "oct"
    write_oct_phantom_dataset(str(root), num_patients=8, shape=(8, 8, 8), seed=0)
    return root


def _lists(root, seed=0):
    return oct_datalists(str(root), val_fraction=0.25, test_fraction=0.25, seed=seed, check_splits=())


def _write(record, folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training_record.json").write_text(json.dumps(record))
    (folder / "checkpoint_last.pt").write_bytes(b"x")
    return folder


def test_resuming_or_fine_tuning_needs_the_same_volumes_and_settings(data, tmp_path):
    record = training_record(_lists(data), SETTINGS)
    models = _write(record, tmp_path / "models")
    check_resume(str(models), training_record(_lists(data), SETTINGS))  # same run: fine
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)  # the dataset moved: its volumes are the same files
    check_resume(str(models), training_record(_lists(moved), SETTINGS))
    with pytest.raises(
        InputError, match="would resume .*checkpoint_last.pt, but this run's splits differ .*training: "
    ):
        check_resume(str(models), training_record(_lists(data, seed=5), SETTINGS))
    check_resume(str(models), training_record(_lists(data, seed=5), SETTINGS), resume=False)
    other = dict(SETTINGS, input_size=[16, 16, 16])
    with pytest.raises(
        InputError, match="Stage 2: config id 'input_size' is \\[16, 16, 16\\], but it was trained with"
    ):
        check_same_training(str(models / "training_record.json"), training_record(_lists(data), other), "Stage 2")


def test_evaluation_never_scores_what_trained_or_selected_the_model(data, tmp_path):
    lists = _lists(data)
    models = _write(training_record(lists, SETTINGS), tmp_path / "models")
    model = str(models / "model.pt")
    check_model_use(model, SETTINGS, lists["test"], "test")
    check_model_use(model, SETTINGS, lists["validation"], "validation")  # knowingly: it selected, not trained
    with pytest.raises(InputError, match="2 of the 2 validation volumes trained the model"):
        check_model_use(model, SETTINGS, lists["training"][:2], "validation")
    with pytest.raises(InputError, match="of the 4 test volumes trained or selected the model"):
        check_model_use(model, SETTINGS, _lists(data, seed=5)["test"], "test")
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    with pytest.raises(InputError, match="e.g. .*copy/.*, the same file as .*oct/"):
        check_model_use(model, SETTINGS, _lists(copy)["validation"], "test")
    other = tmp_path / "other"  # another dataset with the same file names is not mistaken for the training data
    write_oct_phantom_dataset(str(other), num_patients=8, shape=(8, 8, 8), seed=1)
    check_model_use(model, SETTINGS, _lists(other)["training"], "test")
    with pytest.raises(
        InputError, match="config id 'axis_order' is \\[2, 1, 0\\], but the model .*model.pt was trained"
    ):
        check_model_use(model, dict(SETTINGS, axis_order=[2, 1, 0]))
    check_model_use(str(tmp_path / "elsewhere" / "model.pt"), SETTINGS)  # no record: logged, not an error
    assert len(lists["test"]) == 4
