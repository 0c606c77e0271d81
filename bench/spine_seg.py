# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Benchmark of AdaptiveSwinUNETR (spine_seg bundle) against MONAI's SwinUNETR at the same feature size and patch.

Variants: MONAI ``SwinUNETR``, ``+msf`` (multi-scale fusion only), ``+adaptive`` (adaptive attention only) and
``full`` (both, the bundle's network). Timed with ``bench/compare.py``: all variants in one process, interleaved
round by round after a warm-up, min and median and their ratios to SwinUNETR, the load average before and after.

- training step: forward + DiceCE + backward + AdamW step, batch 1, one patch;
- inference: sliding-window pass (the bundle's inferer: overlap 0.25, Gaussian blending) over ``--volume``;
- parameters;
- peak memory: a fresh process per variant and task (CUDA: peak allocated; CPU: peak resident set, and its rise
  over the process's resident set once the network is built);
- the dataset cache: resident memory per cached case of the bundle's deterministic transforms on demo phantoms,
  against ``shared.cache``'s estimate from the headers.

``--levers`` adds the full network with its speed levers switched on one at a time (one fusion kernel, fused
attention, channels-last), SwinUNETR with the fused attention and channels-last, and SwinUNETR with MONAI's own
``use_flash_attention`` (which acts at inference only), to say what each lever buys.
Targets (full vs SwinUNETR): step <= 1.00x, inference <= 1.00x, parameters <= 1.01x, peak memory <= 1.05x.

    python bench/spine_seg.py --threads 2                  # feature 24, 64^3 patches, 7 rounds (default)
    python bench/spine_seg.py --threads 2 --levers         # ... and what each lever buys
    python bench/spine_seg.py --threads 2 --real           # the bundle's recipe: feature 48, 96^3 (slow on a CPU)
    python bench/spine_seg.py --threads 2 --real --variants swin_unetr full --volume 96 96 96   # ... quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare import interleaved, load_average, machine, peak_rss_mib, print_summary, summarise, write_report  # noqa
from monai.inferers import SlidingWindowInferer  # noqa: E402
from monai.losses import DiceCELoss  # noqa: E402
from monai.networks.nets import SwinUNETR  # noqa: E402

from shared.networks.adaptive_swin_unetr import AdaptiveSwinUNETR, FusedWindowAttention, MultiScaleFusion  # noqa: E402

VARIANTS = {
    "swin_unetr": None,
    "+msf": dict(use_msf=True, adaptive_attention=False),
    "+adaptive": dict(use_msf=False, adaptive_attention=True),
    "full": dict(use_msf=True, adaptive_attention=True),
}
# the full network with its speed levers added one at a time (``full`` has all three)
LEVERS = {
    "swin_unetr, MONAI's flash option": dict(monai=True, use_flash_attention=True),  # MONAI's: inference only
    "full, no lever": dict(fast_path=False, msf_kernel=False),
    "full + one fusion kernel": dict(fast_path=False),
    "full + one fusion kernel + fused attention": dict(fast_path=False, fused_attention=True),
    "swin_unetr + fused attention, channels-last": dict(use_msf=False, adaptive_attention=False, fast_path=True),
}
TARGETS = {"train_step": 1.00, "inference": 1.00, "params": 1.01, "peak_memory": 1.05}
BUNDLE = REPO / "bundles" / "spine_seg"


def build(name: str, args: argparse.Namespace) -> torch.nn.Module:
    common = dict(in_channels=1, out_channels=args.classes, feature_size=args.feature_size)
    spec = dict({**VARIANTS, **LEVERS}[name] or {"monai": True})
    torch.manual_seed(0)
    if spec.pop("monai", False):
        return SwinUNETR(**common, **spec)
    msf_kernel, fused_attention = spec.pop("msf_kernel", True), spec.pop("fused_attention", None)
    net = AdaptiveSwinUNETR(**common, **spec)
    for m in net.modules():
        if isinstance(m, MultiScaleFusion):
            m.fused = msf_kernel
        if isinstance(m, FusedWindowAttention) and fused_attention is not None:
            m.fused = fused_attention
    return net


def tasks(net: torch.nn.Module, args: argparse.Namespace, device: torch.device):
    """The training step and the sliding-window pass of one network, as argument-free callables."""
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, *[args.roi] * 3, generator=g).to(device)
    y = torch.randint(0, args.classes, (1, 1, *[args.roi] * 3), generator=g).to(device)
    volume = torch.rand(1, 1, *args.volume, generator=g).to(device)
    inferer = SlidingWindowInferer([args.roi] * 3, sw_batch_size=args.sw_batch_size, overlap=0.25, mode="gaussian")
    amp = device.type == "cuda"

    def step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    def infer() -> None:
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, enabled=amp):
            inferer(volume, net)

    return step, infer


def memory_worker(name: str, task: str, args: argparse.Namespace) -> dict:
    """Peak memory of one variant doing one task (a warm-up run and a measured one), in this fresh process."""
    device = torch.device(args.device)
    import psutil

    net = build(name, args)
    step, infer = tasks(net, args, device)
    base = psutil.Process().memory_info().rss / 2**20  # resident now, not the peak so far (a transient at build)
    fn = step if task == "step" else infer
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fn()
    fn()
    if device.type == "cuda":
        return {"peak_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20}
    return {"peak_rss_mib": peak_rss_mib(), "rise_mib": peak_rss_mib() - base}


def cache_worker(args: argparse.Namespace) -> dict:
    """Resident memory per case that the bundle's training dataset caches, on demo phantoms, and the estimate."""
    import psutil
    from monai.bundle import ConfigParser
    from monai.data import CacheDataset
    from monai.transforms import Compose

    from shared.cache import case_bytes
    from shared.spine.datalist import segmentation_datalist
    from shared.spine.phantom import write_spine_phantom_dataset

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLE)})
    with tempfile.TemporaryDirectory() as tmp:
        write_spine_phantom_dataset(tmp, num_cases=args.cache_cases)
        split = segmentation_datalist(tmp, check=False)
        data = split["training"] + split["validation"]
        pixdim, dtypes = parser.get_parsed_content("pixdim"), parser.get_parsed_content("cache_dtypes")
        estimate = sum(case_bytes(item, pixdim=pixdim, dtypes=dtypes) for item in data) / len(data)
        deterministic = Compose(parser.get_parsed_content("train#deterministic_transforms"))
        cached = [v for item in data for v in deterministic(item).values() if isinstance(v, torch.Tensor)]
        held = sum(v.numel() * v.element_size() for v in cached)
        rss = psutil.Process().memory_info().rss
        ds = CacheDataset(data, parser.get_parsed_content("train#preprocessing"), num_workers=0, progress=False)
        grown = (psutil.Process().memory_info().rss - rss) / len(ds)
    return {
        "cases": len(data),
        "phantom": "96 x 96 x 128 at 1.5 mm, int16 image, uint8 label",
        "resident_per_case_mib": grown / 2**20,
        "tensors_per_case_mib": held / len(data) / 2**20,
        "estimate_per_case_mib": estimate / 2**20,
    }


