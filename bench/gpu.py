# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Every bundle's real training recipe measured on a GPU, through MONAI's own ``ConfigWorkflow``.

Each bundle runs its ``configs/train.json`` as it is (its own data loaders, transforms, handlers and AMP setting)
on synthetic data of the shapes real data has, written to a scratch folder first. The trainer is stopped after
``--warmup`` + ``--iterations`` iterations; the warm-up ones are not counted. Per bundle it reports:

- iterations/s and samples/s over the counted iterations (each from waiting for the batch to the end of the
  recipe's own iteration handlers; epoch-end work such as validation and checkpoints falls outside);
- the data-loading stall fraction: the share of that time spent waiting for the loader (ignite's
  ``GET_BATCH_STARTED`` -> ``GET_BATCH_COMPLETED``), also without each epoch's first batch ("steady"), where the
  recipe's DataLoader starts its workers again;
- peak GPU memory of the training iterations and of the whole run (validation included);
- the time to build the trainer (dataset caching; for brain_mri_classification, the frozen-backbone slice
  embeddings).

For spine_seg it then runs ``configs/inference.json`` on synthetic 512 x 512 x 300 CTs (``--ct-spacing``, default
0.8 x 0.8 x 1.5 mm: a thoraco-lumbar scan), which the config resamples to its ``pixdim``, and reports the
sliding-window time per CT (first CT and the median of the others) beside loading and post-processing.
Figures are printed against the targets (spine_seg: >= 4 training iterations/s at 96^3, feature size 48, on an
H100-class GPU; <= 5 s sliding-window inference per CT) and written to ``bench/results/gpu.json`` with the
device, torch, CUDA and cuDNN versions.

    python bench/gpu.py                                          # on a CUDA machine: every bundle, real settings
    python bench/gpu.py --bundles spine_seg --data-dir /tmp/gpu_bench_data   # keep the data for a second run
    python bench/gpu.py --cpu --tiny --out /tmp/gpu.json         # the same code path on a CPU, tiny shapes

Without CUDA (and without ``--cpu``) it says so and exits 0. ``--tiny`` uses each bundle's tiny overrides from
``tests/bundles/tiny/<name>.json``. brain_mri_classification uses the official DINOv2 weights when they are in
torch's hub cache and random ones otherwise (said in the output; speed does not depend on them).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare import load_average, machine, write_report  # noqa: E402

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
TINY = REPO / "tests" / "bundles" / "tiny"
RESULT = REPO / "bench" / "results" / "gpu.json"
MIB = 2**20

# Demo-data settings that give each bundle's network inputs their real shapes (its train.json defaults do the rest).
REAL_DATA = {
    # the demo cohort already gives 224^2 slices and 15,000 SNPs; speed does not depend on the trunks' start
    "ad_multiomic_classification": {"image_weights": "random"},
    "brain_mri_classification": {"demo_voxel_size": 1.0},  # 1 mm MRI (the default demo set is 2 mm)
    "glaucoma_oct_classification": {"demo_shape": "@input_size"},  # volumes of the network's input size
    "spine_seg": {},  # CTs written by write_ct below
}
# spine_seg's synthetic CTs: training cases and the CT that inference is timed on
CT = {
    "real": {"shape": (512, 512, 300), "spacing": (0.8, 0.8, 1.5), "cases": 5, "repeats": 3},
    "tiny": {"shape": (64, 64, 48), "spacing": (2.0, 2.0, 3.0), "cases": 3, "repeats": 2},
}
HOPPER = ("H100", "H200", "H800", "GH200")  # the GPUs the targets are stated for
TARGETS = {  # bundle -> figure -> (comparison, value, the setting it holds for)
    "spine_seg": {
        "train_iterations_per_s": (">=", 4.0, "96^3 patches, feature size 48, H100-class GPU"),
        "sliding_window_s": ("<=", 5.0, "one 512 x 512 x 300 CT, feature size 48, H100-class GPU"),
    }
}


class EventClock:
    """Wall-clock marks of an ignite engine at named ``events``, one record per iteration.

    The first event opens a record (opened again, the unfinished one is dropped: ignite fires
    ``GET_BATCH_STARTED`` once more after an epoch's last batch), the last closes it. On CUDA each mark first waits
    for the GPU and takes the peak memory allocated since the previous mark (``peak_<name>``, bytes: the peak of
    what ran just before it); the first mark's covers the gap since the last record (epoch-end work).
    After ``stop_after`` records the engine is terminated.
    """

    def __init__(self, events: Mapping[str, Any], cuda: bool, stop_after: int | None = None) -> None:
        self.events, self.names, self.cuda, self.stop_after = dict(events), list(events), cuda, stop_after
        self.records: list[dict[str, Any]] = []
        self.peak_all = 0
        self._open: dict[str, Any] | None = None

    def attach(self, engine) -> EventClock:
        for name, event in self.events.items():
            engine.add_event_handler(event, self._mark, name)
        return self

    def _mark(self, engine, name: str) -> None:
        peak = 0
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        now = time.perf_counter()
        self.peak_all = max(self.peak_all, peak)
        if name == self.names[0]:
            self._open = {"epoch": engine.state.epoch}
        elif self._open is None:
            return
        self._open[name], self._open[f"peak_{name}"] = now, peak
        if name == "batch":
            self._open["shapes"] = batch_shapes(engine.state.batch)
        if name == self.names[-1]:
            record, self._open = self._open, None
            record["first_of_epoch"] = not self.records or self.records[-1]["epoch"] != record["epoch"]
            self.records.append(record)
            if self.stop_after is not None and len(self.records) >= self.stop_after:
                engine.terminate()

    def peak_mib(self, names: list[str] | None = None) -> float:
        """The highest peak (MiB) of the records at the marks ``names``; by default of everything since the engine
        was attached (setup before the first record included when the peak was reset before building it)."""
        if names is None:
            return max(self.peak_all, torch.cuda.max_memory_allocated()) / MIB
        return max((r[f"peak_{n}"] for r in self.records for n in names), default=0) / MIB


def batch_shapes(batch: Any) -> dict[str, list[int]]:
    """Shapes of the tensors of a collated batch (a dict, or a list holding one)."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Mapping):
        batch = batch[0]
    if not isinstance(batch, Mapping):
        return {}
    return {str(k): list(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def samples_of(shapes: Mapping[str, list[int]]) -> int:
    """Samples in a batch: the leading size of its ``image`` (else of its first tensor)."""
    shape = shapes.get("image") or next(iter(shapes.values()), [1])
    return int(shape[0]) if shape else 1


def loop_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """iterations/s, samples/s and stall fraction of training records (marks ``start``, ``batch``, ``done``)."""
    cycle = sum(r["done"] - r["start"] for r in records)
    wait = sum(r["batch"] - r["start"] for r in records)
    samples = sum(samples_of(r["shapes"]) for r in records)
    return {
        "iterations": len(records),
        "seconds": round(cycle, 4),
        "iterations_per_s": round(len(records) / cycle, 3),
        "samples_per_s": round(samples / cycle, 3),
        "stall_fraction": round(wait / cycle, 4),
    }


def write_ct(image_path: Path, label_path: Path | None, shape, spacing, seed: int) -> None:
    """One synthetic spine CT of ``shape`` voxels at ``spacing`` mm (int16 HU, RAS NIfTI) and, given
    ``label_path``, its VerSe label map. The bundle's phantom is drawn at half the resolution (an eighth of the
    time and memory) and upsampled: trilinear for the image, nearest for the labels."""
    import nibabel as nib
    import numpy as np

    from shared.spine.phantom import spine_phantom

    coarse = tuple(max(16, s // 2) for s in shape)
    image, label, _ = spine_phantom(coarse, tuple(p * s / c for p, s, c in zip(spacing, shape, coarse)), seed=seed)
    up = torch.nn.functional.interpolate
    image = up(torch.from_numpy(image)[None, None], size=tuple(shape), mode="trilinear")[0, 0].round().short()
    image[[0, -1]], image[:, [0, -1]] = -1000, -1000  # air at the border of the field, as in a scanner's view
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.asarray(shape) * np.asarray(spacing) / 2 + np.asarray(spacing) / 2
    volumes = [(image.numpy(), image_path)]
    if label_path is not None:
        label = up(torch.from_numpy(label)[None, None].float(), size=tuple(shape), mode="nearest")[0, 0]
        volumes.append((label.to(torch.uint8).numpy(), label_path))
    for array, path in volumes:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".partial_{path.name}")  # dot files are no images to the datalists
        nib.save(nib.Nifti1Image(array, affine), str(partial))
        os.replace(partial, path)


def workflow(config, kind: str, overrides: Mapping[str, Any], check: bool = True):
    """A bundle workflow built the way MONAI's runner builds it: initialized and, with ``check``, its properties
    checked (which instantiates them: the trainer or evaluator with its datasets and network)."""
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(config_file=str(config), workflow_type=kind, **overrides)
    wf.initialize()
    missing = wf.check_properties() if check else []
    if missing:
        raise RuntimeError(f"{config}: the {kind} workflow lacks the properties {missing}")
    return wf


def prepare_data(name: str, folder: str, overrides: dict[str, Any], ct: dict[str, Any]) -> str:
    """Write ``name``'s synthetic data into ``folder`` (kept when a finished one is there): spine_seg's CTs by
    :func:`write_ct`, every other bundle's by its own demo writer, reached by parsing its ``datalist``."""
    root = Path(folder)
    done = root / "ready.json"
    if done.is_file():
        return folder
    if root.exists():
        shutil.rmtree(root)  # an interrupted preparation of this very setting
    if name == "spine_seg":
        for i in range(ct["cases"]):
            case = f"spine_{i:03d}.nii.gz"
            write_ct(root / "train" / "images" / case, root / "train" / "labels" / case, ct["shape"], ct["spacing"], i)
        write_ct(root / "ct" / "ct_000.nii.gz", None, ct["shape"], ct["spacing"], seed=1000)
        for i in range(1, ct["repeats"]):
            shutil.copyfile(root / "ct" / "ct_000.nii.gz", root / "ct" / f"ct_{i:03d}.nii.gz")
    else:
        config = REPO / "bundles" / name / "configs" / "train.json"
        paths = {"dataset_dir": str(root), "demo_dataset_dir": str(root)}
        workflow(config, "train", {**overrides, **paths}, check=False).parser.get_parsed_content("datalist")
    done.write_text(json.dumps({"bundle": name, "overrides": overrides, "ct": ct}, default=str))
    return folder


