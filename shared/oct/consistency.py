# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Consistency between two explanation maps (CARE vs Grad-CAM) and the multi-task fine-tuning loss.

``(1 - lam) * CE(logits, label) + lam * D(CARE, Grad-CAM)`` with ``D`` one of MSE, SSIM, Pearson or KL.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import SSIMLoss

__all__ = ["DISTANCES", "MapDistance", "MultiTaskConsistencyLoss"]

DISTANCES = ("mse", "ssim", "pearson", "kl")


class MapDistance(nn.Module):
    """Distance between two batches of maps ``(B, 1, *spatial)`` with values in [0, 1]; 0 when they agree.

    - ``mse``: mean squared error.
    - ``ssim``: ``1 - SSIM`` (MONAI :class:`~monai.losses.SSIMLoss`, data range 1); the window shrinks to the
      smallest spatial side (kept odd) so small feature grids work.
    - ``pearson``: ``1 - r``, Pearson correlation over the voxels of each sample, averaged over the batch.
    - ``kl``: ``KL(P_b || P_a)`` where each map is normalised to a distribution over its voxels (``b`` is the
      reference, e.g. Grad-CAM).

    Args:
        kind: one of :data:`DISTANCES`.
        win_size: SSIM window side.
        eps: numerical floor.
    """

    def __init__(self, kind: str = "mse", win_size: int = 7, eps: float = 1e-6) -> None:
        super().__init__()
        kind = str(kind).lower()
        if kind not in DISTANCES:
            raise ValueError(f"consistency distance must be one of {DISTANCES}, got {kind!r}.")
        self.kind = kind
        self.win_size = int(win_size)
        self.eps = eps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
        if self.kind == "mse":
            return F.mse_loss(a, b)
        if self.kind == "ssim":
            win = min(self.win_size, *a.shape[2:])
            win = win if win % 2 == 1 else win - 1
            if win < 1:
                raise ValueError(f"maps too small for SSIM: {tuple(a.shape)}.")
            ssim = SSIMLoss(spatial_dims=a.ndim - 2, data_range=1.0, win_size=win, kernel_sigma=max(win / 4.0, 0.5))
            return ssim(a, b)
        x = a.flatten(1)
        y = b.flatten(1)
        if self.kind == "pearson":
            xc = x - x.mean(dim=1, keepdim=True)
            yc = y - y.mean(dim=1, keepdim=True)
            r = (xc * yc).sum(1) / (xc.norm(dim=1) * yc.norm(dim=1) + self.eps)
            return (1.0 - r).mean()
        p = (x + self.eps) / (x + self.eps).sum(1, keepdim=True)
        q = (y + self.eps) / (y + self.eps).sum(1, keepdim=True)
        return (q * (q.log() - p.log())).sum(1).mean()


class MultiTaskConsistencyLoss(nn.Module):
    """Stage-2 loss: ``(1 - lam) * supervised + lam * D(care, gradcam)``.

    ``pred`` is the dict returned by :class:`shared.oct.explain.ExplainInferer` (``logits``
    ``(B, K)``, ``care`` and ``gradcam`` ``(B, 1, s, a, l)``); the Grad-CAM in it must have been computed with
    ``create_graph=True`` for the consistency term to train the network.

    Args:
        lam: weight of the consistency term in [0, 1] (0.75 in the paper's Topcon setting).
        distance: ``mse`` (default), ``ssim``, ``pearson`` or ``kl``.
        supervised: classification loss on ``(logits, label)``; cross-entropy on integer labels by default.
    """

    def __init__(self, lam: float = 0.75, distance: str = "mse", supervised: nn.Module | None = None) -> None:
        super().__init__()
        if not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}.")
        self.lam = float(lam)
        self.distance = MapDistance(distance)
        self.supervised = supervised
        self.last: dict[str, float] = {}

    def forward(self, pred: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if not isinstance(pred, dict) or not {"logits", "care", "gradcam"} <= set(pred):
            raise TypeError(
                "MultiTaskConsistencyLoss needs the dict of ExplainInferer (keys 'logits', 'care', 'gradcam'), "
                f"got {type(pred).__name__}: set the trainer's inferer to ExplainInferer(create_graph=True)."
            )
        logits = pred["logits"]
        if self.supervised is not None:
            sup = self.supervised(logits, target)
        else:
            sup = F.cross_entropy(logits, target.reshape(-1).long())
        cons = self.distance(pred["care"], pred["gradcam"])
        self.last = {"supervised": float(sup.detach()), "consistency": float(cons.detach())}
        return (1.0 - self.lam) * sup + self.lam * cons
