"""Supervised contrastive loss (Khosla et al., NeurIPS 2020) on L2-normalised embeddings."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SupConLoss", "prepare_embeddings"]


def prepare_embeddings(
    embeddings: torch.Tensor, labels: torch.Tensor, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``embeddings`` (B, E) against ``labels`` (B,) or (B, 1) and return them as float (L2-normalised when
    ``normalize``) and long (B,): the input checks every embedding loss shares."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (B, E), got shape {list(embeddings.shape)}.")
    labels = labels.reshape(-1).long()
    if labels.numel() != embeddings.shape[0]:
        raise ValueError(f"{labels.numel()} labels for {embeddings.shape[0]} embeddings.")
    return (F.normalize(embeddings.float(), dim=1) if normalize else embeddings.float()), labels


class SupConLoss(nn.Module):
    """
    For each anchor i: ``-mean_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T) )``, with P(i)
    the other same-class samples of the batch; then the mean over anchors.

    ``anchors`` says what an anchor without a positive (the only sample of its class in the batch) does:
    ``"with_positive"`` leaves it out of the mean, as Khosla et al. define the loss; ``"all"`` counts it as 0 in a
    mean over every sample, as the DinoAtten3D authors' code does (its classes' gradient is then scaled by the
    fraction of anchors that have a positive). A batch without any positive pair gives 0 (still in the graph).

    Args:
        temperature: softmax temperature T (paper: 0.07).
        normalize: L2-normalise the embeddings first.
        anchors: ``"with_positive"`` or ``"all"``.

    Forward: ``embeddings`` (B, E), ``labels`` (B,) or (B, 1) integer classes -> scalar.
    """

    def __init__(self, temperature: float = 0.07, normalize: bool = True, anchors: str = "with_positive") -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        if anchors not in ("with_positive", "all"):
            raise ValueError(f"anchors must be 'with_positive' or 'all', got {anchors!r}.")
        self.temperature = temperature
        self.normalize = normalize
        self.anchors = anchors

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, labels = prepare_embeddings(embeddings, labels, self.normalize)
        logits = z @ z.t() / self.temperature
        n = z.shape[0]
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
        n_pos = positives.sum(1)
        has_pos = n_pos > 0
        if not bool(has_pos.any()):
            return embeddings.sum() * 0.0
        pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1)
        per_anchor = pos_log_prob[has_pos] / n_pos[has_pos]
        return -(per_anchor.sum() / n if self.anchors == "all" else per_anchor.mean())
