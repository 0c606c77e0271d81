# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
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

from shared.errors import find_input_error
from shared.spine.datalist import segmentation_datalist
from shared.spine.phantom import spine_phantom, write_spine_phantom_dataset
from tests.conftest import PYTHON, REPO, SAMPLE_DATA, error_chain, run_env
from tests.spine.ct_series import write_ct_series

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
    assert set(last) == {"model", "optimizer", "lr_scheduler", "trainer", "best_model", "made_for"}
    assert last["made_for"] == {"network": "AdaptiveSwinUNETR (spine_seg)"}
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


def test_evaluation_compares_the_restored_prediction_with_the_original_label_file(trained, phantoms, tmp_path):
    """Scores are counted on the test case's own label map, in its own grid, whatever grid the network works on:
    TP + FN of every class is that class's voxel count in the label file."""
    overrides = {**TINY["train"], "bundle_root": str(trained), "dataset_dir": str(phantoms)}
    overrides.update(pixdim=[4.0, 4.0, 4.0], output_dir=str(tmp_path / "eval"))  # not the phantoms' 3 mm
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")], workflow_type="eval", **overrides
    )
    wf.initialize()
    wf.run()
    counts, _ = wf.parser.get_parsed_content("validate#metrics").all_counts()
    test_case = segmentation_datalist(phantoms, check=False)["test"][0]
    label = np.asarray(nib.load(test_case["label"]).dataobj)
    for mapped_from, to in wf.parser.get_parsed_content("label_mapping"):
        label[label == mapped_from] = to
    expected = np.bincount(label.ravel().astype(np.int64), minlength=25)[1:]
    np.testing.assert_array_equal(counts[0][0] + counts[0][2], expected)


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
    assert "multiple of 32" in str(find_input_error(err.value))  # what the run prints as its last line


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


OVERRIDE_FILES = ("demo.json", "mri_lumbar.json", "cpu_budget.json")
# what inference.json must share with a training recipe: the network, its input and the classes
SHARED_WITH_INFERENCE = ("modality", "pixdim", "roi_size", "num_classes", "intensity_range", "network_def")


def _parser(name: str):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / name))
    return parser


@pytest.mark.parametrize("name", OVERRIDE_FILES)
def test_override_files_name_ids_of_the_training_config(name):
    """Each named recipe holds overrides only: every key is an id of train.json or a new argument of one of its
    components, and what shapes the network and its input is an id of inference.json too, so the same files serve
    `--config_file "['inference.json', ...]"`."""
    train, infer = _parser("train.json"), _parser("inference.json")
    overrides = json.loads((CONFIGS / name).read_text())
    new_argument = lambda p, k: "#" in k and isinstance(p.get(k.rpartition("#")[0]), dict)  # noqa: E731
    assert [k for k in overrides if k not in train and not new_argument(train, k)] == []
    shared = [k for k in overrides if k.split("#")[0] in SHARED_WITH_INFERENCE]
    assert [k for k in shared if k not in infer and not new_argument(infer, k)] == []
    assert not [k for k in overrides if any(part.isdigit() for part in k.split("#"))]  # no list positions


def test_augmentation_switches_are_the_ones_their_names_say():
    train = _parser("train.json")
    probs = {t["_target_"]: t.get("prob") for t in train["train#random_transforms"] if isinstance(t, dict)}
    assert probs["RandAffined"] == "@rand_affine_prob"
    assert probs["RandScaleIntensityd"] == probs["RandShiftIntensityd"] == "@rand_intensity_prob"


def _intensity(modality: str):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser["modality"] = modality
    transforms = parser.get_parsed_content("train#deterministic_transforms")
    return [t for t in transforms if type(t).__name__ in ("ScaleIntensityRanged", "NormalizeIntensityd")]


