# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""spine_seg refuses bad input before any compute, through the real ``python -m monai.bundle`` command line.

Every case: a non-zero exit code; a last line that names the file or config id and what is wrong; no training
iteration (or no evaluated / inferred case); and a ``model.pt`` that was there before is byte-identical after.
Data cases pass ``--overwrite True`` so that the data check, not the fresh-run guard, is what stops the run.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from shared.networks.adaptive_swin_unetr import AdaptiveSwinUNETR
from shared.spine.phantom import write_spine_phantom_dataset
from tests.conftest import REPO
from tests.crafted import claiming_nifti, spine_checkpoint
from tests.runner import run_bundle

CONFIGS = REPO / "bundles" / "spine_seg" / "configs"
TINY = json.loads((Path(__file__).parent / "tiny" / "spine_seg.json").read_text())
CASE = "spine_001.nii.gz"  # the pair each data case breaks


@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spine_good")
    write_spine_phantom_dataset(root, num_cases=3, shape=(40, 40, 56), spacing=(3.0, 3.0, 3.0))
    return root


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> bytes:
    """A real checkpoint of the tiny network (what a trained model.pt holds)."""
    net = AdaptiveSwinUNETR(in_channels=1, out_channels=25, feature_size=12, depths=(1, 1, 1, 1))
    path = tmp_path_factory.mktemp("weights") / "model.pt"
    torch.save(net.state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def work(tmp_path, good_data, tiny_weights) -> Path:
    """A copy of the good data in ``data/``, and ``models/model.pt`` holding trained weights."""
    shutil.copytree(good_data, tmp_path / "data")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(tiny_weights)
    return tmp_path


def _cli(overrides: dict) -> list[str]:
    """Command-line arguments as a user types them: the runner reads Python literals (``True``, not ``true``)."""
    args = []
    for key, value in overrides.items():
        args += [
            f"--{key}",
            value if isinstance(value, str) else repr(value) if isinstance(value, bool) else json.dumps(value),
        ]
    return args


def _nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    ref = nib.load(path) if path.is_file() else None
    affine = affine if affine is not None else (ref.affine if ref is not None else np.eye(4))
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _voxels(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def _break(work: Path, key: str, how) -> Path:
    """Apply ``how(path)`` to the image or label of the broken pair; return its path."""
    path = work / "data" / f"{key}s" / CASE
    how(path)
    return path


def _with_nan(p: Path) -> None:
    a = _voxels(p).astype(np.float32)
    a[3, 4, 5] = np.nan
    _nifti(p, a)


def _with(value):
    return lambda p: _nifti(p, np.full(_voxels(p).shape, value, dtype=np.asarray(value).dtype))


def _with_air(p: Path) -> None:
    """The phantom with a corner of air outside the body (-1000 HU), as a CT's field of view has."""
    a = _voxels(p).copy()
    a[:4, :4, :4] = -1000
    _nifti(p, a)


def _as_mri(p: Path) -> None:
    """The same anatomy stored as an 8-bit MRI is: nothing below 0."""
    a = _voxels(p).astype(np.float32)
    _nifti(p, np.round(255 * (a - a.min()) / (a.max() - a.min())).astype(np.uint8))


DATA_CASES = {
    "zero-byte image": ("image", lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "image that is not NIfTI": ("image", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100)), "not gzip"),
    "truncated image": ("image", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    "2D image": ("image", lambda p: _nifti(p, _voxels(p)[:, :, 0]), "expected a 3D volume"),
    "3-channel image": ("image", lambda p: _nifti(p, np.stack([_voxels(p)] * 3, -1)), "has 3 channels"),
    "NaN voxels": ("image", _with_nan, "1 non-finite voxel(s) (1 NaN, 0 Inf), the first at index (3, 4, 5)"),
    "constant image": ("image", _with(np.int16(-1000)), "is constant"),
    "MRI given to the CT window": ("image", _as_mri, "holds no value below 0"),
    "image claiming 16 GiB": ("image", claiming_nifti, "claims 2048 x 2048 x 1024 float32 voxels, 16.0 GiB"),
    "label on another grid": ("label", lambda p: _nifti(p, _voxels(p)[:, :, :-2]), "Shape mismatch"),
    "label with another affine": (
        "label",
        lambda p: _nifti(p, _voxels(p), affine=np.diag([2.0, 2.0, 2.0, 1.0])),
        "Affine mismatch",
    ),
    "label value outside the classes": ("label", _with(np.uint8(99)), "values [99] outside the configured classes"),
    "non-integer labels": ("label", _with(np.float32(1.5)), "holds non-integer values"),
    "missing label": ("label", lambda p: p.unlink(), "no label for 1 image(s)"),
}


def _train(work: Path, **overrides):
    args = {
        **TINY["train"],
        "dataset_dir": str(work / "data"),
        "ckpt_dir": str(work / "models"),
        "output_dir": str(work / "eval"),
        **overrides,
    }
    return run_bundle(["run", "training", "--config_file", str(CONFIGS / "train.json"), *_cli(args)], cwd=REPO)


def _refused(run, work: Path, model: bytes, *words: str) -> None:
    assert run.returncode != 0, run.output[-2000:]
    assert run.last_line.startswith("ERROR: "), run.output[-2000:]
    for word in words:
        assert word in run.last_line, run.last_line
    assert "Iter:" not in run.output  # no training iteration ran
    assert (work / "models" / "model.pt").read_bytes() == model


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_training_refuses_bad_data(work, tiny_weights, case):
    key, how, problem = DATA_CASES[case]
    path = _break(work, key, how)
    shown = str(path) if case != "missing label" else str(path.parent)
    _refused(_train(work, overwrite=True), work, tiny_weights, shown, problem)


def _datalist(work: Path, text: str) -> Path:
    path = work / "datalist.json"
    path.write_text(text)
    return path


BAD_SETTINGS = {
    "datalist with a syntax error": (
        lambda w: {"datalist_file": str(_datalist(w, '{\n  "training": [\n    {"image": "images/a.nii.gz",}\n  ]\n}'))},
        ["datalist.json is not valid JSON", "line 3, column"],
    ),
    "datalist entry without a label": (
        lambda w: {"datalist_file": str(_datalist(w, '{"training": [{"image": "images/spine_000.nii.gz"}]}'))},
        ["datalist.json", "entry 0 of 'training' has no 'label' path"],
    ),
    "datalist with empty splits": (
        lambda w: {"datalist_file": str(_datalist(w, '{"training": [], "validation": []}'))},
        ["No image/label pairs found in", "datalist.json"],
    ),
    "empty dataset folder": (
        lambda w: {"dataset_dir": str((w / "empty").mkdir() or w / "empty")},
        ["No image/label pairs found in", "empty"],
    ),
    "learning rate of the wrong type": (lambda w: {"learning_rate": "fast"}, ["config id 'learning_rate'", "'fast'"]),
    "fraction out of range": (lambda w: {"val_fraction": 1.5}, ["config id 'val_fraction' is 1.5", "< 1"]),
    "label mapping that is not pairs": (
        lambda w: {"label_mapping": [[25, 24, 1]]},
        ["config id 'label_mapping' entry 0 is [25, 24, 1]"],
    ),
    "label names that do not fit the classes": (
        lambda w: {"label_names": ["a", "b"]},
        ["config id 'label_names' has 2 name(s) for 24 foreground classes"],
    ),
    "unknown dataset format": (lambda w: {"dataset_format": "nnunet"}, ["config id 'dataset_format'", "'verse'"]),
    "output folder that cannot be written": (
        lambda w: {"ckpt_dir": str((w / "a_file").write_text("x") and w / "a_file" / "models")},
        ["a_file/models cannot be written"],
    ),
    "CT given as MRI": (
        lambda w: _break(w, "image", _with_air) and {"modality": "mri"},
        [f"data/images/{CASE}", "holds values down to -1000", "as a CT in Hounsfield units does", "--modality ct"],
    ),
    "unknown modality": (lambda w: {"modality": "MR"}, ["config id 'modality' is 'MR'"]),
    "dataset_dir that is a file": (
        lambda w: {"dataset_dir": str(w / "data" / "images" / CASE)},
        ["dataset_dir", f"{CASE} is a file, not a folder", "<dataset_dir>/images/"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_training_refuses_bad_settings(work, tiny_weights, case):
    make, words = BAD_SETTINGS[case]
    _refused(_train(work, overwrite=True, **make(work)), work, tiny_weights, *words)


class _Pickled:  # what a whole-object torch.save holds
    pass


BAD_CHECKPOINTS = {
    "truncated": (lambda w: w[: len(w) // 2], "is truncated or not a PyTorch checkpoint"),
    "of another network": (
        lambda w: _saved(
            {**dict.fromkeys(("optimizer", "lr_scheduler", "best_model", "trainer"), {}), "model": _linear()}
        ),
        "was not made for this network",
    ),
    "not a plain state dict": (lambda w: _saved({"model": _Pickled()}), "is not a plain state dict"),
    "of another bundle": (
        lambda w: _saved({**spine_checkpoint(), "model": _aicnet3d(), "made_for": {"network": "AICNet3D (glaucoma)"}}),
        "was made for AICNet3D (glaucoma), not for this bundle's AdaptiveSwinUNETR",
    ),
}


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _linear() -> dict:
    return torch.nn.Linear(2, 2).state_dict()


def _aicnet3d() -> dict:
    from shared.networks.ai_cnet3d import AICNet3D

    return AICNet3D().state_dict()


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_resuming_from_a_bad_checkpoint_stops_before_training(work, tiny_weights, case):
    make, problem = BAD_CHECKPOINTS[case]
    last = work / "models" / "checkpoint_last.pt"
    last.write_bytes(make(tiny_weights))
    _refused(_train(work), work, tiny_weights, str(last), problem)


def test_a_fresh_run_never_replaces_a_trained_model(work, tiny_weights):
    _refused(_train(work), work, tiny_weights, str(work / "models" / "model.pt"), "--overwrite True")


def _evaluate(work: Path, **overrides):
    args = {
        **TINY["train"],
        "dataset_dir": str(work / "data"),
        "ckpt_dir": str(work / "models"),
        "output_dir": str(work / "eval"),
        **overrides,
    }
    configs = json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])
    return run_bundle(["run", "evaluating", "--config_file", configs, *_cli(args)], cwd=REPO)


EVAL_CASES = {
    "no test split": (lambda w: {"test_fraction": 0.0}, ["no test cases", "--eval_split validation"]),
    "unknown split": (lambda w: {"eval_split": "testing"}, ["config id 'eval_split' is 'testing'"]),
    "truncated model": (
        lambda w: (w / "models" / "model.pt").write_bytes(b"PK\x03\x04") and {},
        [str(Path("models") / "model.pt"), "truncated"],
    ),
    "bad image": (lambda w: _break(w, "image", lambda p: p.write_bytes(b"")) and {}, [CASE, "is empty (0 bytes)"]),
}


@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_evaluation_refuses_bad_input(work, case):
    make, words = EVAL_CASES[case]
    overrides = make(work)
    before = (work / "models" / "model.pt").read_bytes()
    run = _evaluate(work, **overrides)
    _refused(run, work, before, *words)
    assert not (work / "eval" / "metrics.json").exists()


def _infer(work: Path, inputs: Path, **overrides):
    args = {
        **TINY["infer"],
        "dataset_dir": str(inputs),
        "ckpt_dir": str(work / "models"),
        "output_dir": str(work / "pred"),
        **overrides,
    }
    return run_bundle(["run", "--config_file", str(CONFIGS / "inference.json"), *_cli(args)], cwd=REPO)


INFER_CASES = {
    case: DATA_CASES[case]
    for case in ("zero-byte image", "image that is not NIfTI", "truncated image", "2D image", "NaN voxels")
}
INFER_CASES["constant image"] = DATA_CASES["constant image"]
INFER_CASES["MRI given to the CT window"] = DATA_CASES["MRI given to the CT window"]
INFER_CASES["image claiming 16 GiB"] = DATA_CASES["image claiming 16 GiB"]


@pytest.mark.parametrize("case", list(INFER_CASES))
def test_inference_refuses_bad_images_before_inferring_any(work, tiny_weights, case):
    _, how, problem = INFER_CASES[case]
    path = _break(work, "image", how)
    run = _infer(work, work / "data" / "images")
    _refused(run, work, tiny_weights, str(path), problem)
    assert not list((work / "pred").glob("*_seg.nii.gz"))  # not even the good inputs before it


INFER_SETTINGS = {
    "model of another network": (
        lambda w: (w / "models" / "model.pt").write_bytes(_saved(_linear())) and {},
        ["model.pt was not made for this network"],
    ),
    "model that is not a plain state dict": (
        lambda w: (w / "models" / "model.pt").write_bytes(_saved({"model": _Pickled()})) and {},
        ["model.pt is not a plain state dict"],
    ),
    "model of another bundle": (
        lambda w: (w / "models" / "model.pt").write_bytes(_saved(_aicnet3d())) and {},
        ["model.pt was made for AICNet3D (glaucoma_oct_classification), not for this bundle's AdaptiveSwinUNETR"],
    ),
    "missing input": (lambda w: {"dataset_dir": str(w / "nowhere")}, ["nowhere is neither an image file nor a folder"]),
    "output folder that cannot be written": (
        lambda w: {"output_dir": str((w / "a_file").write_text("x") and w / "a_file" / "pred")},
        ["a_file/pred cannot be written"],
    ),
    "overlap out of range": (lambda w: {"overlap": 1.0}, ["config id 'overlap' is 1.0"]),
    "CT given as MRI": (
        lambda w: _break(w, "image", _with_air) and {"modality": "mri"},
        [CASE, "as a CT in Hounsfield units does", "--modality ct"],
    ),
}


@pytest.mark.parametrize("case", list(INFER_SETTINGS))
def test_inference_refuses_bad_settings_and_checkpoints(work, case):
    make, words = INFER_SETTINGS[case]
    overrides = make(work)
    before = (work / "models" / "model.pt").read_bytes()
    run = _infer(work, work / "data" / "images", **overrides)
    _refused(run, work, before, *words)
    assert not list(work.glob("pred/*_seg.nii.gz"))


def test_a_good_input_gets_through(work):
    """The cases above fail for the reason they name: the same inputs, unbroken, infer."""
    run = _infer(work, work / "data" / "images" / CASE)
    assert run.returncode == 0, run.output[-3000:]
    seg = work / "pred" / CASE.replace(".nii.gz", "_seg.nii.gz")
    assert seg.is_file() and gzip.open(seg).read(4)  # a complete, compressed label map
