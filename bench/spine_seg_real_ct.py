# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Pipeline check of spine_seg on real HU data: overfit the bundle on the real abdominal CT beside the repository and
report its per-vertebra Dice on that same scan.

The scan (``../shared/data/spine_ct_totalsegmentator``: ``ct.nii.gz``, 3 mm, HU, and ``vertebrae_seg.nii.gz``, made by
TotalSegmentator, v2 ids 26..33 = S1, L5..L1, T12, T11) is the training, validation and test case at once, on
purpose: a model that cannot fit one scan has a broken pipeline (reading, orientation, intensity window, label
mapping, crops, loss, sliding-window inference, metrics). The score says nothing about accuracy on unseen scans.

The runs are the bundle's own command lines (``python -m monai.bundle run training`` / ``run evaluating``) with the
demo's settings (``configs/demo.json``) and a ``label_mapping`` of the v2 ids onto the demo's classes (S1 becomes
background, as the bundle does with VerSe's sacrum). Writes ``bench/results/spine_seg_real_ct.json``.

    python bench/spine_seg_real_ct.py                   # 300 iterations on the whole scan (96^3 at 4 mm)
    python bench/spine_seg_real_ct.py --epochs 100 --roi 64 64 64 --samples 2 --work /tmp/spine_real
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from compare import load_average, machine, write_report  # noqa: E402

CONFIGS = REPO / "bundles" / "spine_seg" / "configs"
DATA = REPO.parent / "shared" / "data" / "spine_ct_totalsegmentator"
# TotalSegmentator v2 ids of the scan -> the demo's classes (1..7 = T11, T12, L1..L5); S1 is background
V2_TO_DEMO = [[33, 1], [32, 2], [31, 3], [30, 4], [29, 5], [28, 6], [27, 7], [26, 0]]


def _cli(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [
            f"--{key}",
            value if isinstance(value, str) else repr(value) if isinstance(value, bool) else json.dumps(value),
        ]
    return args


def _run(run_id: str, configs: list[Path], overrides: dict, threads: int) -> tuple[float, list[str]]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", json.dumps([str(c) for c in configs])]
    cmd += _cli(overrides)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{run_id} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding ct.nii.gz and vertebrae_seg.nii.gz")
    parser.add_argument("--epochs", type=int, default=300, help="training epochs (one iteration each: one scan)")
    # the whole field at once: a vertebra's level is read by counting from the ribs or the sacrum
    parser.add_argument("--roi", type=int, nargs=3, default=[96, 96, 96], help="patch size (roi_size), 4 mm voxels")
    parser.add_argument("--samples", type=int, default=1, help="patches per iteration (num_samples)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="folder for checkpoints and outputs (default: temp)")
    args = parser.parse_args()
    ct, seg = args.data / "ct.nii.gz", args.data / "vertebrae_seg.nii.gz"
    if not ct.is_file() or not seg.is_file():
        sys.exit(f"the real CT is not at {args.data} (expected ct.nii.gz and vertebrae_seg.nii.gz)")

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pair = {"image": str(ct), "label": str(seg)}
        # one scan in every split, on purpose (an overfit check): distinct subject ids keep the split guard quiet
        datalist = {
            "training": [{**pair, "subject": "train"}],
            "validation": [{**pair, "subject": "validation"}],
            "testing": [{**pair, "subject": "test"}],
        }
        (work / "datalist.json").write_text(json.dumps(datalist, indent=2))
        overrides = {
            "dataset_dir": str(args.data),
            "datalist_file": str(work / "datalist.json"),
            "label_mapping": V2_TO_DEMO,
            "ckpt_dir": str(work / "models"),
            "output_dir": str(work / "eval"),
            "max_epochs": args.epochs,
            "val_interval": args.epochs,
            "num_samples": args.samples,
            "roi_size": args.roi,
            "learning_rate": args.lr,
            "overwrite": True,
        }
        load_before = load_average()
        train_s, train_cmd = _run("training", [CONFIGS / "train.json", CONFIGS / "demo.json"], overrides, args.threads)
        configs = [CONFIGS / "train.json", CONFIGS / "evaluate.json", CONFIGS / "demo.json"]
        eval_s, eval_cmd = _run("evaluating", configs, overrides, args.threads)
        metrics = json.loads((work / "eval" / "metrics.json").read_text())

    demo = json.loads((CONFIGS / "demo.json").read_text())
    report = {
        "what": "spine_seg overfit on one real CT (train = validation = test): a pipeline check, not accuracy",
        "data": {"image": str(ct), "label": str(seg), "label_mapping": V2_TO_DEMO},
        "settings": {
            **{k: v for k, v in demo.items() if k != "label_mapping"},
            **{k: overrides[k] for k in ("max_epochs", "num_samples", "roi_size")},
        },
        "learning_rate": args.lr,
        "commands": [" ".join(train_cmd[1:]), " ".join(eval_cmd[1:])],
        "train_s": round(train_s, 1),
        "evaluate_s": round(eval_s, 1),
        "load_average": [load_before, load_average()],
        "mean_dice": metrics["mean_dice"],
        "mean_iou": metrics["mean_iou"],
        "mean_acc": metrics["mean_acc"],
        "per_vertebra_dice": {name: row["dice"] for name, row in metrics["per_class"].items()},
        "machine": {**machine(), "threads": args.threads},
    }
    print(
        f"real CT (overfit) mDice {metrics['mean_dice']:.3f}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["per_vertebra_dice"].items() if v is not None)
        + f"; training {train_s:.0f} s, evaluation {eval_s:.0f} s, load average {report['load_average']}"
    )
    write_report("spine_seg_real_ct", report)


if __name__ == "__main__":
    main()
