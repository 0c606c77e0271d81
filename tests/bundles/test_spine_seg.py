"""spine_seg through MONAI's ConfigWorkflow: train (with resume), evaluate on the test split, infer (on NIfTI, a
DICOM series and a real CT, each with its PNG overlay), multi-GPU."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from matplotlib.image import imread
from monai.bundle import ConfigWorkflow
from monai.transforms import LoadImage

from shared.data.segmentation import segmentation_datalist
from shared.data.spine_phantom import spine_phantom, write_spine_phantom_dataset
from tests.conftest import PYTHON, REPO, SAMPLE_DATA, error_chain, run_env
from tests.data.ct_series import write_ct_series

BUNDLE = REPO / "bundles" / "spine_seg"
CONFIGS = BUNDLE / "configs"
TINY = json.loads((Path(__file__).parent / "tiny" / "spine_seg.json").read_text())


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spine_data")
    write_spine_phantom_dataset(root, num_cases=3, shape=(40, 40, 56), spacing=(3.0, 3.0, 3.0))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, phantoms) -> Path:
    """A bundle root holding a checkpoint from one tiny epoch, then resumed for a second one."""
    root = tmp_path_factory.mktemp("spine_run")
    overrides = {**TINY["train"], "bundle_root": str(root), "dataset_dir": str(phantoms)}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **overrides)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return root


def test_training_writes_checkpoints_and_logs(trained):
    assert (trained / "models" / "model.pt").is_file()
    last = torch.load(trained / "models" / "checkpoint_last.pt", weights_only=True)
    assert set(last) == {"model", "optimizer", "lr_scheduler", "trainer", "best_model"}
    assert len(last["best_model"]["_saved"]) == 1  # the best score: the bar a resumed run must beat
    assert any(p.name.startswith("events.out.tfevents") for p in (trained / "eval").iterdir())


def test_training_resumes_from_last_checkpoint(trained, phantoms):
    overrides = {**TINY["train"], "bundle_root": str(trained), "dataset_dir": str(phantoms), "max_epochs": 2}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **overrides)
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    wf.run()
    assert epochs == [2]  # epoch 1 was finished before, it is not run again
    n_train = len(segmentation_datalist(phantoms, check=False)["training"])  # 1 of 3 phantoms (1 val, 1 test)
    assert (
        torch.load(trained / "models" / "checkpoint_last.pt", weights_only=True)["trainer"]["iteration"] == 2 * n_train
    )


def _evaluate(bundle_root: Path, phantoms: Path, **extra) -> Path:
    overrides = {**TINY["train"], "bundle_root": str(bundle_root), "dataset_dir": str(phantoms), **extra}
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")], workflow_type="eval", **overrides
    )
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return Path(overrides.get("output_dir", bundle_root / "eval"))


def test_evaluation_scores_the_test_split_and_draws_each_case(trained, phantoms, capsys):
    out = _evaluate(trained, phantoms)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("test mDice ") and "L5 " in printed[-1]
    assert printed.count(printed[-1]) == 2  # the saver's line, printed again by finalize as the run's last line
    summary = json.loads((out / "metrics.json").read_text())
    assert {"mean_dice", "mean_iou", "mean_acc", "dataset_dice", "dataset_iou"} <= set(summary)
    assert summary["split"] == "test" and len(summary["per_class"]) == 24 and (out / "per_class.csv").is_file()
    per_case = (out / "per_case.csv").read_text().splitlines()
    assert len(per_case[0].split(",")) == 1 + 24 + 1  # case, one Dice per vertebra class, mean
    splits = segmentation_datalist(phantoms, check=False)  # the bundle's defaults: 1 / 1 / 1 of 3 phantoms
    test_case = splits["test"][0]
    assert len(per_case) == 2 and per_case[1].startswith(test_case["image"])
    assert splits["validation"][0]["image"] not in "".join(per_case)  # model selection data is not scored
    png = imread(out / f"{test_case['case']}_eval.png")
    assert png.shape[:2] == (3 * 256, 3 * 256) and png[..., :3].std() > 0.05


def test_evaluation_without_a_test_split_stops_and_says_how(trained, phantoms, tmp_path):
    with pytest.raises(Exception) as err:
        _evaluate(trained, phantoms, test_fraction=0.0, output_dir=str(tmp_path / "a"))
    assert "no test cases" in error_chain(err.value) and "--eval_split validation" in error_chain(err.value)
    out = _evaluate(trained, phantoms, test_fraction=0.0, eval_split="validation", output_dir=str(tmp_path / "b"))
    assert json.loads((out / "metrics.json").read_text())["split"] == "validation"


def test_evaluation_reads_the_model_from_ckpt_dir_and_writes_into_output_dir(trained, phantoms, tmp_path):
    """A model kept outside the bundle is evaluated where --ckpt_dir says; the default place, empty, is refused."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(trained / "models" / "model.pt", elsewhere / "model.pt")
    root = tmp_path / "fresh_bundle_root"  # holds no model
    out = _evaluate(root, phantoms, ckpt_dir=str(elsewhere), output_dir=str(tmp_path / "scores"))
    assert json.loads((out / "metrics.json").read_text())["volumes"] == 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["model.pt"]  # evaluation writes nothing beside it
    with pytest.raises(Exception) as err:
        _evaluate(root, phantoms, output_dir=str(tmp_path / "scores2"))
    assert f"{root / 'models' / 'model.pt'} does not exist" in error_chain(err.value)


