# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""DinoAtten3D's losses: cross-entropy + supervised contrastive (Khosla et al., NeurIPS 2020) + class-variance
regularisation, on L2-normalised embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SupConLoss", "prepare_embeddings", "ClassVarianceLoss", "DinoAtten3DLoss"]


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


class DinoAtten3DLoss(nn.Module):
    """
    ``ce_weight * CE(logits, y) + supcon_weight * SupCon(e, y) + variance_weight * ClassVariance(e, y)``.

    MONAI's trainers call ``loss(pred, label)`` with the network's logits only. The embedding ``e`` the two
    embedding terms need is taken with a forward hook on ``embedding_module`` (``network.embedding`` of
    :class:`~shared.networks.dino_atten3d.DinoAtten3D`), so the network keeps a plain logits output (TorchScript,
    metrics, MONAI Label). Without ``embedding_module``, pass ``embeddings`` to ``forward`` explicitly
    (or set both embedding weights to 0 for plain cross-entropy).

    Args:
        embedding_module: module whose output (B, E) is the embedding.
        ce_weight: cross-entropy weight.
        supcon_weight: supervised contrastive weight.
        variance_weight: class-variance weight (paper: 0.1).
        temperature: contrastive temperature (paper: 0.07).
        supcon_anchors: which anchors the contrastive mean runs over (:class:`SupConLoss`'s ``anchors``).
        class_weights: optional per-class cross-entropy weights (class imbalance).
    """

    def __init__(
        self,
        embedding_module: nn.Module | None = None,
        ce_weight: float = 1.0,
        supcon_weight: float = 1.0,
        variance_weight: float = 0.1,
        temperature: float = 0.07,
        supcon_anchors: str = "with_positive",
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.ce_weight, self.supcon_weight, self.variance_weight = ce_weight, supcon_weight, variance_weight
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.ce = nn.CrossEntropyLoss(weight=weight)
        self.supcon = SupConLoss(temperature=temperature, anchors=supcon_anchors)
        self.variance = ClassVarianceLoss()
        self._captured: torch.Tensor | None = None
        if embedding_module is not None:
            embedding_module.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self._captured = output

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``logits`` (B, C), ``labels`` (B,) / (B, 1) class indices, optional ``embeddings`` (B, E) -> scalar."""
        labels = labels.reshape(-1).long().to(logits.device)
        loss = self.ce_weight * self.ce(logits, labels)
        if self.supcon_weight or self.variance_weight:
            emb = embeddings if embeddings is not None else self._captured
            if emb is None or emb.shape[0] != logits.shape[0]:
                raise RuntimeError(
                    "DinoAtten3DLoss needs the batch's embeddings: pass embedding_module=network.embedding "
                    "(and call the network before the loss) or pass embeddings explicitly."
                )
            if self.supcon_weight:
                loss = loss + self.supcon_weight * self.supcon(emb, labels)
            if self.variance_weight:
                loss = loss + self.variance_weight * self.variance(emb, labels)
        self._captured = None
        return loss
