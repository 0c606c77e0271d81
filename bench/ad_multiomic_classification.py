"""
Benchmark of the ACMCA classifier (ad_multiomic_classification bundle): full model (asymmetric cross-attention)
against the concatenation baseline (``fusion="concat"``), same encoders and deep branches.

Measures, per model: parameters, one training step (forward + backward + Adam step) at the given batch size,
inference per subject (batch 1, eval mode, no grad), and peak memory (CUDA peak allocated on GPU; on CPU the peak
resident set size of a fresh process that runs only that model, so the two models never share a peak). Prints the
ratios full/baseline and writes ``bench/results/ad_multiomic_classification.json``.

    python bench/ad_multiomic_classification.py [--device cuda] [--batch 32] [--repeats 5] [--threads N]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.networks.acmca import ACMCA  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _inputs(batch: int, args: argparse.Namespace, device: torch.device):
    image = torch.rand(batch, 2, args.size, args.size, device=device)
    snp = torch.randint(0, 3, (batch, args.snps), device=device).float()
    clinical = torch.randn(batch, args.clinical, device=device)
    label = torch.randint(0, 3, (batch,), device=device)
    return image, snp, clinical, label


def bench_model(fusion: str, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    net = ACMCA(
        snp_features=args.snps,
        clinical_features=args.clinical,
        img_size=(args.size, args.size),
        backbone=args.backbone,
        fusion=fusion,
    ).to(device)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    image, snp, clinical, label = _inputs(args.batch, args, device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(image, snp, clinical), label).backward()
        opt.step()

    net.train()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step()  # warm-up (allocator, kernels, Adam state)
    _sync(device)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _peak_rss_mb()

    net.eval()
    one = [x[:1] for x in (image, snp, clinical)]
    with torch.no_grad():
        net(*one)
        _sync(device)
        inf = []
        for _ in range(max(args.repeats, 5)):
            t = time.perf_counter()
            net(*one)
            _sync(device)
            inf.append(time.perf_counter() - t)
    return {
        "fusion": fusion,
        "parameters": params,
        "train_step_s": statistics.median(times),
        "train_step_s_all": times,
        "inference_per_subject_s": statistics.median(inf),
        "peak_memory_mb": peak,
        "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "cpu_process_peak_rss",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=32, help="training batch size (paper: 32)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--snps", type=int, default=15000)
    ap.add_argument("--clinical", type=int, default=7)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--single", default=None, help=argparse.SUPPRESS)  # internal: one model, JSON on stdout
    ap.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "ad_multiomic_classification.json"),
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.single:
        print("RESULT " + json.dumps(bench_model(args.single, args, device)))
        return
    load_before = os.getloadavg()
    res = {}
    for fusion in ("concat", "asymmetric"):  # one process per model: separate CPU peak RSS and allocator state
        cmd = [sys.executable, os.path.abspath(__file__), "--single", fusion] + sys.argv[1:]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res[fusion] = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("RESULT ")))
    base, full = res["concat"], res["asymmetric"]
    ratios = {
        k: full[k] / base[k] if base[k] else float("nan")
        for k in ("parameters", "train_step_s", "inference_per_subject_s", "peak_memory_mb")
    }
    result = {
        "bundle": "ad_multiomic_classification",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_before_after": [load_before, os.getloadavg()],
        "settings": {k: getattr(args, k) for k in ("batch", "repeats", "size", "snps", "clinical", "backbone")},
        "full_asymmetric": full,
        "baseline_concat": base,
        "ratio_full_over_concat": ratios,
    }
    for name, r in (("full (asymmetric)", full), ("baseline (concat)", base)):
        print(
            f"{name:20s} params {r['parameters']:>11,d}  train step {r['train_step_s']:.3f} s (batch {args.batch})  "
            f"inference {1000 * r['inference_per_subject_s']:.1f} ms/subject  peak {r['peak_memory_mb']:.0f} MiB "
            f"({r['peak_memory_kind']})"
        )
    print("ratios full/concat: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
