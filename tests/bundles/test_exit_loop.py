# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Nothing silent at exit: a run that stops on a bad case exits with its error, never with SIGABRT.

The cause of the random "terminate called without an active exception" (SIGABRT) at the end of short runs: MONAI's
``CacheDataset`` fills its cache in a thread pool it leaves without joining the threads. When one case raises, the
others are still running transforms; the error ends the interpreter, and a thread coming back from a torch operator
during shutdown is stopped by ``pthread_exit`` inside a ``noexcept`` destructor.
``shared.cache.CacheDataset`` waits for them. The loop runs a tiny caching workflow that fails on its
first case (``exit_probe.py``) in fresh interpreters, as many times as fit in ``LOOP_BUDGET_S`` (the interpreter's
own exit is what is tested, so the runs cannot be forked from a preloaded process, which ends with ``os._exit``).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from monai.transforms import Transform

from shared.cache import CacheDataset
from shared.spine.phantom import write_spine_phantom_dataset
from tests.conftest import PYTHON, run_env

LOOP_BUDGET_S = 45
MIN_RUNS = 3
PROBE = Path(__file__).with_name("exit_probe.py")


class _SlowOrBad(Transform):
    """Case 0 fails at once; every other case runs torch operators for a while."""

    def __call__(self, item):
        if item["i"] == 0:
            raise ValueError("case 0 is broken")
        x = torch.ones(32, 32, 32)
        for _ in range(50):
            x = torch.nn.functional.avg_pool3d(x[None], 3, 1, 1)[0]
        return {"x": x}


def test_a_failing_case_leaves_no_cache_thread_running():
    before = threading.active_count()
    with pytest.raises(RuntimeError) as err:
        CacheDataset([{"i": i} for i in range(8)], _SlowOrBad(), num_workers=4, progress=False)
    assert "case 0 is broken" in str(err.value.__cause__ or err.value)
    assert threading.active_count() == before, [t.name for t in threading.enumerate()]


def test_the_cache_is_filled_in_order():
    class _Double(Transform):
        def __call__(self, item):
            return {"x": item["i"] * 2}

    dataset = CacheDataset([{"i": i} for i in range(6)], _Double(), num_workers=3, progress=False)
    assert [dataset[i]["x"] for i in range(6)] == [0, 2, 4, 6, 8, 10]


def test_runs_that_fail_on_a_bad_case_exit_cleanly_in_a_loop(tmp_path):
    write_spine_phantom_dataset(tmp_path, num_cases=6, shape=(48, 48, 64), spacing=(3.0, 3.0, 3.0))
    broken = tmp_path / "images" / "spine_000.nii.gz"
    broken.write_bytes(b"")
    runs, start = [], time.time()
    while len(runs) < MIN_RUNS or time.time() - start < LOOP_BUDGET_S:
        run = subprocess.run(
            [PYTHON, str(PROBE), str(tmp_path), "4"], env=run_env(), capture_output=True, text=True, timeout=300
        )
        runs.append(run)
        assert (
            run.returncode != -signal.SIGABRT and "terminate called" not in run.stderr
        ), f"run {len(runs)} aborted at exit:\n{run.stderr[-3000:]}"
        assert run.returncode == 1, (run.returncode, run.stderr[-3000:])
        assert str(broken) in run.stderr  # the error that stopped it is the one shown
    print(f"{len(runs)} runs in {time.time() - start:.0f} s, all exited with status 1 and their error")