def _subprocess(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ratios(values: dict, key: str, reference: str = "swin_unetr") -> dict:
    ref = values[reference][key]
    return {name: (v[key] / ref if ref else None) for name, v in values.items() if name != reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--real", action="store_true", help="the bundle's recipe: feature 48, 96^3 patches")
    parser.add_argument("--feature-size", type=int, default=None, help="default 24 (48 with --real)")
    parser.add_argument("--roi", type=int, default=None, help="patch side, default 64 (96 with --real)")
    parser.add_argument("--volume", type=int, nargs=3, default=None, help="inference volume, default 1.5 x roi a side")
    parser.add_argument("--classes", type=int, default=25)
    parser.add_argument("--sw-batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--levers", action="store_true", help="also time the speed levers one at a time")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="default: all four"
    )
    parser.add_argument("--cache-cases", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-worker", nargs=2, metavar=("VARIANT", "TASK"), help=argparse.SUPPRESS)
    parser.add_argument("--cache-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.feature_size = args.feature_size or (48 if args.real else 24)
    args.roi = args.roi or (96 if args.real else 64)
    args.volume = args.volume or [args.roi * 3 // 2] * 3
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the bundle's configs do: denormals slowed a training step 2.7x
    if args.memory_worker:
        print(json.dumps(memory_worker(*args.memory_worker, args)))
        return
    if args.cache_worker:
        print(json.dumps(cache_worker(args)))
        return

    device = torch.device(args.device)
    if not {"swin_unetr", "full"} <= set(args.variants):
        parser.error("--variants needs swin_unetr and full, the pair the targets compare")
    names = [v for v in VARIANTS if v in args.variants] + (list(LEVERS) if args.levers else [])
    nets = {name: build(name, args) for name in names}
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    print(
        f"settings: feature {args.feature_size}, patch {args.roi}^3, volume {args.volume}, {args.device}, "
        f"{torch.get_num_threads()} threads, load average {load_average()}",
        flush=True,
    )
    print("parameters: " + ", ".join(f"{n} {p:,}" for n, p in params.items()), flush=True)
    callables = {name: tasks(net, args, device) for name, net in nets.items()}

    step = summarise(interleaved({n: c[0] for n, c in callables.items()}, args.rounds, args.warmup), "swin_unetr")
    print_summary("training step", step)
    infer = summarise(interleaved({n: c[1] for n, c in callables.items()}, args.rounds, args.warmup), "swin_unetr")
    print_summary("sliding-window inference", infer)
    del callables, nets

    report = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("memory_worker", "cache_worker", "out")},
        "machine": machine(),
        "params": params,
        "params_ratio_to_swin_unetr": _ratios({n: {"p": p} for n, p in params.items()}, "p"),
        "train_step": step,
        "inference": infer,
    }
    forwarded = [a for a in sys.argv[1:] if a not in ("--levers", "--skip-memory")]
    if not args.skip_memory:
        memory = {
            task: {name: _subprocess([*forwarded, "--memory-worker", name, task]) for name in args.variants}
            for task in ("step", "inference")
        }
        key = "peak_allocated_mib" if device.type == "cuda" else "peak_rss_mib"
        report["peak_memory"] = memory
        report["peak_memory_ratio_to_swin_unetr"] = {t: _ratios(m, key) for t, m in memory.items()}
        if device.type != "cuda":
            report["memory_rise_ratio_to_swin_unetr"] = {t: _ratios(m, "rise_mib") for t, m in memory.items()}
        for task, m in memory.items():
            print(f"peak memory, {task}: " + ", ".join(f"{n} {v[key]:.0f} MiB" for n, v in m.items()))
        report["cache"] = _subprocess([*forwarded, "--cache-worker"])
        print(
            "dataset cache: "
            + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in report["cache"].items())
        )

    full = {
        "train_step": step["full"]["min_ratio_to_swin_unetr"],
        "inference": infer["full"]["min_ratio_to_swin_unetr"],
        "params": report["params_ratio_to_swin_unetr"]["full"],
    }
    if "peak_memory_ratio_to_swin_unetr" in report:
        full["peak_memory"] = max(r["full"] for r in report["peak_memory_ratio_to_swin_unetr"].values())
    report["targets"] = {k: {"target": TARGETS[k], "full": v, "met": v <= TARGETS[k]} for k, v in full.items()}
    print(
        "targets (full vs SwinUNETR, min ratios): "
        + ", ".join(
            f"{k} {v['full']:.3f} ({'met' if v['met'] else 'NOT met'}, <= {v['target']})"
            for k, v in report["targets"].items()
        )
    )
    # one file, one entry per setting: the quick look and the real recipe live side by side
    out = Path(args.out) if args.out else REPO / "bench" / "results" / "spine_seg.json"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    previous = previous if "settings" not in previous else {}  # a report in the old one-setting layout
    previous[f"feature{args.feature_size}_patch{args.roi}"] = report
    write_report("spine_seg", previous, out)


if __name__ == "__main__":
    main()
