# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""bench/gpu.py's code path on a CPU: every bundle's real training workflow (tiny overrides) stopped by the bench,
its loop timed through ignite's events, spine_seg's inference timed per CT, and the report it writes."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest
import torch
from ignite.engine import Engine, Events

from tests.conftest import BUNDLES, PYTHON, REPO, run_env

GPU_BENCH = str(REPO / "bench" / "gpu.py")


def _bench_module():
    spec = importlib.util.spec_from_file_location("gpu_bench", GPU_BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FakeTime:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


class _Loader:
    """Three batches an epoch; fetching one takes 0.25 s of the fake clock."""

    def __init__(self, clock):
        self.clock = clock

    def __len__(self):
        return 3

    def __iter__(self):
        for i in range(3):
            self.clock.now += 0.25
            yield {"image": torch.zeros(2, 1, 4, 4)}


def test_event_clock_times_loader_and_step_apart_from_epoch_end_work(monkeypatch):
    """On a fake clock: a step of 1 s after a 0.25 s fetch, 100 s of epoch-end work (validation) in between."""
    gpu = _bench_module()
    fake = _FakeTime()
    monkeypatch.setattr(gpu, "time", fake)

    def step(engine, batch):
        fake.now += 1.0

    engine = Engine(step)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: setattr(fake, "now", fake.now + 100.0))
    marks = {"start": Events.GET_BATCH_STARTED, "batch": Events.GET_BATCH_COMPLETED, "done": Events.ITERATION_COMPLETED}
    clock = gpu.EventClock(marks, cuda=False, stop_after=7).attach(engine)
    engine.run(_Loader(fake), max_epochs=10)

    assert len(clock.records) == 7 and engine.state.iteration == 7, "the engine is stopped after stop_after records"
    assert [r["first_of_epoch"] for r in clock.records] == [True, False, False] * 2 + [True]
    summary = gpu.loop_summary(clock.records)
    assert summary["seconds"] == pytest.approx(7 * 1.25), "epoch-end work must fall outside the iterations"
    assert summary["iterations_per_s"] == pytest.approx(0.8) and summary["samples_per_s"] == pytest.approx(1.6)
    assert summary["stall_fraction"] == pytest.approx(0.2)
    assert clock.records[0]["shapes"] == {"image": [2, 1, 4, 4]}


def test_gpu_bench_runs_every_bundle_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    # two counted iterations, no warm-up: enough for a steady figure (each tiny epoch has two or more iterations)
    cmd = [PYTHON, GPU_BENCH, "--cpu", "--tiny", "--iterations", "2", "--warmup", "0", "--out", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] and report["gpu"] is None and report["machine"]["torch"] == torch.__version__
    assert set(report["bundles"]) == set(BUNDLES)
    for name, result in report["bundles"].items():
        train = result["train"]
        assert train["iterations"] == 2 and train["iterations_per_s"] > 0 and train["samples_per_s"] > 0, name
        assert 0.0 <= train["stall_fraction"] <= 1.0, name
        assert train["batch_shapes"] and result["amp"] is False, name
    assert report["bundles"]["brain_mri_classification"]["backbone_weights"] == "random"
    assert "RANDOM backbone weights" in done.stdout

    inference = report["bundles"]["spine_seg"]["inference"]
    assert inference["cts"] == 2 and len(inference["per_ct"]) == 2
    for ct in inference["per_ct"]:
        assert 0 < ct["sliding_window_s"] <= ct["total_s"] and ct["load_s"] >= 0
    # the CT is resampled to the tiny pixdim (3 mm) before the sliding window: 64 x 64 x 48 at 2 x 2 x 3 mm
    assert inference["resampled_shape"] == [43, 43, 48] and inference["pixdim"] == [3.0, 3.0, 3.0]
    targets = report["bundles"]["spine_seg"]["targets"]
    assert set(targets) == {"train_iterations_per_s", "sliding_window_s"}
    assert all(t["met"] is None for t in targets.values()), "a tiny CPU run must not be judged against GPU targets"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the command runs the full benchmark")
def test_gpu_bench_without_cuda_says_so_and_exits_0(tmp_path):
    done = subprocess.run([PYTHON, GPU_BENCH], cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().count("\n") == 0 and "No CUDA device" in done.stdout

    # CPU or tiny figures never land in bench/results/gpu.json by default
    done = subprocess.run([PYTHON, GPU_BENCH, "--cpu"], cwd=tmp_path, env=run_env(), capture_output=True, text=True)
    assert done.returncode == 2 and "--out" in done.stderr