def _infer(bundle_root: Path, images: Path, **extra) -> Path:
    out = bundle_root / "pred"
    overrides = {**TINY["infer"], "bundle_root": str(bundle_root), "dataset_dir": str(images), "output_dir": str(out)}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "inference.json"), workflow_type="infer", **{**overrides, **extra})
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return out


def test_inference_returns_label_maps_in_the_input_space(trained, phantoms):
    out = _infer(trained, phantoms / "images")
    for image in sorted((phantoms / "images").iterdir()):
        seg = nib.load(out / image.name.replace(".nii.gz", "_seg.nii.gz"))
        src = nib.load(image)
        assert seg.shape == src.shape and np.allclose(seg.affine, src.affine, atol=1e-4)
        assert seg.get_data_dtype() == np.uint8 and np.asarray(seg.dataobj).max() < 25
        png = imread(out / image.name.replace(".nii.gz", "_overlay.png"))  # beside the label map
        assert png.shape[:2] == (256, 3 * 256) and png[..., :3].std() > 0.05


def test_inference_on_a_dicom_series(trained, tmp_path):
    """A CT series folder, read by ITKReader: the label map is saved in the series' space as MONAI reads it."""
    image, _, _ = spine_phantom(shape=(24, 20, 12), spacing=(3.0, 3.0, 3.0), seed=5)  # (x, y, z) RAS, HU
    hu = np.flip(image.transpose(2, 1, 0), (1, 2))  # (slices, rows, columns): rows go anterior->posterior, LPS
    series = write_ct_series(tmp_path / "dicom" / "ct_series", hu, spacing=(3.0, 3.0, 3.0))
    out = _infer(trained, tmp_path / "dicom")
    seg = nib.load(out / "ct_series_seg.nii.gz")
    src = LoadImage(reader="ITKReader", image_only=True)(str(series))
    assert seg.shape == tuple(src.shape) == (24, 20, 12)
    assert np.allclose(seg.affine, src.affine.numpy(), atol=1e-4)
    assert nib.aff2axcodes(seg.affine) == ("L", "P", "S")  # the series' own orientation, not resampled to RAS
    png = imread(out / "ct_series_overlay.png")
    assert png.shape[:2] == (256, 3 * 256) and png[..., :3].std() > 0.05


def test_inference_on_a_real_ct(trained, tmp_path):
    ct = SAMPLE_DATA / "spine_ct_totalsegmentator" / "ct.nii.gz"
    if not ct.is_file():
        pytest.skip(f"sample CT not found at {ct}")
    out = _infer(trained, ct)
    seg, src = nib.load(out / "ct_seg.nii.gz"), nib.load(ct)
    assert seg.shape == src.shape == (122, 101, 112)
    assert np.allclose(seg.affine, src.affine, atol=1e-4)
    assert imread(out / "ct_overlay.png")[..., :3].std() > 0.05


def test_a_checkpoint_of_another_network_is_refused(trained, phantoms, tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "model.pt")
    with pytest.raises(Exception) as err:
        _infer(trained, phantoms / "images", ckpt_dir=str(tmp_path))
    assert "was not made for this network" in error_chain(err.value)


def test_bad_roi_fails_before_training(phantoms, tmp_path):
    overrides = {**TINY["train"], "bundle_root": str(tmp_path), "dataset_dir": str(phantoms), "roi_size": [96, 80, 96]}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **overrides)
    with pytest.raises(Exception) as err:
        wf.initialize()
    assert "multiple of 32" in error_chain(err.value)


def test_label_values_outside_the_classes_fail_before_training(phantoms, tmp_path):
    names = [f"c{i}" for i in range(1, 10)]
    overrides = {**TINY["train"], "bundle_root": str(tmp_path), "dataset_dir": str(phantoms), "num_classes": 10}
    overrides.update(label_names=names, label_mapping=[])
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **overrides)
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.run()
    assert "outside the configured classes" in error_chain(err.value)


def test_multi_gpu_config_runs_two_cpu_processes(phantoms, tmp_path):
    # 2 validation cases, one per rank; the single training case is padded to one per rank
    overrides = {
        **TINY["train"],
        "bundle_root": str(tmp_path),
        "dataset_dir": str(phantoms),
        "val_fraction": 0.5,
        "test_fraction": 0.0,
    }
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    cmd = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")]),
        *args,
    ]
    done = subprocess.run(cmd, cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=600)
    # the ranks' own output precedes the launcher's summary traceback, which alone would hide why a rank failed
    ranks_output = done.stderr.rsplit("Traceback (most recent call last)", 1)[0]
    assert done.returncode == 0, done.stdout[-3000:] + ranks_output[-4000:]
    state = torch.load(tmp_path / "models" / "checkpoint_last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # DDP wrapper not saved
    assert state["trainer"]["iteration"] == 1


def test_demo_overrides_name_ids_of_the_training_config():
    """demo.json holds overrides only: each key is an id of train.json or a new argument of one of its components,
    and the augmentations it switches off by list position are the affine and intensity ones (a reordered list
    would silently turn off something else)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    demo = json.loads((CONFIGS / "demo.json").read_text())
    new_argument = lambda k: "#" in k and isinstance(parser.get(k.rpartition("#")[0]), dict)  # noqa: E731
    unknown = [k for k in demo if k not in parser and not new_argument(k)]
    assert unknown == []
    switched_off = [key.split("#")[2] for key in demo if key.startswith("train#random_transforms#")]
    targets = [parser[f"train#random_transforms#{i}#_target_"] for i in switched_off]
    assert targets == ["RandAffined", "RandScaleIntensityd", "RandShiftIntensityd"]
