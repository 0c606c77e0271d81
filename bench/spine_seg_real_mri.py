# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The paper's ablation on real data: spine_seg's variants trained and tested on real lumbar MRI at one budget.

Data: the 30 lumbar MRI volumes beside the repository (``../shared/data/spine_mri_myosegmentum``: one per healthy
adult, 1 mm, vertebral bodies L1-L5 in VerSe ids 20-24; MyoSegmenTUM spine, Burian et al. 2019, as resampled by
Ramos et al. 2024). Each run is the bundle's own commands, overrides only:

    python -m monai.bundle run training   --config_file "['train.json','mri_lumbar.json','cpu_budget.json']" ...
    python -m monai.bundle run evaluating --config_file "['train.json','evaluate.json','mri_lumbar.json',
                                                          'cpu_budget.json']" ...

plus the data folder, the split (``val_fraction`` 0.15 and ``test_fraction`` 0.25: 18 training, 4 validation and 8
test subjects, drawn by the bundle with ``seed``) and each variant's switches (``VARIANTS``). Every variant trains
for the same number of iterations (``cpu_budget.json``'s epochs) on the same split; a seed changes the split and the
initialisation alike, so the spread over seeds is that of a repeated random split. SwinUNETR runs with the
bundle's fused window attention (``fast_path``), which computes MONAI's ``SwinUNETR`` to float tolerance (tested), so
that both sides of the comparison get the same kernels. The test subjects are scored by
``evaluate.json``: mDice, mIoU, mAcc (the bundle's definitions), per-vertebra Dice, the worst test subject.

The script also measures the MRI intensity normalisations the bundle could use (no training: how consistent the
vertebral bodies' intensity is across subjects after each), which is why ``modality: mri`` z-scores.

    python bench/spine_seg_real_mri.py                               # every variant, seed 0
    python bench/spine_seg_real_mri.py --variants full swin_unetr --seeds 0 1 2
    python bench/spine_seg_real_mri.py --table --work /tmp/runs      # the table again (validation curves from
                                                                     # the logs kept in --work)

Results go to ``bench/results/spine_seg_real_mri.json`` after every run; a run already there with the same
settings is kept, not repeated (``--fresh`` repeats it). Measure on an idle machine, one run at a time. The runs of
earlier recipes stay beside it, each file named by how its recipe differs from today's and holding that recipe in
``settings``: ``spine_seg_real_mri_whole_field.json`` (the whole 224 mm field in one patch, 40 epochs) and
``spine_seg_real_mri_40_epochs.json``; ``--out <file> --table`` prints a file's tables again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from compare import RESULTS, load_average, machine, write_report  # noqa: E402

CONFIGS = REPO / "bundles" / "spine_seg" / "configs"
DATA = REPO.parent / "shared" / "data" / "spine_mri_myosegmentum"
FIGURE = REPO / "bundles" / "spine_seg" / "docs" / "real_mri_test_case.png"
TRAIN = ["train.json", "mri_lumbar.json", "cpu_budget.json"]
EVALUATE = ["train.json", "evaluate.json", "mri_lumbar.json", "cpu_budget.json"]
SPLIT = {"val_fraction": 0.15, "test_fraction": 0.25}
BUDGET_S = 45 * 60
REFERENCE = "swin_unetr"  # the model the paper extends: every other variant is paired with it, subject by subject


def nnunet_like_dynunet(roi_size: list[int], base_filters: int = 14) -> dict:
    """A CNN a user would pick instead: MONAI's DynUNet laid out as nnU-Net lays out a 3D full-resolution U-Net for
    this patch: 3^3 kernels, each axis halved while it stays at least 4 voxels long, filters doubling up to 320,
    instance norm, leaky ReLU; no deep supervision (the bundle's loss takes one output). 14 base filters (nnU-Net:
    32) were the widest whose 40 epochs of the whole-field patch fitted the 45-minute budget on a 2-core CPU (16 took
    70 s an epoch, 47 min)."""
    strides, size = [[1, 1, 1]], list(roi_size)
    while 2 in (step := [2 if s % 2 == 0 and s // 2 >= 4 else 1 for s in size]):
        strides.append(step)
        size = [s // k for s, k in zip(size, step)]
    return {
        "_target_": "DynUNet",
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": "@num_classes",
        "kernel_size": [[3, 3, 3]] * len(strides),
        "strides": strides,
        "upsample_kernel_size": strides[1:],
        "filters": [min(base_filters * 2**i, 320) for i in range(len(strides))],
        "norm_name": "instance",
    }


# SwinUNETR runs with the bundle's fused window attention (``fast_path``): MONAI's SwinUNETR to float tolerance
# (tests), at the speed the other variants get from the same kernels, so that time does not favour either side
VARIANTS: dict[str, dict] = {
    "swin_unetr": {
        "network_def#use_msf": False,
        "network_def#adaptive_attention": False,
        "network_def#fast_path": True,
    },
    "msf": {"network_def#adaptive_attention": False},
    "adaptive": {"network_def#use_msf": False},
    "full": {},
    "dynunet": {"network_def": nnunet_like_dynunet(json.loads((CONFIGS / "mri_lumbar.json").read_text())["roi_size"])},
}
LABELS = {
    "swin_unetr": "MONAI SwinUNETR",
    "msf": "+ multi-scale fusion",
    "adaptive": "+ adaptive attention",
    "full": "both (the paper's model)",
    "dynunet": "DynUNet (nnU-Net-like CNN)",
}


def _cli(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [
            f"--{key}",
            value if isinstance(value, str) else repr(value) if isinstance(value, bool) else json.dumps(value),
        ]
    return args


def _run(run_id: str, configs: list[str], overrides: dict, threads: int, log: Path) -> tuple[float, list[str]]:
    config_files = json.dumps([str(CONFIGS / c) for c in configs])
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_files, *_cli(overrides)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{run_id} failed (exit {done.returncode}); its output is in {log}:\n{log.read_text()[-3000:]}")
    return seconds, cmd


def _per_case(path: Path, names: list[str]) -> dict[str, dict[str, float | None]]:
    with open(path, newline="") as f:
        return {
            Path(row["case"]).name.split(".")[0]: {
                n: (float(row[n]) if row[n] else None) for n in [*names, "mean_dice"]
            }
            for row in csv.DictReader(f)
        }


def run_variant(variant: str, seed: int, args, work: Path) -> dict:
    """Train and evaluate one variant with one seed; return its record."""
    overrides = {
        "dataset_dir": str(args.data),
        "ckpt_dir": str(work / "models"),
        "output_dir": str(work / "eval"),
        "seed": seed,
        **SPLIT,
        **({"max_epochs": args.max_epochs, "val_interval": args.max_epochs} if args.max_epochs else {}),
        **VARIANTS[variant],
        "overwrite": True,
        "resume": False,
    }
    load_before = load_average()
    train_s, train_cmd = _run("training", TRAIN, overrides, args.threads, work / "train.log")
    load_after_training = load_average()
    eval_s, eval_cmd = _run("evaluating", EVALUATE, overrides, args.threads, work / "evaluate.log")
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    names = list(metrics["per_class"])
    cases = _per_case(work / "eval" / "per_case.csv", names)
    worst = min(cases, key=lambda c: cases[c]["mean_dice"] if cases[c]["mean_dice"] is not None else -1.0)
    epochs = _epochs(work / "train.log")
    return {
        "variant": variant,
        "seed": seed,
        "overrides": VARIANTS[variant],
        "commands": [" ".join(train_cmd[1:]), " ".join(eval_cmd[1:])],
        "train_s": round(train_s, 1),
        "train_min": round(train_s / 60, 1),
        "evaluate_s": round(eval_s, 1),
        "within_budget": train_s <= BUDGET_S,
        "epochs": epochs,
        "validation_mean_dice": _validation(work / "train.log"),
        "training_mean_dice": _validation(work / "train.log", "train_mean_dice"),
        "iterations": epochs * args.training_cases if epochs else None,
        "load_average": [load_before, load_after_training, load_average()],
        "test_volumes": metrics["volumes"],
        "mean_dice": metrics["mean_dice"],
        "mean_iou": metrics["mean_iou"],
        "mean_acc": metrics["mean_acc"],
        "per_vertebra_dice": {n: row["dice"] for n, row in metrics["per_class"].items()},
        "per_case": cases,
        "case_mean_dice_sd": statistics.pstdev([c["mean_dice"] for c in cases.values() if c["mean_dice"] is not None]),
        "worst_case": {"case": worst, **cases[worst]},
        "levels_below_0.5": sorted(
            f"{case} {n}" for case, row in cases.items() for n in names if row[n] is not None and row[n] < 0.5
        ),
    }


def _epochs(log: Path) -> int | None:
    """Epochs the trainer completed, from Ignite's log."""
    done = [line for line in log.read_text().splitlines() if "SupervisedTrainer" in line and "Complete" in line]
    try:
        return int(done[-1].split("Epoch[")[1].split("]")[0]) if done else None
    except (IndexError, ValueError):
        return None


def _validation(log: Path, metric: str = "val_mean_dice") -> dict[int, float]:
    """A metric by epoch from the bundle's log (``Epoch[N] Metrics -- ... val_mean_dice: x``); validation mDice by
    default, ``train_mean_dice`` for the training patches'."""
    out = {}
    for line in log.read_text(errors="replace").splitlines():
        if " Metrics -- " in line and f" {metric}: " in line:
            epoch = int(line.split("Epoch[")[1].split("]")[0])
            out[epoch] = float(line.split(f" {metric}: ")[1].split()[0])
    return out


def normalisation_consistency(data: Path) -> dict:
    """How alike the vertebral bodies' intensity is across subjects after each candidate normalisation: the SD over
    subjects of the bodies' mean intensity, in units of the bodies' own SD within a volume (lower: more alike)."""
    import nibabel as nib

    def zscore_nonzero(a):
        nz = a[a != 0]
        return np.where(a != 0, (a - nz.mean()) / nz.std(), 0.0)

    def percentiles(a):
        lo, hi = np.percentile(a, [0.5, 99.5])
        return np.clip((a - lo) / (hi - lo), 0, 1)

    candidates = {"as stored": lambda a: a, "percentiles 0.5-99.5 to [0, 1]": percentiles}
    candidates["z-score over nonzero voxels (chosen)"] = zscore_nonzero
    stats: dict[str, list] = {name: [] for name in candidates}
    for image in sorted((data / "images").glob("*.nii.gz")):
        a = np.asarray(nib.load(image).dataobj, dtype=np.float32)
        bodies = np.asarray(nib.load(data / "labels" / image.name).dataobj) > 0
        for name, fn in candidates.items():
            v = fn(a)[bodies]
            stats[name].append((float(v.mean()), float(v.std())))
    out = {}
    for name, s in stats.items():
        means, sds = np.array([m for m, _ in s]), np.array([d for _, d in s])
        out[name] = round(float(means.std() / sds.mean()), 3)
    return {"subjects": len(stats["as stored"]), "between_subject_sd_of_body_mean_in_within_sd": out}


def _results_path(args) -> Path:
    return Path(args.out) if args.out else RESULTS / "spine_seg_real_mri.json"


def _settings(max_epochs: int | None) -> dict:
    """What makes two runs comparable: the recipe files' contents, the split and a shortened run's epochs."""
    settings = {c: json.loads((CONFIGS / c).read_text()) for c in ("mri_lumbar.json", "cpu_budget.json")}
    return {**settings, "split": SPLIT, **({"max_epochs": max_epochs} if max_epochs else {})}


def paired_with_reference(runs: list[dict], variant: str) -> dict | None:
    """Each test subject's mean Dice under ``variant`` minus under MONAI SwinUNETR (``REFERENCE``), on the seeds both
    ran: the same split, so the same subjects. Subjects differ far more than variants do, so a variant's edge shows
    (or does not) here before it shows in means over different subjects."""
    reference = {r["seed"]: r.get("per_case", {}) for r in runs if r["variant"] == REFERENCE}
    diffs = []
    for r in runs:
        if variant == REFERENCE or r["variant"] != variant or r["seed"] not in reference:
            continue
        for case, row in r.get("per_case", {}).items():
            other = reference[r["seed"]].get(case)
            if other and row["mean_dice"] is not None and other["mean_dice"] is not None:
                diffs.append(row["mean_dice"] - other["mean_dice"])
    if not diffs:
        return None
    return {
        "versus": REFERENCE,
        "subjects": len(diffs),
        "mean_difference": statistics.mean(diffs),
        "median_difference": statistics.median(diffs),
        "better": sum(d > 0 for d in diffs),
        "worse": sum(d < 0 for d in diffs),
    }


def summarise(runs: list[dict]) -> dict:
    table = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        dice = [r["mean_dice"] for r in mine]
        names = list(mine[0]["per_vertebra_dice"])
        table[variant] = {
            "label": LABELS[variant],
            "seeds": [r["seed"] for r in mine],
            "mean_dice": statistics.mean(dice),
            "mean_dice_sd_over_seeds": statistics.stdev(dice) if len(dice) > 1 else None,
            "mean_iou": statistics.mean(r["mean_iou"] for r in mine),
            "mean_acc": statistics.mean(r["mean_acc"] for r in mine),
            "per_vertebra_dice": {n: statistics.mean(r["per_vertebra_dice"][n] for r in mine) for n in names},
            "case_mean_dice_sd": statistics.mean(r["case_mean_dice_sd"] for r in mine),
            "worst_case_mean_dice": min(r["worst_case"]["mean_dice"] for r in mine),
            "levels_below_0.5": sum(len(r["levels_below_0.5"]) for r in mine),
            "train_s": statistics.mean(r["train_s"] for r in mine),
            "train_s_max": max(r["train_s"] for r in mine),
            "train_min": statistics.mean(r["train_s"] for r in mine) / 60,
            "iterations": mine[0]["iterations"],
            "within_budget": all(r["within_budget"] for r in mine),
            "machines": sorted({r.get("machine", "?") for r in mine}),
            "paired_with_reference": paired_with_reference(runs, variant),
        }
    return table


def markdown(table: dict) -> str:
    """The results as the model card shows them."""
    names = list(next(iter(table.values()))["per_vertebra_dice"])
    head = ["variant", "seeds", "steps", "training (min)", "mDice", "mIoU", "mAcc", *names]
    head += ["SD over test subjects", "worst subject", "levels < 0.5", "vs SwinUNETR, same subjects"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.values():
        sd = row["mean_dice_sd_over_seeds"]
        dice = f"{row['mean_dice']:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
        cells = [row["label"], str(len(row["seeds"])), str(row["iterations"]), f"{row['train_min']:.1f}", dice]
        cells += [f"{row['mean_iou']:.3f}", f"{row['mean_acc']:.3f}"]
        cells += [f"{v:.3f}" for v in row["per_vertebra_dice"].values()]
        cells += [f"{row['case_mean_dice_sd']:.3f}", f"{row['worst_case_mean_dice']:.3f}", str(row["levels_below_0.5"])]
        paired = row.get("paired_with_reference")
        cells.append(
            f"{paired['mean_difference']:+.3f} ({paired['better']} better, {paired['worse']} worse of "
            f"{paired['subjects']})"
            if paired
            else "—"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_runs(runs: list[dict]) -> str:
    """One row per run, seed by seed, so that variants are compared on the same split."""
    names = list(runs[0]["per_vertebra_dice"])
    head = ["seed", "variant", "machine", "steps", "training (min)", "mDice", "mIoU", "mAcc", *names]
    head += ["SD over test subjects", "worst subject", "levels < 0.5"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = list(VARIANTS)
    for r in sorted(runs, key=lambda r: (r["seed"], order.index(r["variant"]))):
        cells = [str(r["seed"]), LABELS[r["variant"]], r.get("machine", "?").split(" @")[0], str(r["iterations"])]
        cells += [f"{r['train_s'] / 60:.1f}", f"{r['mean_dice']:.3f}", f"{r['mean_iou']:.3f}", f"{r['mean_acc']:.3f}"]
        cells += [f"{v:.3f}" for v in r["per_vertebra_dice"].values()]
        cells += [
            f"{r['case_mean_dice_sd']:.3f}",
            f"{r['worst_case']['mean_dice']:.3f}",
            str(len(r["levels_below_0.5"])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with images/ and labels/")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="repeat runs the results file already holds")
    parser.add_argument("--max_epochs", type=int, default=None, help="a shorter run than cpu_budget.json's (a check)")
    parser.add_argument("--work", type=Path, default=None, help="keep each run's models and outputs here")
    parser.add_argument("--out", default=None, help="results file (default bench/results/spine_seg_real_mri.json)")
    parser.add_argument("--table", action="store_true", help="summarise the results file again and print its table")
    args = parser.parse_args()
    if not (args.data / "images").is_dir() or not (args.data / "labels").is_dir():
        sys.exit(f"the lumbar MRI is not at {args.data} (expected images/ and labels/)")
    n = len(list((args.data / "images").glob("*.nii.gz")))
    args.training_cases = n - round(n * SPLIT["val_fraction"]) - round(n * SPLIT["test_fraction"])

    path, settings = _results_path(args), _settings(args.max_epochs)
    if args.table:  # the table again from the runs the file holds (after a change to how it is summarised)
        report = json.loads(path.read_text())
        for r in report["runs"] if args.work else []:  # runs recorded before the curve was kept: from their logs
            log = args.work / f"{r['variant']}_seed{r['seed']}" / "train.log"
            if "validation_mean_dice" not in r and log.is_file():
                r["validation_mean_dice"] = _validation(log)
            if "training_mean_dice" not in r and log.is_file():
                r["training_mean_dice"] = _validation(log, "train_mean_dice")
        for r in report["runs"]:  # the minutes each run's table row shows
            r.setdefault("train_min", round(r["train_s"] / 60, 1))
        report["table"] = summarise(report["runs"])
        print(markdown_runs(report["runs"]), markdown(report["table"]), sep="\n\n")
        write_report("spine_seg_real_mri", report, out=path)
        return
    old = json.loads(path.read_text()) if path.is_file() else {}
    same = old.get("settings") == settings and not args.fresh
    runs = old.get("runs", []) if same else []
    report = {
        "what": "spine_seg variants on real lumbar MRI, same iterations, held-out test subjects",
        "data": {
            "folder": str(args.data),
            "volumes": n,
            "source": "MyoSegmenTUM spine (Burian et al., BMC Musculoskelet Disord 20:152, 2019), as resampled "
            "by Ramos et al. (Magn Reson Imaging 109:134-146, 2024)",
        },
        "settings": settings,
        "normalisation": normalisation_consistency(args.data),
        "runs": runs,
        **({"figure": old["figure"]} if same and "figure" in old else {}),
    }
    print("normalisation consistency:", report["normalisation"]["between_subject_sd_of_body_mean_in_within_sd"])
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant in args.variants:
                if any(r["variant"] == variant and r["seed"] == seed for r in runs):
                    print(f"{variant} seed {seed}: kept from {path.name}")
                    continue
                work = (args.work or Path(tmp)) / f"{variant}_seed{seed}"
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                print(f"{variant} seed {seed}: training ...", flush=True)
                record = run_variant(variant, seed, args, work)
                record["machine"] = machine()["cpu"]
                runs.append(record)
                print(
                    f"{variant} seed {seed}: test mDice {record['mean_dice']:.4f}, worst subject "
                    f"{record['worst_case']['case']} {record['worst_case']['mean_dice']:.3f}, training "
                    f"{record['train_s'] / 60:.1f} min",
                    flush=True,
                )
                if variant == "full" and "figure" not in report and not args.out:  # another seed keeps the card's
                    pngs = sorted((work / "eval").glob("*.png"))
                    worst = [p for p in pngs if p.name.startswith(record["worst_case"]["case"])]
                    if worst:  # the hardest held-out subject, the honest example
                        shutil.copyfile(worst[0], FIGURE)
                        report["figure"] = {"path": str(FIGURE.relative_to(REPO)), "case": record["worst_case"]}
                report["table"] = summarise(runs)
                report["machine"] = {**machine(), "threads": args.threads}
                write_report("spine_seg_real_mri", report, out=path)
    report["table"] = summarise(runs)
    print(markdown_runs(runs), markdown(report["table"]), sep="\n\n")
    write_report("spine_seg_real_mri", report, out=path)


if __name__ == "__main__":
    main()