def brain_weights() -> str:
    """``official`` when Meta's DINOv2 ViT-S/14 checkpoint is in torch's hub cache, else ``random``."""
    from shared.networks.dinov2 import DINOV2_VITS14_FILENAME

    cached = Path(torch.hub.get_dir()) / "checkpoints" / DINOV2_VITS14_FILENAME
    return "official" if cached.is_file() else "random"


def run_training(name: str, overrides: dict[str, Any], args, cuda: bool) -> tuple[dict[str, Any], Any]:
    """Run ``name``'s train.json for ``warmup + iterations`` iterations; return its figures and the workflow."""
    from ignite.engine import Events

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    wf = workflow(REPO / "bundles" / name / "configs" / "train.json", "train", overrides)
    trainer = wf.parser.get_parsed_content("train#trainer")
    setup_s = time.perf_counter() - t0
    marks = {"start": Events.GET_BATCH_STARTED, "batch": Events.GET_BATCH_COMPLETED, "done": Events.ITERATION_COMPLETED}
    clock = EventClock(marks, cuda, stop_after=args.warmup + args.iterations).attach(trainer)
    t1 = time.perf_counter()
    wf.run()
    run_s = time.perf_counter() - t1
    wf.finalize()
    counted = clock.records[args.warmup :]
    if not counted:
        raise RuntimeError(f"{name}: the trainer ran {len(clock.records)} iteration(s), none after the warm-up")
    steady = [r for r in counted if not r["first_of_epoch"]]
    out = {
        **loop_summary(counted),
        "warmup": args.warmup,
        "epoch_length": trainer.state.epoch_length,
        "batch_shapes": counted[0]["shapes"],
        "steady": loop_summary(steady) if steady else None,
        "setup_s": round(setup_s, 2),
        "run_s": round(run_s, 2),
        "peak_gpu_memory_mib": None,
        "peak_gpu_memory_run_mib": None,
    }
    if cuda:  # the iterations' own peak, and the whole run's (setup, validation and checkpoints included)
        out["peak_gpu_memory_mib"] = round(clock.peak_mib(["batch", "done"]), 1)
        out["peak_gpu_memory_run_mib"] = round(clock.peak_mib(), 1)
    if len(counted) < args.iterations:
        out["note"] = f"the trainer stopped after {len(clock.records)} iterations"
    return out, wf


