"""Benchmark of AdaptiveSwinUNETR (spine_seg bundle) against MONAI's SwinUNETR at the same feature size and patch.

Variants: MONAI ``SwinUNETR``, ``+msf`` (multi-scale fusion only), ``+adaptive`` (adaptive attention only) and
``full`` (both). For each: parameters, a training step (forward + backward + AdamW step, median of ``--repeats``),
sliding-window inference over a volume of ``--volume`` voxels (median), and peak memory (CUDA peak allocated on a
GPU; on a CPU the peak resident set of a fresh process that runs only that variant). Prints the ratios to SwinUNETR
and writes ``bench/results/spine_seg.json``. Targets: each improvement at most +20% step time and +15% parameters.

    python bench/spine_seg.py                                  # the bundle's real setting: feature 48, 96^3 patches
    python bench/spine_seg.py --feature-size 24 --roi 64       # a quicker look on a CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monai.inferers import SlidingWindowInferer  # noqa: E402
from monai.networks.nets import SwinUNETR  # noqa: E402

from shared.networks import AdaptiveSwinUNETR  # noqa: E402

VARIANTS = {
    "swin_unetr": None,
    "+msf": dict(use_msf=True, adaptive_attention=False),
    "+adaptive": dict(use_msf=False, adaptive_attention=True),
    "full": dict(use_msf=True, adaptive_attention=True),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(name: str, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    common = dict(in_channels=1, out_channels=args.classes, feature_size=args.feature_size)
    net = SwinUNETR(**common) if VARIANTS[name] is None else AdaptiveSwinUNETR(**common, **VARIANTS[name])
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(args.batch, 1, *[args.roi] * 3, device=device)
    y = torch.randint(0, args.classes, (args.batch, *[args.roi] * 3), device=device)
    amp = device.type == "cuda"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    steps = []
    for i in range(args.repeats + 1):  # the first one warms up
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        if i:
            steps.append(time.perf_counter() - t0)

    net.eval()
    inferer = SlidingWindowInferer(roi_size=[args.roi] * 3, sw_batch_size=args.sw_batch_size, overlap=0.25)
    volume = torch.rand(1, 1, *args.volume, device=device)
    infers = []
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        for i in range(args.infer_repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            inferer(volume, net)
            _sync(device)
            if i:
                infers.append(time.perf_counter() - t0)
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "train_step_s": statistics.median(steps),
        "inference_s": statistics.median(infers),
        "peak_memory_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--feature-size", type=int, default=48)
    parser.add_argument("--roi", type=int, default=96)
    parser.add_argument("--volume", type=int, nargs=3, default=[160, 160, 160])
    parser.add_argument("--classes", type=int, default=25)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--sw-batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--infer-repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "spine_seg.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:  # one variant in its own process, so its peak memory is its own
        print(json.dumps(run_variant(args.worker, args)))
        return

    results = {}
    for name in VARIANTS:
        cmd = [sys.executable, __file__, "--worker", name] + [a for a in sys.argv[1:] if a != "--worker"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results[name] = json.loads(out)
        print(f"{name:>11}: {results[name]}", flush=True)
    base = results["swin_unetr"]
    ratios = {
        name: {k: r[k] / base[k] for k in ("params", "train_step_s", "inference_s", "peak_memory_mib")}
        for name, r in results.items()
        if name != "swin_unetr"
    }
    print(f"\nratios to SwinUNETR (feature_size {args.feature_size}, patch {args.roi}^3, {args.device}):")
    for name, r in ratios.items():
        print(f"{name:>11}: " + ", ".join(f"{k} x{v:.3f}" for k, v in r.items()))
    report = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "out")},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "results": results,
        "ratios_to_swin_unetr": ratios,
        "targets": {"train_step_s": 1.2, "params": 1.15},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
