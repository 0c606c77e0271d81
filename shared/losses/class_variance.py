"""Class-variance regularisation: the mean squared distance of the embeddings to their class centroid."""

from __future__ import annotations

import torch
import torch.nn as nn

from shared.losses.supcon import prepare_embeddings

__all__ = ["ClassVarianceLoss"]


class ClassVarianceLoss(nn.Module):
    """
    DinoAtten3D's class-variance term over a batch of embeddings ``z`` (B, E) with labels ``y``:

    ``L_var = 1/C * sum_c 1/(N_c * E) * sum_{i: y_i = c} ||z_i - mu_c||^2``

    with ``C`` the classes present in the batch, ``N_c`` their sample counts and ``mu_c`` their centroids. The squared
    distance is averaged over the ``E`` embedding dimensions (the authors' code takes the mean over samples and
    dimensions), so the term does not grow with the embedding width. A class with a single sample in the batch has no
    spread: it adds 0 but still counts in ``C``, as in the paper's average over classes.

    Args:
        normalize: L2-normalise the embeddings first (as the authors' code and the contrastive loss do).

    Forward: ``embeddings`` (B, E), ``labels`` (B,) or (B, 1) integer classes -> scalar.
    """

    def __init__(self, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, labels = prepare_embeddings(embeddings, labels, self.normalize)
        classes = torch.unique(labels)
        total = z.sum() * 0.0  # stays in the graph when every class is a singleton
        for c in classes:
            zc = z[labels == c]
            total = total + (zc - zc.mean(0, keepdim=True)).pow(2).mean()  # mean over the class's samples and dims
        return total / len(classes)
