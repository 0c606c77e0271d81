# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Benchmark of the MONAI Label server under a burst of concurrent ``/infer`` requests.

Starts the real server on 127.0.0.1 with every servable bundle (tiny network settings, tiny weights, as
``tests/bundles/test_monailabel_load.py`` sets it up), warms each model with one request, then sends ``--requests``
requests (each a different small volume, the bundles in turn) keeping ``--in-flight`` of them open. Every result is
checked. Reports throughput (requests per second over the burst), the latency percentiles p50 / p90 / p99 (from
send to full response, so they include queueing: MONAI Label 0.8.5 runs one inference at a time) overall and per
bundle, the server's resident memory before and after, and the load average; writes
``bench/results/monailabel_load.json``. One server is measured, so there are no candidates to interleave.

    python bench/monailabel_load.py                          # 16 in flight, 64 requests
    python bench/monailabel_load.py --in-flight 4 --requests 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path[0:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from compare import load_average, machine, write_report  # noqa: E402

from tests.bundles.test_monailabel_load import (  # noqa: E402
    _rss,
    check_result,
    infer,
    make_volume,
    start_server,
    stop_server,
)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return {"n": len(latencies), "p50_s": round(p50, 3), "p90_s": round(p90, 3), "p99_s": round(p99, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in-flight", type=int, default=16, help="requests kept open at once")
    parser.add_argument("--requests", type=int, default=64, help="requests in the burst")
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/monailabel_load.json)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_server(root)
        try:
            url, names = server["url"], server["names"]
            for name in names:
                volume = make_volume(name, 10_000, root)
                check_result(name, volume, infer(url, name, volume), root / "warm-up.nii.gz")
            jobs = [(names[i % len(names)], i) for i in range(args.requests)]
            volumes = {job: make_volume(job[0], job[1], root) for job in jobs}
            rss_before, load_before = _rss(server["proc"].pid), load_average()

            def send(job):
                start = time.perf_counter()
                response = infer(url, job[0], volumes[job])
                return job, response, time.perf_counter() - start

            start = time.perf_counter()
            with ThreadPoolExecutor(args.in_flight) as pool:
                results = list(pool.map(send, jobs))
            wall = time.perf_counter() - start
            rss_after, load_after = _rss(server["proc"].pid), load_average()
            for job, response, _ in results:
                check_result(job[0], volumes[job], response, root / f"out_{job[1]}.nii.gz")
        finally:
            stop_server(server)

    latencies = [t for _, _, t in results]
    report = {
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_after},
        "in_flight": args.in_flight,
        "requests": args.requests,
        "bundles": names,
        "wall_s": round(wall, 3),
        "throughput_rps": round(args.requests / wall, 3),
        "latency": _percentiles(latencies),
        "latency_per_bundle": {n: _percentiles([t for (m, _), _, t in results if m == n]) for n in names},
        "server_rss_mib": {"before": round(rss_before / 2**20, 1), "after": round(rss_after / 2**20, 1)},
        "note": "provisional when the load average exceeded the cores",
    }
    print(f"{args.requests} requests, {args.in_flight} in flight, bundles {', '.join(names)}")
    print(f"throughput {report['throughput_rps']} requests/s over {report['wall_s']} s")
    print(
        f"latency p50 / p90 / p99: {report['latency']['p50_s']} / {report['latency']['p90_s']} / "
        f"{report['latency']['p99_s']} s"
    )
    for n, p in report["latency_per_bundle"].items():
        print(f"  {n}: p50 {p['p50_s']} s, p90 {p['p90_s']} s, p99 {p['p99_s']} s ({p['n']} requests)")
    print(
        f"server RSS {report['server_rss_mib']['before']} -> {report['server_rss_mib']['after']} MiB; "
        f"load average {load_before} -> {load_after}"
    )
    write_report("monailabel_load", report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
