"""
Benchmark of the brain_mri_classification (DinoAtten3D) pipeline.

Measures, on synthetic MNI152-derived volumes:
- a training epoch that recomputes the frozen DINOv2 slice embeddings (load, reorient, slice, ViT-S/14 forward),
- the same epoch on the on-disk embedding cache (content-keyed; filled once beforehand),
- per-volume inference time (slices through the backbone and the attention head),
and prints the cached/uncached epoch speed-up (target >= 20x).
Results go to bench/results/brain_mri_classification.json.

The backbone uses random weights here (timings do not depend on weight values).

    python bench/brain_mri_classification.py [--volumes 4] [--num-slices 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.data.classification_datalist import load_classification_datalist  # noqa: E402
from shared.data.synthetic_brain_mri import CLASS_NAMES, write_synthetic_brain_mri  # noqa: E402
from shared.losses.dino_atten3d_loss import DinoAtten3DLoss  # noqa: E402
from shared.networks.dino_atten3d import DinoAtten3D  # noqa: E402
from shared.transforms.axial_slices import AxialSlicesd  # noqa: E402
from shared.transforms.slice_embedding import SliceEmbeddingd  # noqa: E402


def run_epoch(net, loader, loss_fn, opt, device) -> float:
    t0 = time.perf_counter()
    net.train()
    for batch in loader:
        x, y = batch["image"].to(device), batch["label"].to(device)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--volumes", type=int, default=4, help="volumes in the epoch (half per class)")
    p.add_argument("--num-slices", type=int, default=50)
    p.add_argument("--slice-size", type=int, default=224)
    p.add_argument("--voxel-size", type=float, default=2.0, help="synthetic volume spacing in mm")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        datalist = write_synthetic_brain_mri(tmp, max(1, args.volumes // 2), args.voxel_size, seed=0)
        items = load_classification_datalist(datalist, class_names=list(CLASS_NAMES))[: args.volumes]
        net = DinoAtten3D(num_classes=2, backbone_weights="random").to(device)
        slicer = AxialSlicesd("image", num_slices=args.num_slices, spatial_size=args.slice_size)
        loss_fn = DinoAtten3DLoss(embedding_module=net.embedding)
        opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=1e-4)

        def loader(cache_dir):
            emb = SliceEmbeddingd("image", net.backbone, slicer, cache_dir=cache_dir)
            return emb, DataLoader(Dataset(items, emb), batch_size=args.batch_size, shuffle=True, num_workers=0)

        _, uncached = loader(None)
        t_uncached = run_epoch(net, uncached, loss_fn, opt, device)

        cache_dir = os.path.join(tmp, "cache")
        emb, cached = loader(cache_dir)
        t0 = time.perf_counter()
        emb.precompute(items)
        t_fill = time.perf_counter() - t0
        run_epoch(net, cached, loss_fn, opt, device)  # warm-up (file system cache, allocator)
        t_cached = min(run_epoch(net, cached, loss_fn, opt, device) for _ in range(3))

        # per-volume inference: read, reorient, slice, backbone + head
        pre = Compose([LoadImaged("image"), EnsureChannelFirstd("image"), Orientationd("image", "RAS"), slicer])
        net.eval()
        times = []
        with torch.no_grad():
            for it in items:
                t0 = time.perf_counter()
                x = pre({"image": it["image"]})["image"].unsqueeze(0).to(device)
                torch.softmax(net(x), 1).cpu()
                times.append(time.perf_counter() - t0)

    res = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "volumes": len(items),
        "num_slices": args.num_slices,
        "slice_size": args.slice_size,
        "epoch_uncached_s": round(t_uncached, 3),
        "cache_fill_s": round(t_fill, 3),
        "epoch_cached_s": round(t_cached, 4),
        "speedup_cached_vs_uncached": round(t_uncached / t_cached, 1),
        "inference_per_volume_s": round(sum(times) / len(times), 3),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "brain_mri_classification.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))
    print(
        f"epoch on cached embeddings is {res['speedup_cached_vs_uncached']}x faster than recomputing them "
        f"({'meets' if res['speedup_cached_vs_uncached'] >= 20 else 'misses'} the 20x target)"
    )


if __name__ == "__main__":
    main()
