# Copyright (c) MONAI Consortium
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Class-variance regularisation: mean within-class spread of the embeddings around their class centroid."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

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
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be (B, E), got shape {list(embeddings.shape)}.")
        labels = labels.reshape(-1).long()
        if labels.numel() != embeddings.shape[0]:
            raise ValueError(f"{labels.numel()} labels for {embeddings.shape[0]} embeddings.")
        z = F.normalize(embeddings.float(), dim=1) if self.normalize else embeddings.float()
        terms = []
        for c in torch.unique(labels):
            zc = z[labels == c]
            if zc.shape[0] > 1:
                terms.append((zc - zc.mean(0, keepdim=True)).pow(2).sum(1).mean())
        if not terms:
            return embeddings.sum() * 0.0
        return torch.stack(terms).mean()
