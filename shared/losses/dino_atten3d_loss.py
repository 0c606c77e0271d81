"""DinoAtten3D's composite loss: cross-entropy + supervised contrastive + class-variance regularisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from shared.losses.class_variance import ClassVarianceLoss
from shared.losses.supcon import SupConLoss

__all__ = ["DinoAtten3DLoss"]


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
