# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Does spine_seg train at the speed of its network, or of its data path? A training iteration of the bundle's own
trainer against the network's own step, interleaved in one process.

The trainer is the bundle's ``train#trainer`` built by MONAI's ``ConfigWorkflow`` from ``train.json`` +
``mri_lumbar.json`` + ``cpu_budget.json`` on the real lumbar MRI beside the repository
(``../shared/data/spine_mri_myosegmentum``), with its data loader, cache, patch sampler, augmentation, training
metric and handlers. A round is one epoch of it (A: from the epoch's start to its last iteration's end, per
iteration, so waiting for the data loader and starting its iterator count), then as many bare steps of the same
network, loss and optimiser on a batch of the same shape held in memory (B: forward, loss, backward, optimiser
step; the median). A / B is what the data path and the trainer cost on top of the network. Validation is not part
of it (``val_interval`` past the run); the first round warms up.

    python bench/spine_seg_iteration.py                     # 5 epochs of 18 iterations, 2 threads, for
                                                            # num_workers 0 (the CPU default) and 2
    python bench/spine_seg_iteration.py --num_workers 0 --epochs 3

Writes ``bench/results/spine_seg_iteration.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from compare import load_average, machine, write_report  # noqa: E402

CONFIGS = REPO / "bundles" / "spine_seg" / "configs"
DATA = REPO.parent / "shared" / "data" / "spine_mri_myosegmentum"
RECIPE = ["train.json", "mri_lumbar.json", "cpu_budget.json"]


def measure(data: Path, epochs: int, num_workers: int | None) -> dict:
    """Rounds of (one trainer epoch, as many bare steps) with the given loader setting (None: the config's)."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        overrides = dict(
            dataset_dir=str(data),
            ckpt_dir=f"{tmp}/models",
            output_dir=f"{tmp}/eval",
            max_epochs=epochs,
            val_interval=epochs + 1,
            overwrite=True,
            resume=False,
        )
        if num_workers is not None:
            overrides["num_workers"] = num_workers
        wf = ConfigWorkflow(config_file=[str(CONFIGS / c) for c in RECIPE], workflow_type="train", **overrides)
        wf.initialize()
        trainer = wf.parser.get_parsed_content("train#trainer")
        network, loss, optimizer = trainer.network, trainer.loss_function, trainer.optimizer
        held: dict = {}
        rounds: list[dict] = []
        mark = {"start": 0.0, "last": 0.0}

        def bare_step() -> float:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss(network(held["image"]), held["label"]).backward()
            optimizer.step()
            return time.perf_counter() - t0

        @trainer.on(Events.EPOCH_STARTED)
        def _epoch_started(engine) -> None:
            mark["start"] = time.perf_counter()

        @trainer.on(Events.ITERATION_COMPLETED)
        def _iteration_completed(engine) -> None:
            mark["last"] = time.perf_counter()
            if not held:  # the trainer's post-processing has decollated the batch into a list of cases
                batch = engine.state.batch
                for key in ("image", "label"):
                    cases = [case[key] for case in batch] if isinstance(batch, list) else [batch[key]]
                    held[key] = torch.cat([torch.as_tensor(c).reshape(-1, *c.shape[-4:]) for c in cases]).clone()

        @trainer.on(Events.EPOCH_COMPLETED)
        def _epoch_completed(engine) -> None:
            n = engine.state.epoch_length
            iteration = (mark["last"] - mark["start"]) / n
            steps = [bare_step() for _ in range(n)]  # B: as many bare steps, right after the epoch (A)
            if engine.state.epoch > 1:  # the first round warms up
                rounds.append({"iteration_s": iteration, "step_s": statistics.median(steps), "steps": steps})

        load_before = load_average()
        wf.run()
        wf.finalize()
        config = {k: wf.parser.get_parsed_content(k) for k in ("num_workers", "roi_size", "pixdim", "batch_size")}
    ratios = [r["iteration_s"] / r["step_s"] for r in rounds]
    iterations, steps = [r["iteration_s"] for r in rounds], [s for r in rounds for s in r["steps"]]
    return {
        "config": config,
        "rounds": len(rounds),
        "iterations_per_round": len(rounds[0]["steps"]),
        "iteration_s": {"min": min(iterations), "median": statistics.median(iterations)},
        "network_step_s": {"min": min(steps), "median": statistics.median(steps)},
        "ratio": {"min": min(ratios), "median": statistics.median(ratios), "per_round": ratios},
        "load_average": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with images/ and labels/")
    parser.add_argument("--epochs", type=int, default=5, help="rounds + 1 (the first warms up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--num_workers", type=int, nargs="+", default=[0, 2], help="loader settings to measure, one after the other"
    )
    args = parser.parse_args()
    if not (args.data / "images").is_dir():
        sys.exit(f"the lumbar MRI is not at {args.data} (expected images/ and labels/)")
    torch.set_num_threads(args.threads)
    settings = {}
    for workers in args.num_workers:
        result = settings[f"num_workers={workers}"] = measure(args.data, args.epochs, workers)
        print(
            f"num_workers {workers}: iteration / network step min {result['ratio']['min']:.3f}, median "
            f"{result['ratio']['median']:.3f} ({result['iteration_s']['median']:.2f} s / "
            f"{result['network_step_s']['median']:.2f} s, {result['rounds']} rounds of "
            f"{result['iterations_per_round']}); load average {result['load_average']}, {args.threads} threads",
            flush=True,
        )
    report = {
        "what": "spine_seg training iteration (bundle trainer, real lumbar MRI) / the network's own step, "
        "interleaved by epoch (A: one epoch of the trainer per iteration, B: as many bare steps)",
        "configs": RECIPE,
        "settings": settings,
        "machine": {**machine(), "threads": args.threads},
    }
    write_report("spine_seg_iteration", report)


if __name__ == "__main__":
    main()
