# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Benchmark of the brain_mri_classification (DinoAtten3D) pipeline on synthetic MNI152-derived volumes, with
bench/compare.py's method (candidates interleaved in one process after warm-up, min/median, ratios, load average,
CPU flags). The backbone has random weights: timings do not depend on weight values.

1. ``profile``: where one volume's time goes in ``inference.json`` (read, reorient, slicing and resizing,
   batching, backbone, attention head, postprocessing, output handlers), per precision, from the timed rounds of 2;
2. ``inference_end_to_end``: seconds per volume through ``inference.json`` (``ConfigWorkflow``, the bundle's own
   handlers, CSV and PNG outputs), ``precision`` fp32 vs auto, after a first (cold) run that is reported apart;
3. ``network_forward``: the network alone on one volume's stack (``--num-slices`` slices of ``--slice-size`` px),
   fp32 vs bf16;
4. ``cache_fill``: ``SliceEmbeddingd`` computing one volume's embeddings (read, reorient, slice, embed), fp32 vs
   auto, with the seconds per slice beside those of inference;
5. ``training_epoch``: an epoch that recomputes the slice embeddings vs one on the on-disk cache (target >= 20x).

Targets on the team's 2-core CPU: end to end <= 3 s per volume, network forward <= 1.5 s, cache filling at the same
rate per slice. Writes bench/results/brain_mri_classification.json.

    python bench/brain_mri_classification.py [--volumes 4] [--rounds 7] [--num-slices 50] [--voxel-size 2.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare import interleaved, machine, print_summary, summarise, write_report  # noqa: E402
from ignite.handlers import BasicTimeProfiler  # noqa: E402
from monai.bundle import ConfigWorkflow  # noqa: E402
from monai.data import DataLoader, Dataset  # noqa: E402

from shared.brain.axial_slices import AxialSlicesd  # noqa: E402
from shared.brain.datalist import load_classification_datalist  # noqa: E402
from shared.brain.losses import DinoAtten3DLoss  # noqa: E402
from shared.brain.phantom import CLASS_NAMES, write_synthetic_brain_mri  # noqa: E402
from shared.brain.slice_embedding import SliceEmbeddingd  # noqa: E402
from shared.networks.dino_atten3d import DinoAtten3D  # noqa: E402
from shared.networks.dinov2 import cpu_has_native_bf16, resolve_precision  # noqa: E402

CONFIGS = REPO / "bundles" / "brain_mri_classification" / "configs"
PRECISIONS = ("fp32", "auto")


class StageClock:
    """Seconds per pipeline stage of an inference workflow, summed until :meth:`take` (hooks cost microseconds)."""

    def __init__(self, wf: ConfigWorkflow) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        pre = wf.parser.get_parsed_content("preprocessing")
        names = {"LoadImaged": "read", "Orientationd": "reorient", "AxialSlicesd": "slice_resize"}
        pre.transforms = [self._timed(names.get(type(t).__name__, type(t).__name__), t) for t in pre.transforms]
        net = wf.parser.get_parsed_content("network")
        for module, name in ((net, "network"), (net.backbone, "backbone")):
            module.register_forward_pre_hook(lambda *_, n=name: self._start(n))
            module.register_forward_hook(lambda *_, n=name: self._stop(n))
        self.profiler = BasicTimeProfiler()
        self.profiler.attach(wf.parser.get_parsed_content("evaluator"))
        self._t0: dict[str, float] = {}

    def _timed(self, name, transform):
        def run(data):
            t0 = time.perf_counter()
            out = transform(data)
            self.seconds[name] += time.perf_counter() - t0
            return out

        return run

    def _start(self, name: str) -> None:
        self._t0[name] = time.perf_counter()

    def _stop(self, name: str) -> None:
        self.seconds[name] += time.perf_counter() - self._t0.pop(name)

    def take(self, volumes: int) -> dict[str, float]:
        """Seconds per volume of each stage of the last evaluator run; resets the sums."""
        s, self.seconds = self.seconds, defaultdict(float)
        res = self.profiler.get_results()
        dataflow = float(res["dataflow_stats"]["total"])
        processing = float(res["processing_stats"]["total"])
        handlers = float(res["event_handlers_stats"]["total_time"])
        transforms = sum(v for k, v in s.items() if k not in ("network", "backbone"))
        out = {k: v for k, v in s.items() if k not in ("network", "backbone")}
        out |= {
            "batching_dataloader": dataflow - transforms,  # collation, EnsureTyped outside the named stages
            "backbone": s["backbone"],
            "attention_head": s["network"] - s["backbone"],
            "postprocessing_and_transfer": processing - s["network"],
            "output_handlers": handlers,  # checkpoint-free: CSV + PNG writer, stats, progress bar
        }
        return {k: v / volumes for k, v in out.items()}


def inference_workflow(tmp: str, images_dir: str, ckpt_dir: str, precision: str, args) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "inference.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        workflow_type="infer",
        dataset_dir=images_dir,
        ckpt_dir=ckpt_dir,
        output_dir=os.path.join(tmp, f"eval_{precision}"),
        num_slices=args.num_slices,
        slice_size=args.slice_size,
        precision=precision,
        device=args.device,
    )
    wf.initialize()
    return wf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--volumes", type=int, default=4, help="volumes (half per class)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds of each interleaved comparison")
    p.add_argument("--num-slices", type=int, default=50)
    p.add_argument("--slice-size", type=int, default=224)
    p.add_argument("--voxel-size", type=float, default=2.0, help="synthetic volume spacing in mm (1.0: 197x233x189)")
    p.add_argument("--batch-size", type=int, default=4, help="training batch size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--out", default=None, help="result file (default bench/results/brain_mri_classification.json)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    auto = resolve_precision("auto", device)
    report = {
        "machine": machine() | {"cpu_native_bf16": cpu_has_native_bf16()},
        "setting": {
            "volumes": args.volumes,
            "num_slices": args.num_slices,
            "slice_size": args.slice_size,
            "voxel_size_mm": args.voxel_size,
            "rounds": args.rounds,
            "auto_precision_resolves_to": auto,
        },
    }
    print(f"precision 'auto' is {auto} here; {report['machine']}")

    with tempfile.TemporaryDirectory() as tmp:
        datalist = write_synthetic_brain_mri(tmp, max(1, args.volumes // 2), args.voxel_size, seed=0)
        items = load_classification_datalist(datalist, class_names=list(CLASS_NAMES))[: args.volumes]
        images_dir = os.path.join(tmp, "bench_images")
        os.makedirs(images_dir)
        for it in items:
            os.symlink(it["image"], os.path.join(images_dir, os.path.basename(it["image"])))
        report["setting"]["volume_shape"] = list(nib.load(items[0]["image"]).shape)

        net = DinoAtten3D(num_classes=2, backbone_weights="random").to(device).eval()
        ckpt_dir = os.path.join(tmp, "models")
        os.makedirs(ckpt_dir)
        torch.save({"model": net.state_dict()}, os.path.join(ckpt_dir, "model.pt"))

        # 1-2. end to end through inference.json, with the per-stage breakdown of the same rounds
        workflows, clocks, startup = {}, {}, {}
        for prec in PRECISIONS:
            t0 = time.perf_counter()
            workflows[prec] = inference_workflow(tmp, images_dir, ckpt_dir, prec, args)
            startup[prec] = time.perf_counter() - t0
            clocks[prec] = StageClock(workflows[prec])
        stages: dict[str, list[dict[str, float]]] = {prec: [] for prec in PRECISIONS}

        def e2e(prec):
            def run():
                workflows[prec].run()
                stages[prec].append(clocks[prec].take(len(items)))

            return run

        cold = {}  # the first run of a process: oneDNN kernel creation, allocator, lazy imports (matplotlib)
        for prec in PRECISIONS:
            t0 = time.perf_counter()
            e2e(prec)()
            cold[prec] = (time.perf_counter() - t0) / len(items)
        times = interleaved({prec: e2e(prec) for prec in PRECISIONS}, rounds=args.rounds, warmup=0)
        per_volume = {k: ([t / len(items) for t in v] if k != "_load" else v) for k, v in times.items()}
        report["inference_end_to_end"] = summarise(per_volume, reference="fp32")
        report["inference_end_to_end_note"] = "seconds per volume: evaluator.run() over all volumes / volumes"
        report["inference_startup_s"] = startup  # ConfigWorkflow.initialize(): parse, build, weights (once per run)
        report["inference_first_run_per_volume_s"] = cold
        report["profile"] = {
            prec: {k: statistics.median(r[k] for r in stages[prec][1:]) for k in stages[prec][-1]}
            for prec in PRECISIONS
        }  # entry 0 is the first (cold) run
        print_summary("inference end to end, seconds per volume", report["inference_end_to_end"])
        for prec, prof in report["profile"].items():
            total = sum(prof.values())
            print(f"  where one volume's time goes ({prec}, sum {total:.3f} s):")
            for k, v in sorted(prof.items(), key=lambda kv: -kv[1]):
                print(f"    {k:>28}: {v:.4f} s  {100 * v / total:5.1f}%")

        # 3. the network alone on one preprocessed stack
        pre = workflows["fp32"].parser.get_parsed_content("preprocessing")
        x = pre({"image": items[0]["image"]})["image"].as_tensor().unsqueeze(0).to(device)

        def forward(prec):
            def run():
                net.backbone.precision = prec
                with torch.no_grad():
                    net(x)

            return run

        fwd = interleaved({prec: forward(prec) for prec in ("fp32", "bf16")}, rounds=args.rounds, warmup=1)
        report["network_forward"] = summarise(fwd, reference="fp32")
        print_summary(f"network forward, {args.num_slices} slices of {args.slice_size} px", report["network_forward"])

        # 4. cache filling: the SliceEmbeddingd computation of one volume
        slicer = AxialSlicesd("image", num_slices=args.num_slices, spatial_size=args.slice_size)
        embedders = {}
        for prec in PRECISIONS:
            bb = DinoAtten3D(num_classes=2, backbone_weights="random", backbone_precision=prec).backbone.to(device)
            embedders[prec] = SliceEmbeddingd("image", bb, slicer, batch_size=64)
        fill = interleaved(
            {prec: (lambda e=e: e.compute(items[0]["image"])) for prec, e in embedders.items()},
            rounds=args.rounds,
            warmup=1,
        )
        report["cache_fill"] = summarise(fill, reference="fp32")
        for prec in PRECISIONS:
            report["cache_fill"][prec]["median_s_per_slice"] = report["cache_fill"][prec]["median_s"] / args.num_slices
            report["inference_end_to_end"][prec]["median_s_per_slice"] = (
                report["inference_end_to_end"][prec]["median_s"] / args.num_slices
            )
        print_summary("cache filling (SliceEmbeddingd.compute), one volume", report["cache_fill"])

        # 5. training epochs: recomputing the embeddings vs the on-disk cache (config default precision)
        net.backbone.precision = "auto"
        loss_fn = DinoAtten3DLoss(embedding_module=net.embedding)
        opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=1e-4)

        def epoch(loader) -> float:
            t0 = time.perf_counter()
            net.train()
            for batch in loader:
                xb, yb = batch["image"].to(device), batch["label"].to(device)
                opt.zero_grad()
                loss_fn(net(xb), yb).backward()
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        def loader(cache_dir):
            emb = SliceEmbeddingd("image", net.backbone, slicer, cache_dir=cache_dir, batch_size=64)
            return emb, DataLoader(Dataset(items, emb), batch_size=args.batch_size, shuffle=True, num_workers=0)

        t_uncached = epoch(loader(None)[1])
        emb, cached = loader(os.path.join(tmp, "cache"))
        t0 = time.perf_counter()
        emb.precompute(items)
        t_fill = time.perf_counter() - t0
        epoch(cached)  # warm-up (file system cache, allocator)
        t_cached = min(epoch(cached) for _ in range(3))
        report["training_epoch"] = {
            "precision": auto,
            "epoch_uncached_s": t_uncached,
            "cache_fill_s": t_fill,
            "epoch_cached_s": t_cached,
            "speedup_cached_vs_uncached": t_uncached / t_cached,
        }
        print(
            f"training epoch ({len(items)} volumes): recomputing {t_uncached:.2f} s, on the cache {t_cached:.4f} s: "
            f"{t_uncached / t_cached:.0f}x ({'meets' if t_uncached / t_cached >= 20 else 'misses'} the 20x target)"
        )

    e2e = report["inference_end_to_end"]["auto"]["median_s"]
    fwd = report["network_forward"][auto]["median_s"]
    fill_ratio = report["cache_fill"]["auto"]["median_s"] / e2e
    report["targets"] = {
        "end_to_end_le_3s": e2e <= 3.0,
        "network_forward_le_1_5s": fwd <= 1.5,
        "cache_fill_over_inference_time_per_slice": fill_ratio,
    }
    print(
        f"targets (median, precision auto = {auto}): end to end {e2e:.2f} s per volume (<= 3 s: {e2e <= 3.0}), "
        f"network forward {fwd:.2f} s (<= 1.5 s: {fwd <= 1.5}), cache filling {fill_ratio:.2f}x the inference time "
        "per slice"
    )
    write_report("brain_mri_classification", report, args.out)


if __name__ == "__main__":
    main()
