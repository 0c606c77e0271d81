"""Benchmark of AI-CNet3D (every attention type) against a MONAI DenseNet121 3D baseline.

Measures, at the paper's input size 128 x 192 x 112 (batch 1 by default): a stage-1 training step (forward +
backward of cross-entropy), a stage-2 step (Grad-CAM with ``create_graph`` + consistency loss + backward), inference
time, peak memory, parameters and forward GFLOPs. Each model runs in its own process so peak memory is its own.
Prints a table and the ratios, and writes ``bench/results/glaucoma_oct_classification.json``.

    python bench/glaucoma_oct_classification.py --threads 2 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "glaucoma_oct_classification.json")
MODELS = ("hemiretinal", "onh_macula", "both", "none", "densenet121")
# public AI-CNet3D (hemiretinal), one forward+backward at batch 1, 128x192x112, 2 CPU threads (team measurement)
PUBLIC_STAGE1_S = 2.2
PUBLIC_STAGE2_RATIO = 1.6


def _timed(fn, reps: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def worker(name: str, size: tuple[int, int, int], batch: int, reps: int, threads: int, device: str) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, ROOT)
    from shared.losses.consistency import MultiTaskConsistencyLoss
    from shared.networks.ai_cnet3d import AICNet3D, ExplainInferer

    torch.set_num_threads(threads)
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    if name == "densenet121":
        from monai.networks.nets import DenseNet121

        net = DenseNet121(spatial_dims=3, in_channels=1, out_channels=2)
    else:
        net = AICNet3D(attention_type=name)
    net = net.to(dev)
    x = torch.rand(batch, 1, *size, device=dev)
    y = torch.arange(batch, device=dev) % 2
    params = sum(p.numel() for p in net.parameters())
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(x)
    gflops = fc.get_total_flops() / 1e9 / batch

    def stage1():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()

    loss2 = MultiTaskConsistencyLoss(lam=0.75)
    inferer = ExplainInferer(create_graph=True)

    def stage2():
        net.zero_grad(set_to_none=True)
        loss2(inferer(x, net), y).backward()

    def infer():
        with torch.no_grad():
            net(x)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    net.train()
    out = {"model": name, "params": params, "gflops_forward": round(gflops, 2)}
    out["stage1_step_s"] = _timed(stage1, reps, sync)
    if name not in ("none", "densenet121"):
        out["stage2_step_s"] = _timed(stage2, reps, sync)
    net.eval()
    out["inference_s"] = _timed(infer, reps, sync)
    if dev.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=3, default=(128, 192, 112), help="S A L input size")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, tuple(args.size), args.batch, args.reps, args.threads, args.device)))
        return
    rows = []
    for name in args.models:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--size", *map(str, args.size)]
        cmd += ["--batch", str(args.batch), "--reps", str(args.reps), "--threads", str(args.threads)]
        cmd += ["--device", args.device]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"benchmark of {name} failed:\n{res.stderr[-3000:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{name:12s} params {r['params']:>10,d}  GFLOPs {r['gflops_forward']:7.1f}"
            f"  stage1 {r['stage1_step_s']:.3f}s"
            f"  stage2 {r.get('stage2_step_s', float('nan')):.3f}s  infer {r['inference_s']:.3f}s"
            f"  peak {r['peak_memory_mb']:.0f} MB",
            flush=True,
        )
    by = {r["model"]: r for r in rows}
    ratios = {}
    for name, r in by.items():
        if "stage2_step_s" in r:
            ratios[f"{name}_stage2_over_stage1"] = r["stage2_step_s"] / r["stage1_step_s"]
        if args.device == "cpu" and args.threads == 2 and tuple(args.size) == (128, 192, 112) and args.batch == 1:
            ratios[f"{name}_stage1_over_public_{PUBLIC_STAGE1_S}s"] = r["stage1_step_s"] / PUBLIC_STAGE1_S
        if "densenet121" in by and name != "densenet121":
            ratios[f"{name}_stage1_over_densenet121"] = r["stage1_step_s"] / by["densenet121"]["stage1_step_s"]
            ratios[f"{name}_params_over_densenet121"] = r["params"] / by["densenet121"]["params"]
    print("ratios:")
    for k, v in ratios.items():
        print(f"  {k}: {v:.3f}")
    result = {
        "config": {
            "size": list(args.size),
            "batch": args.batch,
            "reps": args.reps,
            "threads": args.threads,
            "device": args.device,
            "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
        },
        "targets": {"stage1_vs_public_s": PUBLIC_STAGE1_S, "stage2_over_stage1_max": 1.3},
        "models": rows,
        "ratios": ratios,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