def test_mri_volumes_are_z_scored_over_their_nonzero_voxels():
    """A synthetic MRI (air 0, tissue ~ N(300, 40)) comes out with mean 0 and SD 1 over the tissue, air still 0;
    the same volume scaled by another scanner's gain comes out the same."""
    (mri,) = _intensity("mri")
    rng = np.random.default_rng(0)
    tissue = np.zeros((1, 24, 24, 24), np.float32)
    tissue[:, 4:20, 4:20, 4:20] = rng.normal(300.0, 40.0, (1, 16, 16, 16))
    out = np.asarray(mri({"image": torch.as_tensor(tissue)})["image"])
    inside = out[:, 4:20, 4:20, 4:20]
    assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1.0) < 1e-3
    assert (out[:, :4] == 0).all()
    other_scanner = np.asarray(mri({"image": torch.as_tensor(3.7 * tissue)})["image"])
    assert np.allclose(other_scanner, out, atol=1e-4)
    (ct,) = _intensity("ct")  # the CT default is still the HU window
    assert type(ct).__name__ == "ScaleIntensityRanged"


def test_the_patch_sampler_reuses_class_indices_computed_once_per_cached_case(phantoms, monkeypatch):
    """Class indices are computed once per case, while caching; drawing patches never maps the volume again."""
    import monai.transforms.croppad.array as crop
    import monai.transforms.utility.array as utility

    calls = {"cache": 0, "sampler": 0}

    def counting(where, fn):
        def wrapped(*args, **kwargs):
            calls[where] += 1
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(utility, "map_classes_to_indices", counting("cache", utility.map_classes_to_indices))
    monkeypatch.setattr(crop, "map_classes_to_indices", counting("sampler", crop.map_classes_to_indices))
    overrides = {**TINY["train"], "dataset_dir": str(phantoms), "cache_rate": 1.0}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **overrides)
    wf.initialize()
    dataset = wf.parser.get_parsed_content("train#dataset")
    assert calls == {"cache": len(dataset), "sampler": 0}
    patches = [dataset[i % len(dataset)] for i in range(6)]
    assert calls == {"cache": len(dataset), "sampler": 0}
    assert all(p[0]["image"].shape[1:] == tuple(TINY["train"]["roi_size"]) for p in patches)
    assert all("label_cls_indices" not in p[0] for p in patches)  # not collated into batches


def test_an_anisotropic_patch_with_a_32_voxel_side_trains(phantoms, tmp_path):
    """roi_size takes what the network takes: [32, 64, 64] (a thin slab) at anisotropic spacing trains."""
    overrides = {
        **TINY["train"],
        "bundle_root": str(tmp_path),
        "dataset_dir": str(phantoms),
        "roi_size": [32, 64, 64],
        "pixdim": [4.0, 3.0, 3.0],
        "val_interval": 2,
    }
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **overrides)
    wf.initialize()
    shapes = []
    trainer = wf.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: shapes.append(tuple(e.state.output[0]["pred"].shape))
    )
    wf.run()
    assert shapes and all(s[1:] == (32, 64, 64) for s in shapes)
    assert torch.load(tmp_path / "models" / "checkpoint_last.pt", weights_only=True)["trainer"]["iteration"] >= 1


LUMBAR_MRI = SAMPLE_DATA / "spine_mri_myosegmentum"


@pytest.mark.skipif(not (LUMBAR_MRI / "images").is_dir(), reason="the real lumbar MRI is not beside the repository")
def test_real_lumbar_mri_passes_with_mri_lumbar_json_and_is_refused_by_the_ct_window():
    """The 30 real volumes (uint8, IPL, L1-L5 as VerSe 20-24) pass every check with mri_lumbar.json's settings and
    split by subject; with the default CT window the first image read is refused as not Hounsfield units."""
    recipe = json.loads((CONFIGS / "mri_lumbar.json").read_text())
    settings = dict(num_classes=recipe["num_classes"], label_mapping=recipe["label_mapping"])
    splits = segmentation_datalist(LUMBAR_MRI, modality="mri", val_fraction=0.15, test_fraction=0.25, **settings)
    assert [len(splits[k]) for k in ("training", "validation", "test")] == [18, 4, 8]
    with pytest.raises(Exception) as err:
        segmentation_datalist(LUMBAR_MRI, modality="ct", intensity_range=[-1000, 1500], num_workers=1, **settings)
    assert "holds no value below 0 (its range is [0, " in error_chain(err.value)
