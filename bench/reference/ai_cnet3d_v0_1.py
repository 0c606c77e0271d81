# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""FROZEN COPY of our previous AI-CNet3D implementation (``shared/networks/ai_cnet3d.py`` as of bundle v0.1).

Kept only as the baseline the benchmark (``bench/glaucoma_oct_classification.py``) and the equivalence tests
(``tests/networks/test_ai_cnet3d.py``) measure the current network against. Do not edit or import it from product
code: state dicts are interchangeable with the current :class:`shared.networks.ai_cnet3d.AICNet3D`.

AI-CNet3D: an anatomically-informed cross-attention 3D CNN for glaucoma classification from OCT volumes.

Axis convention (input ``(B, 1, S, A, L)``):

- ``S``: B-scan index, superior <-> inferior (split for ``hemiretinal`` attention),
- ``A``: depth along the A-scan (never split),
- ``L``: lateral position, macula <-> optic nerve head (split for ``onh_macula`` attention).

The network adds, to a five-layer 3D CNN, cross-attention blocks that split the feature volume into anatomical
halves (or quadrants) and let every part attend, over channels, to its anatomical partner. It exposes two
explanation maps: CARE (Channel Attention REpresentation, from an attention block's output) and Grad-CAM of the
last convolution computed from the class logit, both differentiable so that a consistency loss between them can
be trained (:class:`shared.oct.consistency.MultiTaskConsistencyLoss`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.inferers import Inferer
from monai.networks.blocks import Convolution

__all__ = [
    "ATTENTION_TYPES",
    "ChannelCrossAttention",
    "AnatomicalCrossAttentionBlock",
    "AICNet3D",
    "ExplainInferer",
    "normalize_map",
    "load_aicnet3d_checkpoint",
    "latest_stage_checkpoint",
]

ATTENTION_TYPES = ("hemiretinal", "onh_macula", "both", "none")
# spatial axes of a channel-last feature tensor (B, S, A, L, C) that each split type cuts in two
_SPLIT_AXES = {"hemiretinal": (1,), "onh_macula": (3,), "both": (1, 3), "none": ()}


def normalize_map(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale every sample of a non-negative map ``(B, 1, *spatial)`` to a maximum of 1 (all-zero maps stay 0)."""
    peak = x.flatten(1).amax(dim=1).view(-1, *([1] * (x.ndim - 1)))
    return x / (peak + eps)


class ChannelCrossAttention(nn.Module):
    """Multi-head cross-attention over channels (an ``C/h x C/h`` attention matrix per head).

    Queries come from one anatomical part, keys and values from its partner, paired voxel by voxel with the query
    (same number of tokens ``N``). Queries and keys are L2-normalised along the token axis and scaled by a learnable
    per-head temperature, so the attention matrix is a temperature-scaled cosine similarity between channels::

        q = W_q x_q,  k = W_k x_k,  v = W_v x_k   (per token)
        A_h = softmax(t_h * cos(q_h, k_h))         (C/h x C/h, cosine over the N tokens)
        out = W_o blockdiag(A_1..A_h) v + b_o

    Because every projection is linear and has no bias, ``q`` and ``k`` are never built: the cosines come from the
    ``C x C`` Gram matrices of the inputs and the output is one ``C x C`` map ``W_o A W_v`` applied to ``x_k``.
    This is the same function as the direct form (see the tests) at a fraction of the memory traffic.

    Args:
        channels: feature channels ``C``.
        num_heads: attention heads; must divide ``channels``.
    """

    def __init__(self, channels: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        self.num_heads = num_heads
        self.q = nn.Linear(channels, channels, bias=False)
        self.kv = nn.Linear(channels, 2 * channels, bias=False)
        self.proj = nn.Linear(channels, channels)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))

    def attention(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Per-head channel attention matrices ``(B, h, C/h, C/h)`` for ``(B, N, C)`` query and context tokens."""
        b, _, c = query.shape
        h = self.num_heads
        d = c // h
        w_q = self.q.weight
        w_k = self.kv.weight[:c]
        qk = w_q @ (query.transpose(1, 2) @ context) @ w_k.t()  # B C C: q_i . k_j over tokens
        q_sq = ((w_q @ (query.transpose(1, 2) @ query)) * w_q).sum(-1)  # B C: |q_i|^2
        k_sq = ((w_k @ (context.transpose(1, 2) @ context)) * w_k).sum(-1)
        q_norm = q_sq.clamp_min(0).sqrt().clamp_min(1e-12)
        k_norm = k_sq.clamp_min(0).sqrt().clamp_min(1e-12)
        cos = qk / (q_norm.unsqueeze(2) * k_norm.unsqueeze(1))
        cos = torch.diagonal(cos.view(b, h, d, h, d), dim1=1, dim2=3).permute(0, 3, 1, 2)  # B h d d
        return (cos * self.temperature).softmax(dim=-1)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """
        Args:
            query: ``(B, N, C)`` tokens of the query part.
            context: ``(B, N, C)`` tokens of the partner part, token ``n`` paired with query token ``n``.

        Returns:
            ``(B, N, C)``: token ``n`` is the output for query voxel ``n``.
        """
        b, _, c = query.shape
        h = self.num_heads
        attn = self.attention(query, context)
        eye = torch.eye(h, dtype=attn.dtype, device=attn.device).view(1, h, 1, h, 1)
        block_diag = (attn.unsqueeze(3) * eye).reshape(b, c, c)
        mapping = self.proj.weight @ block_diag @ self.kv.weight[c:]  # B C C
        return torch.baddbmm(self.proj.bias.view(1, 1, c), context, mapping.transpose(1, 2))


def _halves(size: int) -> tuple[slice, slice]:
    """Two equal halves of an axis; for odd sizes the middle slice belongs to neither (it keeps only the skip)."""
    half = size // 2
    return slice(0, half), slice(size - half, size)


class AnatomicalCrossAttentionBlock(nn.Module):
    """Bidirectional channel-only cross-attention between anatomical parts of a feature volume.

    ``hemiretinal`` splits the B-scan axis (superior/inferior), ``onh_macula`` the lateral axis (macula/ONH),
    ``both`` both axes: each quadrant attends to its hemiretinal and to its ONH/macula partner (outputs averaged).
    A partner is mirrored across the split plane before pairing, so voxel ``n`` of a query part is paired with the
    mirror-symmetric voxel of its partner (e.g. the same distance from the horizontal raphe), and every output is
    written back at the voxels of the query part it belongs to.

    Structure (per-token LayerNorms, as in pre-norm transformers)::

        y = x + gamma * mean_partners CrossAttn(norm_q(x_part), norm_kv(mirror(x_partner)))
        y = y + GELU(mix(norm_mix(y)))
        out = BatchNorm3d(y)

    Args:
        channels: feature channels ``C``.
        attention_type: ``"hemiretinal"``, ``"onh_macula"`` or ``"both"``.
        num_heads: attention heads.
        layer_scale_init: initial value of the LayerScale ``gamma`` on the attention branch.
    """

    def __init__(
        self, channels: int = 32, attention_type: str = "hemiretinal", num_heads: int = 4, layer_scale_init: float = 0.1
    ) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES or attention_type == "none":
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES[:3]}, got {attention_type!r}.")
        self.attention_type = attention_type
        self.split_axes = _SPLIT_AXES[attention_type]
        # directed pairs as int specs [query halves..., partner halves..., mirror axis]: one half index per split
        # axis; the partner is mirrored across the split plane it is paired over
        if len(self.split_axes) == 1:
            axis = self.split_axes[0]
            self.pair_specs = [[0, 1, axis], [1, 0, axis]]
        else:
            s_axis, l_axis = self.split_axes
            specs = []
            for s in (0, 1):
                for m in (0, 1):
                    specs.append([s, m, 1 - s, m, s_axis])  # hemiretinal partner
                    specs.append([s, m, s, 1 - m, l_axis])  # ONH/macula partner
            self.pair_specs = specs
        self.axes = list(self.split_axes)
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.attn = nn.ModuleList(ChannelCrossAttention(channels, num_heads) for _ in self.pair_specs)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(channels))
        self.norm_mix = nn.LayerNorm(channels)
        self.mix = nn.Linear(channels, channels)
        self.norm_out = nn.BatchNorm3d(channels)

    def _take(self, t: torch.Tensor, halves: list[int]) -> torch.Tensor:
        """View of the part of a channel-last tensor given by one half index per split axis."""
        for j, axis in enumerate(self.axes):
            size = t.size(axis)
            half = size // 2
            t = t.narrow(axis, 0 if halves[j] == 0 else size - half, half)
        return t

    @staticmethod
    def _cat_halves(first: torch.Tensor, second: torch.Tensor, axis: int, size: int) -> torch.Tensor:
        """Join the two halves of an axis; an odd axis gets a zero middle slice (no attention output there)."""
        if size % 2 == 1:
            shape = list(first.shape)
            shape[axis] = 1
            return torch.cat([first, first.new_zeros(shape), second], dim=axis)
        return torch.cat([first, second], dim=axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, C, S, A, L)``.

        Returns:
            ``(B, C, S, A, L)``.
        """
        xt = x.permute(0, 2, 3, 4, 1)  # B S A L C: LayerNorm/Linear act on channels
        for axis in self.axes:
            if xt.size(axis) < 2:
                raise ValueError("the attention block needs at least 2 voxels along every split axis.")
        q_all = self.norm_q(xt)
        kv_all = self.norm_kv(xt)
        b, c = xt.size(0), xt.size(4)
        n = len(self.axes)
        outs: list[torch.Tensor] = []
        for i, attn in enumerate(self.attn):
            spec = self.pair_specs[i]
            query = self._take(q_all, spec[:n])
            context = torch.flip(self._take(kv_all, spec[n : 2 * n]), [spec[2 * n]])
            outs.append(attn(query.reshape(b, -1, c), context.reshape(b, -1, c)).reshape(query.shape))
        # reassemble at the query parts' own voxels; parts are ordered like their specs (2 pairs per quadrant for
        # 'both', whose two partner outputs are averaged)
        if n == 1:
            out = self._cat_halves(outs[0], outs[1], self.axes[0], xt.size(self.axes[0]))
        else:
            s_axis, l_axis = self.axes[0], self.axes[1]
            quads = [(outs[2 * k] + outs[2 * k + 1]) * 0.5 for k in range(4)]
            top = self._cat_halves(quads[0], quads[1], l_axis, xt.size(l_axis))
            bottom = self._cat_halves(quads[2], quads[3], l_axis, xt.size(l_axis))
            out = self._cat_halves(top, bottom, s_axis, xt.size(s_axis))
        y = torch.addcmul(xt, self.gamma, out)
        y = y + F.gelu(self.mix(self.norm_mix(y)))
        return self.norm_out(y.permute(0, 4, 1, 2, 3))


class _Stage(nn.Module):
    """One conv layer, optionally followed by an attention block and/or 2x2x2 max-pooling."""

    def __init__(self, conv: nn.Module, block: nn.Module | None, pool: bool) -> None:
        super().__init__()
        self.conv = conv
        self.has_attention = block is not None
        self.block = block if block is not None else nn.Identity()
        self.pool = nn.MaxPool3d(2) if pool else nn.Identity()

    def post(self, conv_out: torch.Tensor) -> torch.Tensor:
        return self.pool(self.block(conv_out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, self.post(y)


class AICNet3D(nn.Module):
    """AI-CNet3D: five 3D conv layers with anatomically-informed cross-attention and a linear classifier.

    Backbone: conv layers of ``channels`` features with kernels 7 (stride 2), 5, 3, 3, 3, each Conv-BatchNorm-ReLU.
    After each conv layer listed in ``attention_positions`` comes an :class:`AnatomicalCrossAttentionBlock` (none
    for ``attention_type="none"``, the plain CNN baseline) followed by 2x2x2 max-pooling. Global average pooling of
    the whole last feature map feeds a linear layer giving ``num_classes`` logits.

    Parameters: 241,682 for ``hemiretinal``/``onh_macula``, 291,266 for ``both``, 222,466 for ``none``
    (defaults, 2 classes).

    Args:
        in_channels: input channels (1 for OCT intensity).
        num_classes: output logits (2: non-glaucoma, glaucoma).
        attention_type: one of :data:`ATTENTION_TYPES`.
        attention_positions: 1-based conv layers followed by attention (+ max-pooling).
        channels: feature channels of every conv layer.
        num_heads: attention heads.
        layer_scale_init: initial LayerScale value of the attention branch.
        care_block: which attention block (index into the blocks, -1 = last) CARE is taken from.
        dropout: dropout before the classifier (0 disables it).
    """

    kernel_sizes = (7, 5, 3, 3, 3)

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        attention_type: str = "hemiretinal",
        attention_positions: Sequence[int] = (2, 4),
        channels: int = 32,
        num_heads: int = 4,
        layer_scale_init: float = 0.1,
        care_block: int = -1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}.")
        positions = sorted(int(p) for p in attention_positions)
        if len(set(positions)) != len(positions) or any(p < 1 or p > 5 for p in positions):
            raise ValueError(f"attention_positions must be distinct conv layers in 1..5, got {attention_positions}.")
        self.attention_type = attention_type
        self.attention_positions = tuple(positions)
        self.care_block = care_block
        stages = []
        for i, k in enumerate(self.kernel_sizes, start=1):
            conv = Convolution(
                spatial_dims=3,
                in_channels=in_channels if i == 1 else channels,
                out_channels=channels,
                strides=2 if i == 1 else 1,
                kernel_size=k,
                act="RELU",
                norm="BATCH",
            )
            block = None
            if attention_type != "none" and i in positions:
                block = AnatomicalCrossAttentionBlock(channels, attention_type, num_heads, layer_scale_init)
            stages.append(_Stage(conv, block, pool=i in positions))
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        # identifies the architecture inside checkpoints (not a parameter): type code + attention positions
        signature = torch.zeros(6, dtype=torch.long)
        signature[0] = ATTENTION_TYPES.index(attention_type)
        for p in positions:
            signature[p] = 1
        self.register_buffer("arch_signature", signature)
        self._register_load_state_dict_pre_hook(self._check_signature)

    def _check_signature(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + "arch_signature"
        if key not in state_dict:
            return
        theirs = state_dict[key]
        if theirs.shape != self.arch_signature.shape or not torch.equal(theirs.cpu(), self.arch_signature.cpu()):
            t = theirs.tolist()
            kind = ATTENTION_TYPES[t[0]] if 0 <= t[0] < len(ATTENTION_TYPES) else f"unknown({t[0]})"
            pos = [i for i in range(1, 6) if t[i]] if len(t) == 6 else t[1:]
            raise ValueError(
                f"checkpoint was trained with attention_type={kind!r}, attention_positions={pos}, but this network "
                f"is attention_type={self.attention_type!r}, attention_positions={list(self.attention_positions)}: "
                "set the network to the checkpoint's architecture."
            )

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Returns the last conv layer's output, the features fed to the head, and the attention-block outputs."""
        attended: list[torch.Tensor] = []
        last_conv = x
        for stage in self.stages:
            last_conv, x = stage(x)
            if stage.has_attention:
                attended.append(x)
        return last_conv, x, attended

    def _head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(features.mean(dim=(2, 3, 4))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, S, A, L)``.

        Returns:
            ``(B, num_classes)`` logits.
        """
        if x.dim() != 5:
            raise ValueError("AICNet3D expects a (B, C, S, A, L) tensor.")
        _, features, _ = self._run(x)
        return self._head(features)

    @torch.jit.ignore
    def explain(
        self,
        x: torch.Tensor,
        target: int | torch.Tensor | None = None,
        create_graph: bool = False,
        upsample: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Logits plus CARE and Grad-CAM maps.

        CARE: the output of attention block ``care_block`` (after its max-pooling), averaged over channels, ReLU,
        max-normalised per sample. Grad-CAM: the last conv layer's activations weighted by the spatial mean of the
        gradient of the target class *logit*, summed over channels, ReLU, max-normalised per sample. When the two
        grids differ (attention after conv 5) CARE is resampled onto the Grad-CAM grid.

        Args:
            x: ``(B, in_channels, S, A, L)``.
            target: class explained: ``None`` (predicted class), an int, or a ``(B,)`` tensor.
            create_graph: keep the graph of the Grad-CAM gradient so a loss on the maps trains the network.
            upsample: also return the maps trilinearly resized to the input grid (``care_up``, ``gradcam_up``).

        Returns:
            dict with ``logits`` ``(B, num_classes)``, ``care`` and ``gradcam`` ``(B, 1, s, a, l)`` and, if
            ``upsample``, ``care_up`` and ``gradcam_up`` ``(B, 1, S, A, L)``.
        """
        if self.attention_type == "none":
            raise ValueError("CARE needs attention blocks: attention_type 'none' has none.")
        with torch.enable_grad():  # evaluators run under no_grad
            if x.ndim != 5:
                raise ValueError(f"AICNet3D expects a (B, C, S, A, L) tensor, got shape {tuple(x.shape)}.")
            last_conv, features, attended = self._run(x)
            if not last_conv.requires_grad:  # frozen weights: still differentiate the head w.r.t. the activations
                last_conv = last_conv.detach().requires_grad_(True)
                features = self.stages[-1].post(last_conv)
                if self.stages[-1].has_attention:
                    attended[-1] = features
            logits = self._head(features)
            if target is None:
                cls = logits.detach().argmax(dim=1)
            elif isinstance(target, torch.Tensor):
                cls = target.reshape(-1).long().to(logits.device)
            else:
                cls = torch.full((logits.shape[0],), int(target), dtype=torch.long, device=logits.device)
            score = logits.gather(1, cls.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, last_conv, create_graph=create_graph, retain_graph=True)
        weights = grad.mean(dim=(2, 3, 4), keepdim=True)
        gradcam = normalize_map(F.relu((weights * last_conv).sum(dim=1, keepdim=True)))
        care = normalize_map(F.relu(attended[self.care_block].mean(dim=1, keepdim=True)))
        if care.shape[2:] != gradcam.shape[2:]:
            care = F.interpolate(care, size=gradcam.shape[2:], mode="trilinear", align_corners=False)
        if not create_graph:
            gradcam, care = gradcam.detach(), care.detach()
        out = {"logits": logits if create_graph else logits.detach(), "care": care, "gradcam": gradcam}
        if upsample:
            size = x.shape[2:]
            out["care_up"] = F.interpolate(care, size=size, mode="trilinear", align_corners=False)
            out["gradcam_up"] = F.interpolate(gradcam, size=size, mode="trilinear", align_corners=False)
        return out


class ExplainInferer(Inferer):
    """Inferer returning :meth:`AICNet3D.explain`'s dict: ``logits``, ``care``, ``gradcam`` (+ ``*_up``).

    Used by stage-2 training (``create_graph=True``) and by inference when maps are saved. An engine stores the
    dict under ``pred``; post-processing flattens it with ``FlattenSubKeysd(keys="pred")`` and copies ``logits``
    back to ``pred``.

    Args:
        create_graph: keep the Grad-CAM graph (training).
        upsample: add maps at input resolution.
        target: class explained (``None``: predicted class).
    """

    def __init__(self, create_graph: bool = False, upsample: bool = False, target: int | None = None) -> None:
        super().__init__()
        self.create_graph = create_graph
        self.upsample = upsample
        self.target = target

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args, **kwargs) -> dict[str, torch.Tensor]:
        if isinstance(network, nn.parallel.DistributedDataParallel) and self.create_graph:
            # explain() bypasses DDP's forward, so DDP would not synchronise the gradients of this step
            raise RuntimeError("stage-2 fine-tuning (ExplainInferer with create_graph) runs in a single process.")
        net = network.module if hasattr(network, "module") and not isinstance(network, AICNet3D) else network
        if not hasattr(net, "explain"):
            raise TypeError(f"ExplainInferer needs a network with an explain() method, got {type(net).__name__}.")
        return net.explain(inputs, target=self.target, create_graph=self.create_graph, upsample=self.upsample)


def load_aicnet3d_checkpoint(network: nn.Module, path: str, key: str = "model") -> nn.Module:
    """Load a checkpoint written by the training stage into ``network`` (stage 2 and evaluation start here).

    Accepts a plain state dict or a dict holding it under ``key``. Raises a clear error when the file is missing
    (stage 1 was not run) or holds another architecture.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"stage-1 checkpoint not found: {path}. Run stage 1 first "
            "(python -m monai.bundle run training --config_file <bundle>/configs/train.json) "
            "or set the checkpoint path."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    target = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    target.load_state_dict(state)
    return network


def latest_stage_checkpoint(ckpt_dir: str) -> str:
    """The fine-tuned (stage-2) best checkpoint ``ckpt_dir/finetune/model.pt`` when it exists, else stage 1's
    ``ckpt_dir/model.pt``."""
    stage2 = os.path.join(ckpt_dir, "finetune", "model.pt")
    return stage2 if os.path.isfile(stage2) else os.path.join(ckpt_dir, "model.pt")