def run_inference(overrides: dict[str, Any], cuda: bool) -> dict[str, Any]:
    """Run spine_seg's inference.json over the CTs in ``overrides['dataset_dir']``; time each CT's steps."""
    from ignite.engine import Events
    from monai.engines.utils import IterationEvents

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    wf = workflow(REPO / "bundles" / "spine_seg" / "configs" / "inference.json", "infer", overrides)
    evaluator = wf.parser.get_parsed_content("evaluator")
    marks = {
        "start": Events.GET_BATCH_STARTED,
        "batch": Events.GET_BATCH_COMPLETED,
        "forward": IterationEvents.FORWARD_COMPLETED,
        "done": Events.ITERATION_COMPLETED,
    }
    clock = EventClock(marks, cuda).attach(evaluator)
    wf.run()
    wf.finalize()
    inferer = wf.parser.get_parsed_content("inferer")
    per_ct = [
        {
            "load_s": round(r["batch"] - r["start"], 3),
            "sliding_window_s": round(r["forward"] - r["batch"], 3),
            "postprocess_s": round(r["done"] - r["forward"], 3),
            "total_s": round(r["done"] - r["start"], 3),
        }
        for r in clock.records
    ]
    warm = per_ct[1:] or per_ct
    out = {
        "cts": len(per_ct),
        "resampled_shape": clock.records[0]["shapes"]["image"][2:],
        "pixdim": wf.parser.get_parsed_content("pixdim"),
        "roi_size": list(inferer.roi_size),
        "sw_batch_size": inferer.sw_batch_size,
        "overlap": inferer.overlap,
        "first": per_ct[0],
        **{f"{k}_median": statistics.median(c[k] for c in warm) for k in per_ct[0]},
        "per_ct": per_ct,
        "peak_gpu_memory_sliding_window_mib": round(clock.peak_mib(["forward"]), 1) if cuda else None,
        "peak_gpu_memory_mib": round(clock.peak_mib(), 1) if cuda else None,
    }
    out["sliding_window_s"] = out["sliding_window_s_median"]
    return out


