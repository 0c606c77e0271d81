# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
DinoAtten3D (arXiv 2509.12512): a frozen DINOv2 encoder embeds every axial slice of a volume; a slice-attention
MLP weighs the slice embeddings, their weighted sum goes through an embedding MLP and a linear classifier.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Sequence

import torch
import torch.nn as nn

from shared.errors import InputError, MissingInputError
from shared.networks.dinov2 import DINOV2_VITS14_FILENAME, dinov2_vits14
from shared.networks.imagenet_resnet import IMAGENET_RESNET_URLS, load_imagenet_resnet

__all__ = ["SliceAttention", "DinoAtten3D", "CNNSliceEncoder", "dinov2_backbone"]

# what reading a weights file can raise: missing, unreadable or truncated file, foreign format, wrong keys or shapes
_WEIGHT_ERRORS = (OSError, RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


def dinov2_backbone(weights: str | None, **kwargs) -> nn.Module:
    """:func:`~shared.networks.dinov2.dinov2_vits14` with ``weights`` (the bundle's ``backbone_weights`` id); any
    problem with the weights (offline without the official file, a missing, truncated or foreign file, another
    layout) becomes one :class:`~shared.errors.InputError` naming the id, the file and what is expected."""
    try:
        return dinov2_vits14(weights=weights, **kwargs)
    except _WEIGHT_ERRORS as e:
        reason = " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())
        official = os.path.join(torch.hub.get_dir(), "checkpoints", DINOV2_VITS14_FILENAME)
        if weights == "official" and not os.path.isfile(official):
            # offline and not in the hub cache: the loader's message says where to put the file
            raise MissingInputError(f"config id 'backbone_weights' is 'official': {reason}") from e
        path = official if weights == "official" else weights
        expected = (
            "expected 'official' (Meta's dinov2_vits14_pretrain.pth from torch's hub cache), the path of that file "
            "or of its timm / Hugging Face version, or 'random' for a pipeline test"
        )
        if isinstance(e, FileNotFoundError):
            problem = reason
        elif isinstance(e, pickle.UnpicklingError):
            problem = f"{path} holds pickled objects, which weights-only loading refuses (save a plain state dict)"
        elif isinstance(e, (KeyError, ValueError)):
            problem = reason  # not DINOv2, or another layout / size: the loader lists the keys or shapes
        else:
            # torch's reader adds several sentences of advice: keep the first
            problem = f"{path} is truncated or not a PyTorch / safetensors weights file ({reason.split('. ')[0]})"
        error = MissingInputError if isinstance(e, FileNotFoundError) else InputError
        raise error(f"config id 'backbone_weights': {problem}; {expected}.") from e


class CNNSliceEncoder(nn.Module):
    """A 2D MONAI ResNet as the slice encoder, the paper's backbone swap: ``(N, 3, H, W)`` slices -> ``(N, D)``
    globally pooled features (``D`` = 2048 for ``resnet50``, 512 for ``resnet18``/``34``). Give DinoAtten3D
    ``embed_dim = encoder.embed_dim``.

    Args:
        depth: ``resnet18`` .. ``resnet152`` (MONAI's, with the ImageNet stem: 7 x 7, stride 2).
        weights: ``"official"`` or ``"imagenet"`` (torchvision's ImageNet-1k weights, from torch's hub cache,
            downloaded when missing), a path to such a file, or ``"random"`` / None (random; None when the
            weights come with a whole-network checkpoint). The vocabulary of ``backbone_weights``, so one config id
            serves both encoders.
    """

    def __init__(self, depth: str = "resnet50", weights: str | None = "official") -> None:
        super().__init__()
        from monai.networks.nets import resnet

        if depth not in IMAGENET_RESNET_URLS:
            raise InputError(
                f"the CNN slice encoder's depth is {depth!r}: expected one of {sorted(IMAGENET_RESNET_URLS)}."
            )
        self.trunk = getattr(resnet, depth)(
            spatial_dims=2, n_input_channels=3, conv1_t_size=7, conv1_t_stride=2, feed_forward=False
        )
        self.embed_dim = int(self.trunk.in_planes)
        if weights not in (None, "random"):
            weights = "imagenet" if weights == "official" else weights
            drop_head = lambda key, value: None if key.startswith("fc.") else (key, value)  # noqa: E731
            load_imagenet_resnet(self.trunk, depth, weights, drop_head, "backbone_weights")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, embed_dim)``."""
        return self.trunk(x)


class SliceAttention(nn.Module):
    """
    Soft attention pooling over slices: the paper's score ``e_j = w^T tanh(W_1 z_j)`` (default), or the gated form
    of attention-MIL (Ilse et al. 2018) ``e_j = w^T (tanh(W_1 z_j) * sigmoid(U z_j))``; softmax of the scores over
    the valid slices, ``alpha_j``; the pooled vector is ``sum_j alpha_j z_j``.

    Args:
        in_features: slice embedding width D.
        hidden_features: width of the attention MLP (rows of ``W_1``).
        gated: add the sigmoid gate ``U``; False (default) is the paper's plain tanh form.

    Forward: ``z`` (B, S, D) and ``mask`` (B, S) bool (True = real slice) -> pooled (B, D), weights (B, S).
    """

    def __init__(self, in_features: int = 384, hidden_features: int = 64, gated: bool = False) -> None:
        super().__init__()
        self.gated = gated
        self.attention_v = nn.Linear(in_features, hidden_features)
        self.attention_u = nn.Linear(in_features, hidden_features) if gated else nn.Identity()
        self.score = nn.Linear(hidden_features, 1)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.attention_v(z))
        if self.gated:
            h = h * torch.sigmoid(self.attention_u(z))
        logits = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=1)
        return torch.bmm(weights.unsqueeze(1), z).squeeze(1), weights


class DinoAtten3D(nn.Module):
    """
    DinoAtten3D classifier.

    Accepts either stacks of preprocessed slices or their precomputed backbone embeddings (the cache), with the
    slice axis last as in MONAI's channel-first layout:

    - slices: (B, 3, H, W, S), H and W multiples of 14; the frozen backbone embeds each slice;
    - embeddings: (B, D, S) with D = ``embed_dim``.

    Slices (or embedding columns) that are all zero are padding (e.g. from ``pad_list_data_collate`` on
    volumes with different slice counts) and get no attention.

    Output: (B, num_classes) logits. ``embedding`` (the MLP output the contrastive loss uses) and ``attention``
    (slice weights) are submodules, so their outputs can be captured with forward hooks.

    Args:
        num_classes: number of classes (>= 2).
        backbone: a slice encoder mapping (N, 3, H, W) -> (N, embed_dim); default a DINOv2 ViT-S/14.
        backbone_weights: weights for the default backbone: path, "official", "random" or None (leave
            uninitialised, e.g. when a full bundle checkpoint is loaded afterwards). Problems with them raise
            :class:`~shared.errors.InputError` (see :func:`dinov2_backbone`).
        embed_dim: slice embedding width (384 for ViT-S).
        attention_hidden: hidden width of the attention MLP (64, as in the authors' code; the paper gives none).
        gated_attention: add the sigmoid gate of gated attention-MIL; default False, the paper's plain tanh score.
        hidden_dims: embedding MLP widths (paper: 256, 128).
        embedding_relu: end the embedding MLP with a ReLU too, as the authors' code does, so the embedding the
            contrastive and variance terms see (and the classifier reads) is non-negative; False (default): it ends
            linear.
        dropout: dropout inside the embedding MLP.
        freeze_backbone: keep the backbone frozen and in eval mode (the method's design).
        slice_batch_size: slices per backbone call, bounds memory for long stacks.
        backbone_precision: compute precision of the default backbone: "fp32", "bf16" or "auto" (see
            :func:`~shared.networks.dinov2.resolve_precision`).
    """

    def __init__(
        self,
        num_classes: int = 2,
        backbone: nn.Module | None = None,
        backbone_weights: str | None = "official",
        embed_dim: int = 384,
        attention_hidden: int = 64,
        gated_attention: bool = False,
        hidden_dims: Sequence[int] = (256, 128),
        embedding_relu: bool = False,
        dropout: float = 0.0,
        freeze_backbone: bool = True,
        slice_batch_size: int = 64,
        backbone_precision: str = "fp32",
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        if len(hidden_dims) < 1:
            raise ValueError("hidden_dims needs at least one width (the embedding size).")
        if backbone is None:
            backbone = dinov2_backbone(backbone_weights, precision=backbone_precision)
        self.backbone: nn.Module = backbone
        self.embed_dim = embed_dim
        self.freeze_backbone = freeze_backbone
        self.slice_batch_size = slice_batch_size
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.attention = SliceAttention(embed_dim, attention_hidden, gated_attention)
        layers: list[nn.Module] = []
        width = embed_dim
        for i, d in enumerate(hidden_dims):
            layers.append(nn.Linear(width, d))
            if i < len(hidden_dims) - 1:
                layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            elif embedding_relu:
                layers.append(nn.ReLU())
            width = d
        self.embedding = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def train(self, mode: bool = True) -> DinoAtten3D:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # frozen features: no dropout/statistics changes, identical to the cache
        return self

    def embed_slices(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W, S) slices -> (B, D, S) backbone embeddings (zero for all-zero padding slices)."""
        b, c, h, w, s = x.shape
        flat = x.permute(0, 4, 1, 2, 3).reshape(b * s, c, h, w)
        step = self.slice_batch_size
        if not torch.jit.is_scripting():
            if torch.compiler.is_exporting():
                step = b * s  # an exported graph (ONNX) cannot loop over a dynamic slice count: one backbone call
        outs = []
        for start in range(0, b * s, step):
            chunk = flat[start : start + step]
            if self.freeze_backbone:
                with torch.no_grad():
                    outs.append(self.backbone(chunk))
            else:
                outs.append(self.backbone(chunk))
        emb = torch.cat(outs, 0)
        valid = flat.flatten(1).abs().amax(1) > 0
        emb = emb * valid.unsqueeze(1).to(emb.dtype)
        return emb.reshape(b, s, -1).permute(0, 2, 1)

    @torch.jit.unused
    def _plain_tensor(self, x: torch.Tensor) -> torch.Tensor:
        # MONAI MetaTensor: the per-slice reshapes would try to split its batched meta data
        return x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns logits (B, num_classes), embedding (B, hidden_dims[-1]) and slice weights (B, S)."""
        if not torch.jit.is_scripting():
            x = self._plain_tensor(x)
        if x.dim() == 5:
            x = self.embed_slices(x)
        elif x.dim() != 3:
            raise ValueError(
                f"expected slices (B, 3, H, W, S) or embeddings (B, {self.embed_dim}, S), got shape {list(x.shape)}."
            )
        if x.shape[1] != self.embed_dim:
            raise ValueError(f"embeddings must have {self.embed_dim} channels, got shape {list(x.shape)}.")
        z = x.transpose(1, 2)  # (B, S, D)
        mask = z.abs().amax(-1) > 0
        # a volume without any valid slice would give NaN weights; keep it finite (uniform over padding)
        mask = mask | ~mask.any(1, keepdim=True)
        pooled, weights = self.attention(z, mask)
        emb = self.embedding(pooled)
        return self.classifier(emb), emb, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]
