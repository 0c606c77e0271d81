# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""bench/spine_seg_real_mri.py: what it reads from the bundle's log, and the table the model card shows."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import spine_seg_real_mri as bench  # noqa: E402

LOG = """\
2026-12-07 07:24:46,719 - INFO - Epoch[5] Metrics -- val_dataset_dice: 0.1830 val_mean_dice: 0.1856 val_mean_iou: 0.1361
2026-12-07 07:24:46,838 - ignite.engine.engine.SupervisedTrainer - INFO - Epoch[5] Complete. Time taken: 00:00:53.697
2026-12-07 07:29:11,408 - INFO - Epoch[10] Metrics -- val_mean_acc: 0.5187 val_mean_dice: 0.4780 val_mean_iou: 0.4018
2026-12-07 07:29:11,500 - ignite.engine.engine.SupervisedTrainer - INFO - Epoch[10] Complete. Time taken: 00:00:52.000
"""


def _record(variant, seed, dice):
    return {
        "variant": variant,
        "seed": seed,
        "mean_dice": dice,
        "mean_iou": dice - 0.1,
        "mean_acc": dice + 0.01,
        "per_vertebra_dice": {"L1": dice, "L2": dice + 0.02},
        "case_mean_dice_sd": 0.3,
        "worst_case": {"case": "myo_51", "mean_dice": 0.002},
        "levels_below_0.5": ["myo_51 L1"],
        "train_s": 2220.0,
        "iterations": 720,
        "within_budget": True,
    }


def test_epochs_and_validation_curve_come_from_the_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(LOG)
    assert bench._epochs(log) == 10
    assert bench._validation(log) == {5: 0.1856, 10: 0.478}
    log.write_text(LOG + "2026-12-07 07:29:11,500 - INFO - Epoch[10] Metrics -- train_mean_dice: 0.3778 \n")
    assert bench._validation(log, "train_mean_dice") == {10: 0.3778}


def test_table_averages_seeds_and_shows_their_spread():
    table = bench.summarise([_record("full", 0, 0.70), _record("full", 1, 0.80), _record("swin_unetr", 0, 0.60)])
    assert list(table) == ["swin_unetr", "full"]  # the variants' order, not the runs'
    assert abs(table["full"]["mean_dice"] - 0.75) < 1e-9 and table["full"]["mean_dice_sd_over_seeds"] > 0
    assert table["swin_unetr"]["mean_dice_sd_over_seeds"] is None
    lines = bench.markdown(table).splitlines()
    assert lines[0].startswith("| variant |") and "| L1 | L2 |" in lines[0]
    assert "0.750 ± 0.071" in lines[3] and "| 37.0 |" in lines[3] and lines[2].startswith("| MONAI SwinUNETR |")


def test_variants_are_paired_with_swin_unetr_subject_by_subject():
    """Only subjects both variants were tested on, in the same seed's split, are compared."""
    runs = [_record("swin_unetr", 0, 0.6), _record("full", 0, 0.7), _record("full", 1, 0.9), _record("dynunet", 0, 0.5)]
    for r, cases in zip(runs, [(0.5, 0.8, 0.6), (0.7, 0.7, 0.6), (0.1, 0.1, 0.1), (0.5, 0.8, 0.6)]):
        r["per_case"] = {f"myo_{i}": {"mean_dice": d} for i, d in enumerate(cases)}
    table = bench.summarise(runs)
    paired = table["full"]["paired_with_reference"]  # seed 1 has no SwinUNETR run: left out
    assert paired["subjects"] == 3 and paired["better"] == 1 and paired["worse"] == 1
    assert abs(paired["mean_difference"] - (0.2 - 0.1) / 3) < 1e-9
    assert table["dynunet"]["paired_with_reference"]["mean_difference"] == 0.0
    assert table["swin_unetr"]["paired_with_reference"] is None
    lines = bench.markdown(table).splitlines()
    assert lines[0].endswith("| vs SwinUNETR, same subjects |") and lines[2].endswith("| — |")
    assert lines[3].endswith("| +0.033 (1 better, 1 worse of 3) |")


def test_run_table_puts_variants_of_one_seed_together():
    runs = [_record("full", 1, 0.30), _record("full", 0, 0.70), _record("swin_unetr", 1, 0.28)]
    runs[0]["machine"] = "Intel(R) Xeon(R) Processor @ 2.80GHz"
    lines = bench.markdown_runs(runs).splitlines()
    assert lines[0].startswith("| seed | variant | machine |") and len(lines) == 5
    assert lines[2].startswith("| 0 | both (the paper's model) | ? |")
    assert lines[3].startswith("| 1 | MONAI SwinUNETR |") and lines[4].startswith("| 1 | both (the paper's model) |")
    assert "| Intel(R) Xeon(R) Processor | 720 | 37.0 | 0.300 |" in lines[4]


def test_dynunet_baseline_follows_the_patch_as_nnunet_would():
    """Each axis is halved while it stays at least 4 voxels long: the whole-field patch gets the six levels its
    archived run used, today's 96-voxel in-plane patch five; the network runs on such a patch."""
    import json

    import torch
    from monai.networks.nets import DynUNet

    archived = json.loads((REPO / "bench" / "results" / "spine_seg_real_mri_whole_field.json").read_text())
    dynunet_run = next(r for r in archived["runs"] if r["variant"] == "dynunet")
    assert bench.nnunet_like_dynunet([32, 128, 128])["strides"] == dynunet_run["overrides"]["network_def"]["strides"]
    layout = bench.nnunet_like_dynunet([32, 96, 96])
    assert layout["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert layout["filters"] == [14, 28, 56, 112, 224] and layout["upsample_kernel_size"] == layout["strides"][1:]

    small = bench.nnunet_like_dynunet([16, 32, 32], base_filters=4)
    kwargs = {k: v for k, v in small.items() if k != "_target_"} | {"out_channels": 6}
    out = DynUNet(**kwargs).eval()(torch.zeros(1, 1, 16, 32, 32))
    assert out.shape == (1, 6, 16, 32, 32)
