# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The benchmark method every bundle's bench uses: candidates timed in one process, interleaved after warm-up.

Timing model A, then B, then A again (A, B, A, B, ...) spreads whatever else the machine does over all candidates
alike; a block of repeats per model cannot tell two models apart on a shared, noisy machine. Each report gives the
min and median of every candidate, their ratios to a reference, the load average before and after, the thread
count, the CPU's AMX / AVX-512 flags and the torch version, and says so when the load exceeded the threads.

    from compare import interleaved, machine, write_report

    timings = interleaved({"ours": step_ours, "peer": step_peer}, rounds=7, warmup=1)
    report = {"machine": machine(), "step": summarise(timings, reference="peer")}
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["interleaved", "summarise", "machine", "load_average", "peak_rss_mib", "write_report", "print_summary"]

RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def _cpu_flags() -> dict[str, Any]:
    flags, model = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ("amx_bf16", "amx_tile", "amx_int8", "avx512f", "avx512_bf16", "avx512_vnni")
    return {"model": model, "flags": sorted(f for f in wanted if f in flags)}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = _cpu_flags()
    return {
        "platform": platform.platform(),
        "cpu": cpu["model"],
        "cpu_flags": cpu["flags"],
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(
    candidates: Mapping[str, Callable[[], Any]], rounds: int = 7, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of every candidate: ``warmup`` untimed rounds, then ``rounds`` rounds in which each candidate
    runs once, in the same order every round. Also records the load average before and after (key ``"_load"``)."""
    load_before = load_average()
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            _sync()
            t0 = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - t0)
    times["_load"] = [load_before, load_average()]
    return times


def summarise(times: Mapping[str, list[float]], reference: str | None = None) -> dict[str, Any]:
    """Min and median of each candidate (seconds) and, given a ``reference``, the ratios of both to its own."""
    out: dict[str, Any] = {}
    for name, ts in times.items():
        if name == "_load":
            continue
        out[name] = {"min_s": min(ts), "median_s": statistics.median(ts), "rounds": len(ts)}
    if reference is not None:
        ref = out[reference]
        for name, s in out.items():
            if name != reference:
                s[f"min_ratio_to_{reference}"] = s["min_s"] / ref["min_s"]
                s[f"median_ratio_to_{reference}"] = s["median_s"] / ref["median_s"]
    if "_load" in times:
        before, after = times["_load"]
        threads = torch.get_num_threads()
        out["_load"] = {"before": before, "after": after, "threads": threads, "busy": max(before, after) > threads}
    return out


def print_summary(title: str, summary: Mapping[str, Any]) -> None:
    """One line per candidate: min, median and the ratios; a warning when the machine was busy."""
    print(f"{title}:")
    for name, s in summary.items():
        if name == "_load":
            continue
        ratios = ", ".join(f"{k.replace('_ratio_to_', ' ratio to ')} {v:.3f}" for k, v in s.items() if "ratio" in k)
        line = f"  {name:>24}: min {s['min_s']:.4f} s, median {s['median_s']:.4f} s"
        print(line + (f" ({ratios})" if ratios else ""))
    load = summary.get("_load")
    if load:
        print(f"  load average {load['before']} -> {load['after']} on {load['threads']} threads")
        if load["busy"]:
            print("  WARNING: the load average exceeded the thread count: the machine was busy, figures are unreliable")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss`` survives ``fork`` + ``exec``, so a fresh
    worker process would report its parent's peak (a bench parent holding every model) instead of its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if platform.system() == "Linux" else 2**20)


def write_report(name: str, report: Mapping[str, Any], out: str | os.PathLike | None = None) -> Path:
    """Write ``bench/results/<name>.json`` (or ``out``) atomically and return its path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(f"written to {path}")
    return path
