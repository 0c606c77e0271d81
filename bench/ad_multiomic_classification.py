# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Benchmark of the ACMCA classifier (ad_multiomic_classification bundle): the full model (asymmetric cross-attention)
against the concatenation baseline (``fusion="concat"``), same encoders and deep branches.

With ``bench/compare.py``'s method: both models in one process, interleaved round by round after a warm-up, min and
median and the ratios full / baseline, the load average before and after.

- training step: forward + cross-entropy + backward + Adam step at ``--batch``;
- inference per subject: batch 1, eval mode, no grad;
- parameters;
- peak memory of one training step: a fresh process per model (CUDA: peak allocated; CPU: peak resident set).

Writes ``bench/results/ad_multiomic_classification.json``.

    python bench/ad_multiomic_classification.py --threads 2 --batch 8     # the model card's figures
    python bench/ad_multiomic_classification.py --device cuda --batch 32  # the paper's batch
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare import interleaved, load_average, machine, peak_rss_mib, print_summary, summarise, write_report  # noqa

from shared.networks.acmca import ACMCA  # noqa: E402

MODELS = {"full": "asymmetric", "concat": "concat"}


def build(name: str, args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    net = ACMCA(
        snp_features=args.snps,
        clinical_features=args.clinical,
        img_size=(args.size, args.size),
        backbone=args.backbone,
        fusion=MODELS[name],
    )
    return net.to(device)


def tasks(net: torch.nn.Module, args: argparse.Namespace, device: torch.device):
    """The training step and the one-subject inference of one network, as argument-free callables."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(args.batch, 2, args.size, args.size, generator=g).to(device)
    snp = torch.randint(0, 3, (args.batch, args.snps), generator=g).float().to(device)
    clinical = torch.randn(args.batch, args.clinical, generator=g).to(device)
    label = torch.randint(0, 3, (args.batch,), generator=g).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(net(image, snp, clinical), label).backward()
        opt.step()

    def infer() -> None:
        net.eval()
        with torch.no_grad():
            net(image[:1], snp[:1], clinical[:1])

    return step, infer


def memory_worker(name: str, args: argparse.Namespace) -> dict:
    """Peak memory of two training steps of one model, in this fresh process."""
    device = torch.device(args.device)
    step, _ = tasks(build(name, args, device), args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step()
    step()
    if device.type == "cuda":
        return {"peak_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20}
    return {"peak_rss_mib": peak_rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=32, help="training batch size (paper: 32)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--snps", type=int, default=15000)
    ap.add_argument("--clinical", type=int, default=7)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/<bundle>.json)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args)))
        return
    device = torch.device(args.device)
    nets = {name: build(name, args, device) for name in MODELS}
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    print(f"{args.device}, {torch.get_num_threads()} threads, load average {load_average()}", flush=True)
    print("parameters: " + ", ".join(f"{n} {p:,}" for n, p in params.items()), flush=True)
    callables = {name: tasks(net, args, device) for name, net in nets.items()}
    step = summarise(interleaved({n: c[0] for n, c in callables.items()}, args.rounds, args.warmup), "concat")
    print_summary(f"training step, batch {args.batch}", step)
    infer = summarise(interleaved({n: c[1] for n, c in callables.items()}, args.rounds, args.warmup), "concat")
    print_summary("inference, one subject", infer)
    del callables, nets

    report = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("memory_worker", "out")},
        "machine": machine(),
        "params": params,
        "params_ratio_full_to_concat": params["full"] / params["concat"],
        "train_step": step,
        "inference": infer,
    }
    if not args.skip_memory:
        forwarded = [a for a in sys.argv[1:] if a != "--skip-memory"]
        memory = {}
        for name in MODELS:
            done = subprocess.run([sys.executable, __file__, *forwarded, "--memory-worker", name], capture_output=True)
            if done.returncode:
                raise RuntimeError(f"memory run of {name} failed:\n{done.stderr.decode()[-3000:]}")
            memory[name] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        key = next(iter(memory["full"]))
        report["peak_memory"] = memory
        report["peak_memory_ratio_full_to_concat"] = memory["full"][key] / memory["concat"][key]
        print("peak memory, training step: " + ", ".join(f"{n} {m[key]:.0f} MiB" for n, m in memory.items()))
    write_report("ad_multiomic_classification", report, args.out)


if __name__ == "__main__":
    main()
