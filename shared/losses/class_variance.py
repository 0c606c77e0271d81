"""Class-variance regularisation: mean within-class spread of the embeddings around their class centroid."""

from __future__ import annotations

import torch
import torch.nn as nn

from shared.losses.supcon import prepare_embeddings

__all__ = ["ClassVarianceLoss"]


class ClassVarianceLoss(nn.Module):
    """
    ``mean_c mean_{i in c} ||z_i - mu_c||^2`` over the classes present in the batch with at least two samples
    (a single sample has no spread). 0 when no class has two samples.

    Args:
        normalize: L2-normalise the embeddings first (bounded, scale-free; matches the contrastive loss).

    Forward: ``embeddings`` (B, E), ``labels`` (B,) or (B, 1) integer classes -> scalar.
    """

    def __init__(self, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, labels = prepare_embeddings(embeddings, labels, self.normalize)
        terms = []
        for c in torch.unique(labels):
            zc = z[labels == c]
            if zc.shape[0] > 1:
                terms.append((zc - zc.mean(0, keepdim=True)).pow(2).sum(1).mean())
        if not terms:
            return embeddings.sum() * 0.0
        return torch.stack(terms).mean()