def check_targets(name: str, result: dict[str, Any], judged: bool) -> dict[str, Any]:
    """Each target of ``name`` beside its figure; ``met`` only where ``judged`` (the run had the target's
    setting), else None. Training is judged on steady iterations/s: real datasets have long epochs."""
    train, inference = result.get("train") or {}, result.get("inference") or {}
    figures = {
        "train_iterations_per_s": (train.get("steady") or train).get("iterations_per_s"),
        "sliding_window_s": inference.get("sliding_window_s"),
    }
    out = {}
    for figure, (op, target, setting) in TARGETS.get(name, {}).items():
        value = figures.get(figure)
        met = None if value is None or not judged else (value >= target if op == ">=" else value <= target)
        out[figure] = {"target": f"{op} {target}", "setting": setting, "value": value, "met": met}
    return out


def has_target_setting(wf) -> bool:
    """Whether a spine_seg workflow runs in the setting its targets are stated for: 96^3 patches, feature size 48,
    on an H100-class (Hopper) GPU."""
    roi, feature = (wf.parser.get_parsed_content(k) for k in ("roi_size", "network_def#feature_size"))
    hopper = torch.cuda.is_available() and any(m in torch.cuda.get_device_name(0) for m in HOPPER)
    return list(roi) == [96, 96, 96] and feature == 48 and hopper


