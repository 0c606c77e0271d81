# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""bench/compare.py: the interleaved method every bundle's benchmark uses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402


def test_candidates_run_interleaved_after_warmup():
    calls = []
    times = compare.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=2)
    assert calls == ["a", "b"] * 5  # 2 warm-up rounds, then 3 timed ones, A B A B ...
    assert len(times["a"]) == len(times["b"]) == 3 and len(times["_load"]) == 2


def test_summary_ratios_and_busy_flag(monkeypatch):
    monkeypatch.setattr(compare.torch, "get_num_threads", lambda: 2)
    times = {"peer": [2.0, 4.0, 3.0], "ours": [1.0, 1.5, 3.0], "_load": [0.5, 2.5]}
    s = compare.summarise(times, reference="peer")
    assert s["ours"]["min_s"] == 1.0 and s["ours"]["median_s"] == 1.5
    assert s["ours"]["min_ratio_to_peer"] == pytest.approx(0.5)
    assert s["ours"]["median_ratio_to_peer"] == pytest.approx(0.5)
    assert s["_load"]["busy"]  # 2.5 > 2 threads
    assert not compare.summarise({**times, "_load": [0.5, 1.5]}, "peer")["_load"]["busy"]


def test_report_written_atomically(tmp_path):
    path = compare.write_report("x", {"a": 1}, tmp_path / "r.json")
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_worker_process_reports_its_own_peak_not_its_parents():
    hold = bytearray(300 * 2**20)  # the parent's peak is at least 300 MiB above the child's
    hold[::4096] = b"x" * len(hold[::4096])
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import compare; print(compare.peak_rss_mib())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert compare.peak_rss_mib() - child > 250
