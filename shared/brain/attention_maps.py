# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Writes DinoAtten3D's per-slice attention weights (CSV and PNG)."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from ignite.engine import Engine, Events

from shared.atomic import atomic_write
from shared.brain.axial_slices import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["SliceAttentionSaver"]

logger = logging.getLogger(__name__)


def _volume_name(path: str) -> str:
    name = os.path.basename(str(path)) or "volume"
    for ext in (".nii.gz", ".nii", ".mha", ".nrrd", ".gz"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


class SliceAttentionSaver:
    """
    Ignite handler for an evaluator running a :class:`~shared.networks.dino_atten3d.DinoAtten3D`.

    A forward hook on ``network.attention`` captures the slice weights of each batch. After every iteration the
    handler writes ``<output_dir>/attention/<volume>.png`` (the weights along the slice axis beside the ``top_k``
    most attended slices and the predicted class); when the run completes, ``<output_dir>/slice_attention.csv``
    (image, position in the stack, slice index in the RAS volume, weight, rank). The class probabilities go to
    :class:`shared.handlers.predictions.ProbabilityWriter`. Every file is written atomically: an interrupted run
    leaves the previous files, never half of new ones.

    Args:
        output_dir: where the files go.
        network: the DinoAtten3D (or a wrapper with ``.module``).
        class_names: names of the classes (PNG titles).
        top_k: slices shown in the PNG.
        save_png: write the PNGs (needs matplotlib).
        image_key: batch key of the slices (3, H, W, S) or embeddings.
        pred_key: output key of the class probabilities (after softmax in postprocessing).
    """

    def __init__(
        self,
        output_dir: str,
        network: nn.Module,
        class_names: Sequence[str],
        top_k: int = 4,
        save_png: bool = True,
        image_key: str = "image",
        pred_key: str = "pred",
    ) -> None:
        self.output_dir = output_dir
        self.class_names = [str(c) for c in class_names]
        self.top_k = top_k
        self.save_png = save_png
        self.image_key = image_key
        self.pred_key = pred_key
        net = getattr(network, "module", network)
        if not hasattr(net, "attention"):
            raise ValueError("SliceAttentionSaver needs a network with an 'attention' submodule (DinoAtten3D).")
        net.attention.register_forward_hook(self._capture)
        self._weights: torch.Tensor | None = None
        self._start(None)

    def _capture(self, module: nn.Module, inputs: Any, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._weights = output[1].detach().float().cpu()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _start(self, engine: Engine | None) -> None:
        self._att_rows: list[list[Any]] = []

    def __call__(self, engine: Engine) -> None:
        if self._weights is None:
            return
        batch, output = engine.state.batch, engine.state.output
        if isinstance(batch, dict):  # engines normally decollate; handle collated batches too
            from monai.data import decollate_batch

            batch, output = decollate_batch(batch), decollate_batch(output)
        weights, self._weights = self._weights, None
        for i, (item, out) in enumerate(zip(batch, output)):
            image = item[self.image_key]
            meta = getattr(image, "meta", {}) or {}
            fname = str(meta.get("filename_or_obj", f"volume_{engine.state.iteration}_{i}"))
            probs = torch.as_tensor(out[self.pred_key]).float().reshape(-1).cpu().numpy()
            w = weights[i].numpy()
            idx_str = item.get(f"{self.image_key}_slice_indices", "")
            idx = [int(v) for v in str(idx_str).split(",") if v != ""] or list(range(len(w)))
            n = min(len(idx), len(w))  # padded positions (zero weight) beyond the volume's own slices
            order = np.argsort(-w[:n])
            ranks = np.empty(n, int)
            ranks[order] = np.arange(1, n + 1)
            self._att_rows += [[fname, p, idx[p], f"{w[p]:.6f}", int(ranks[p])] for p in range(n)]
            if self.save_png:
                self._png(fname, image, w[:n], idx[:n], probs)

    def _write(self, engine: Engine) -> None:
        path = os.path.join(self.output_dir, "slice_attention.csv")
        with atomic_write(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "position", "slice_index", "weight", "rank"])
            writer.writerows(self._att_rows)
        logger.info(f"slice attention of {len({row[0] for row in self._att_rows})} volumes written to {path}")

    def _png(self, fname: str, image: Any, w: np.ndarray, idx: list[int], probs: np.ndarray) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        img = torch.as_tensor(image).detach().float().cpu()
        has_slices = img.dim() == 4 and img.shape[0] == 3
        k = min(self.top_k, len(w)) if has_slices else 0
        top = np.argsort(-w)[:k]
        fig, axes = plt.subplots(1, 1 + k, figsize=(4 + 2.6 * k, 3.2), squeeze=False)
        ax = axes[0, 0]
        width = max(1.0, (idx[-1] - idx[0]) / (len(idx) - 1)) if len(idx) > 1 else 1.0
        colors = ["tab:red" if p in set(top.tolist()) else "tab:blue" for p in range(len(w))]
        ax.bar(idx, w, width=width, color=colors)
        ax.set_xlabel("axial slice index (RAS)")
        ax.set_ylabel("attention weight")
        pred = int(probs.argmax())
        ax.set_title(f"{_volume_name(fname)}: {self.class_names[pred]} ({probs[pred]:.2f})", fontsize=9)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        for j, p in enumerate(top):
            s = (img[..., p] * std + mean)[0].clamp(0, 1).numpy()  # undo normalisation, one channel
            a = axes[0, 1 + j]
            a.imshow(s, cmap="gray", vmin=0, vmax=1)
            a.set_title(f"slice {idx[p]}: {w[p]:.3f}", fontsize=9)
            a.axis("off")
        fig.tight_layout()
        with atomic_write(os.path.join(self.output_dir, "attention", f"{_volume_name(fname)}.png"), "wb") as f:
            fig.savefig(f, format="png", dpi=80)
        plt.close(fig)