def measure(name: str, data: dict[str, Any], folder: str, work: Path, args, cuda: bool) -> dict[str, Any]:
    """Train ``name`` on the data in ``folder`` (and, for spine_seg, time its inference); outputs go to ``work``."""
    config = json.loads((REPO / "bundles" / name / "configs" / "train.json").read_text())
    device = {} if cuda else {"device": "$torch.device('cpu')", "amp": False}
    paths = {"ckpt_dir": "models", "output_dir": "eval", "embedding_cache_dir": "embedding_cache"}
    paths = {k: str(work / v) for k, v in paths.items() if k in config}
    data_paths = {"dataset_dir": str(Path(folder) / "train") if name == "spine_seg" else folder}
    data_paths["demo_dataset_dir"] = folder
    result: dict[str, Any] = {"overrides": {**data, **device}}
    result["train"], wf = run_training(name, {**data, **device, **paths, **data_paths}, args, cuda)
    result["amp"] = bool(wf.parser.get_parsed_content("amp"))
    if "backbone_weights" in data:
        result["backbone_weights"] = data["backbone_weights"]
    if name == "spine_seg":
        judged = cuda and not args.tiny and has_target_setting(wf)
        weights = work / "inference_models"
        weights.mkdir(parents=True, exist_ok=True)
        torch.save(wf.parser.get_parsed_content("network").state_dict(), weights / "model.pt")
        del wf
        gc.collect()
        infer = json.loads((TINY / f"{name}.json").read_text())["infer"] if args.tiny else {}
        infer.update(device, dataset_dir=str(Path(folder) / "ct"), ckpt_dir=str(weights))
        infer["output_dir"] = str(work / "inference")
        result["inference"] = run_inference(infer, cuda)
        result["targets"] = check_targets(name, result, judged)
    return result


def print_bundle(name: str, result: dict[str, Any]) -> None:
    """The bundle's figures, one line each, and its targets."""
    if "error" in result:
        print(f"{name}: FAILED: {result['error']}")
        return
    t = result["train"]
    steady = t["steady"] or t
    line = [
        f"{name}: {t['iterations_per_s']:.2f} it/s, {t['samples_per_s']:.2f} samples/s, batch {t['batch_shapes']}",
        f"stall {100 * t['stall_fraction']:.1f}%",
        f"steady {steady['iterations_per_s']:.2f} it/s, stall {100 * steady['stall_fraction']:.1f}%",
        f"{t['epoch_length']} it/epoch, amp {result['amp']}, trainer built in {t['setup_s']:.1f} s",
    ]
    if t["peak_gpu_memory_mib"] is not None:
        line.append(
            f"peak GPU memory {t['peak_gpu_memory_mib']:.0f} MiB (whole run {t['peak_gpu_memory_run_mib']:.0f})"
        )
    print("; ".join(line))
    if result.get("backbone_weights") == "random":
        print(f"{name}: RANDOM backbone weights were used (the official DINOv2 checkpoint is not in torch's hub cache)")
    inf = result.get("inference")
    if inf:
        print(
            f"{name} inference: sliding window {inf['sliding_window_s']:.2f} s per CT (first CT "
            f"{inf['first']['sliding_window_s']:.2f} s) on {inf['resampled_shape']} at {inf['pixdim']} mm, roi "
            f"{inf['roi_size']}, sw_batch_size {inf['sw_batch_size']}; load {inf['load_s_median']:.2f} s, "
            f"post-processing {inf['postprocess_s_median']:.2f} s, total {inf['total_s_median']:.2f} s"
            + (
                f", peak GPU memory {inf['peak_gpu_memory_sliding_window_mib']:.0f} MiB in the sliding window, "
                f"{inf['peak_gpu_memory_mib']:.0f} MiB in all"
                if inf["peak_gpu_memory_mib"]
                else ""
            )
        )
    for figure, target in result.get("targets", {}).items():
        verdict = {True: "MET", False: "NOT MET", None: "not judged: another setting"}[target["met"]]
        print(f"{name} target: {figure} {target['target']} ({target['setting']}): {target['value']} -> {verdict}")


def gpu_info() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", choices=BUNDLES, default=BUNDLES)
    parser.add_argument("--iterations", type=int, help="counted training iterations (default 30, tiny 3)")
    parser.add_argument("--warmup", type=int, help="uncounted first iterations (default 5, tiny 1)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (checks the code path; no GPU figures)")
    parser.add_argument("--tiny", action="store_true", help="each bundle's tiny overrides from tests/bundles/tiny")
    parser.add_argument("--ct-shape", type=int, nargs=3, help="spine_seg CT voxels (default 512 512 300)")
    parser.add_argument("--ct-spacing", type=float, nargs=3, help="spine_seg CT spacing in mm (default 0.8 0.8 1.5)")
    parser.add_argument("--data-dir", help="where the synthetic data is written and kept (default: a temp folder)")
    parser.add_argument("--jobs", type=int, help="processes writing data (default: one per bundle, up to cores/2)")
    parser.add_argument("--out", help=f"result JSON (default {RESULT.relative_to(REPO)}, for a GPU run)")
    parser.add_argument("--verbose", action="store_true", help="show the bundles' own INFO logs")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        print("No CUDA device: bench/gpu.py measures the bundles on a GPU; nothing was run (--cpu --tiny checks it).")
        return 0
    if (args.cpu or args.tiny) and not args.out:
        parser.error("--cpu / --tiny figures are not the GPU figures: write them elsewhere with --out")
    args.iterations = args.iterations or (3 if args.tiny else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    ct = dict(CT["tiny" if args.tiny else "real"])
    ct.update({k: tuple(v) for k, v in (("shape", args.ct_shape), ("spacing", args.ct_spacing)) if v})
    if not args.verbose:
        logging.disable(logging.INFO)

    scratch = Path(tempfile.mkdtemp(prefix="gpu_bench_"))
    data_root = Path(args.data_dir).absolute() if args.data_dir else scratch / "data"
    load_before = load_average()
    plans = {}
    for name in args.bundles:
        if args.tiny:  # the bench stops the trainer itself: the tiny max_epochs would end it too early
            data = {
                k: v for k, v in json.loads((TINY / f"{name}.json").read_text())["train"].items() if k != "max_epochs"
            }
        else:
            data = dict(REAL_DATA[name])
        if name == "brain_mri_classification":
            data.setdefault("backbone_weights", brain_weights())
        key = hashlib.sha1(json.dumps([data, ct if name == "spine_seg" else None], sort_keys=True).encode())
        plans[name] = (data, str(data_root / f"{name}-{key.hexdigest()[:10]}"))

    t0 = time.perf_counter()
    jobs = args.jobs or max(1, min(len(plans), (os.cpu_count() or 2) // 2))
    print(f"writing synthetic data to {data_root} ({jobs} process(es)) ...", flush=True)
    if jobs == 1:
        for name, (data, folder) in plans.items():
            prepare_data(name, folder, data, ct)
    else:
        quiet = {} if args.verbose else {"initializer": logging.disable, "initargs": (logging.INFO,)}
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), **quiet) as pool:
            for done in [pool.submit(prepare_data, name, folder, data, ct) for name, (data, folder) in plans.items()]:
                done.result()
    data_s = time.perf_counter() - t0
    print(f"data ready in {data_s:.0f} s", flush=True)

    results: dict[str, Any] = {}
    for name, (data, folder) in plans.items():
        print(f"{name}: measuring ...", flush=True)
        try:
            results[name] = measure(name, data, folder, scratch / name, args, cuda)
        except Exception as e:  # reported; the other bundles are still measured
            traceback.print_exc()
            results[name] = {"overrides": data, "error": f"{type(e).__name__}: {e}"}
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    report = {
        "machine": machine(),
        "gpu": gpu_info() if cuda else None,
        "command": " ".join(["python bench/gpu.py", *(sys.argv[1:] if argv is None else argv)]),
        "tiny": args.tiny,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "ct": {k: list(v) if isinstance(v, tuple) else v for k, v in ct.items()} if "spine_seg" in plans else None,
        "data_s": round(data_s, 1),
        "load_average": {"before": load_before, "after": load_average()},
        "bundles": results,
    }
    print(f"\n{'device ' + report['gpu']['name'] if cuda else 'CPU'}, load average {load_before} -> {load_average()}")
    for name, result in results.items():
        print_bundle(name, result)
    write_report("gpu", report, args.out or RESULT)
    shutil.rmtree(scratch, ignore_errors=True)  # outputs (and the data unless --data-dir keeps it elsewhere)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
