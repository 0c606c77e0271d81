# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""AI-CNet3D: an anatomically-informed cross-attention 3D CNN for glaucoma classification from OCT volumes.

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

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution

__all__ = [
    "ATTENTION_TYPES",
    "ATTENTION_BLOCKS",
    "GRADCAM_FORMS",
    "ChannelCrossAttention",
    "AnatomicalCrossAttentionBlock",
    "PublicCrossAttentionBlock",
    "SpatialChannelAttentionBlock",
    "AICNet3D",
    "normalize_map",
]

# "depth" is the non-anatomical control: the same attention between the inner and the outer half of the A-scan;
# "spatial_channel" is the paper's non-anatomical comparison, spatial + channel self-attention over the whole map
# (the order is part of the checkpoints' arch_signature: append, never reorder)
ATTENTION_TYPES = ("hemiretinal", "onh_macula", "both", "none", "depth", "spatial_channel")
_SPLIT_TYPES = ("hemiretinal", "onh_macula", "both", "depth")
# spatial axes of a channel-last feature tensor (B, S, A, L, C) that each split type cuts in two
_SPLIT_AXES = {"hemiretinal": (1,), "onh_macula": (3,), "both": (1, 3), "depth": (2,), "none": ()}
ATTENTION_BLOCKS = ("ours", "public")
GRADCAM_FORMS = ("ours", "public")


def normalize_map(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale every sample of a non-negative map ``(B, 1, *spatial)`` to a maximum of 1 (all-zero maps stay 0)."""
    peak = x.flatten(1).amax(dim=1).view(-1, *([1] * (x.ndim - 1)))
    return x / (peak + eps)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, A, L)`` in channels-last-3d memory (a view when ``C == 1``: the same bytes, channels-last strides).

    Convolutions then run on oneDNN's native channels-last path and the attention blocks see their tokens
    ``(B, S, A, L, C)`` as a contiguous view, with no layout copies in between.
    """
    if x.size(1) == 1 and x.is_contiguous():
        return x.reshape(x.size(0), x.size(2), x.size(3), x.size(4), 1).permute(0, 4, 1, 2, 3)
    return x.contiguous(memory_format=torch.channels_last_3d)


def _augment(gram: torch.Tensor, left: torch.Tensor, right: torch.Tensor, n: int) -> torch.Tensor:
    """``sum_n [u_n; 1][w_n; 1]^T`` ``(..., C+1, C+1)`` from ``sum u w^T`` ``(..., C, C)``, ``sum u`` and ``sum w``."""
    top = torch.cat([gram, left.unsqueeze(-1)], dim=-1)
    corner = right.new_full(list(right.shape[:-1]) + [1], float(n))
    return torch.cat([top, torch.cat([right, corner], dim=-1).unsqueeze(-2)], dim=-2)


def _channel_attention(
    qk: torch.Tensor, q_sq: torch.Tensor, k_sq: torch.Tensor, temperature: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """Block-diagonal channel attention ``(..., C, C)``: per head ``softmax(t_h * cos(q_i, k_j))``.

    Args:
        qk: ``(..., C, C)``, ``q_i . k_j`` summed over the tokens.
        q_sq, k_sq: ``(..., C)``, squared norms of the query / key channels over the tokens.
        temperature: per-head temperature broadcastable to ``(..., h, 1, 1)``.
        num_heads: ``h``; the heads are contiguous groups of ``C / h`` channels.
    """
    c = qk.size(-1)
    d = c // num_heads
    lead = list(qk.shape[:-2])
    q_norm = q_sq.clamp_min(0).sqrt().clamp_min(1e-12)
    k_norm = k_sq.clamp_min(0).sqrt().clamp_min(1e-12)
    cos = qk / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2))
    cos = torch.diagonal(cos.reshape(lead + [num_heads, d, num_heads, d]), dim1=-4, dim2=-2).movedim(-1, -3)
    attn = (cos * temperature).softmax(dim=-1)  # (..., h, d, d)
    eye = torch.eye(num_heads, dtype=attn.dtype, device=attn.device).view(num_heads, 1, num_heads, 1)
    return (attn.unsqueeze(-2) * eye).reshape(lead + [c, c])


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
    :class:`AnatomicalCrossAttentionBlock` holds one per directed pair of parts and evaluates them all at once.

    Args:
        channels: feature channels ``C``.
        num_heads: attention heads; must divide ``channels``.
        attn_drop: dropout on the attention matrix in training (the authors' block: 0.15).
    """

    def __init__(self, channels: int = 32, num_heads: int = 4, attn_drop: float = 0.0) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        self.num_heads = num_heads
        self.q = nn.Linear(channels, channels, bias=False)
        self.kv = nn.Linear(channels, 2 * channels, bias=False)
        self.proj = nn.Linear(channels, channels)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.attn_drop = nn.Dropout(attn_drop)

    def attention(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Block-diagonal attention ``(B, C, C)`` for ``(B, N, C)`` query and context tokens."""
        c = query.size(2)
        w_q = self.q.weight
        w_k = self.kv.weight[:c]
        qk = w_q @ (query.transpose(1, 2) @ context) @ w_k.t()  # B C C: q_i . k_j over tokens
        q_sq = ((w_q @ (query.transpose(1, 2) @ query)) * w_q).sum(-1)  # B C: |q_i|^2
        k_sq = ((w_k @ (context.transpose(1, 2) @ context)) * w_k).sum(-1)
        return _channel_attention(qk, q_sq, k_sq, self.temperature, self.num_heads)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """
        Args:
            query: ``(B, N, C)`` tokens of the query part.
            context: ``(B, N, C)`` tokens of the partner part, token ``n`` paired with query token ``n``.

        Returns:
            ``(B, N, C)``: token ``n`` is the output for query voxel ``n``.
        """
        c = query.size(2)
        mapping = self.proj.weight @ self.attn_drop(self.attention(query, context)) @ self.kv.weight[c:]  # B C C
        return torch.baddbmm(self.proj.bias.view(1, 1, c), context, mapping.transpose(1, 2))


def _mirror_stats(parts: torch.Tensor, mirror_dims: list[list[int]], num_parts: int) -> list[torch.Tensor]:
    """Tokens of every part's mirrored partners and the Gram statistics the attention needs.

    Args:
        parts: part-major tokens ``(B, P, ..., C)``, contiguous.
        mirror_dims: per split axis, the dims of ``parts`` whose flip mirrors every part onto its partner.
        num_parts: ``P``.

    Returns:
        ``[m_1.., own, total, cross_1..]``: mirrored partners ``m_k`` ``(B*P, N, C)`` (token ``n`` paired with
        token ``n`` of the part), ``own = z^T z`` ``(B*P, C, C)``, ``total = sum_n z_n`` ``(B*P, C)`` and
        ``cross_k = z^T m_k`` ``(B*P, C, C)``, where ``z`` ``(B*P, N, C)`` are the parts' own tokens.
    """
    c = parts.size(-1)
    z = parts.view(parts.size(0) * num_parts, -1, c)
    mirrored = [parts.flip(dims).view(z.shape) for dims in mirror_dims]
    zt = z.transpose(1, 2)
    return mirrored + [torch.bmm(zt, z), z.sum(1)] + [torch.bmm(zt, m) for m in mirrored]


class _MirrorStats(torch.autograd.Function):
    """:func:`_mirror_stats` with a backward that writes the gradient of ``parts`` in one buffer.

    Autograd would build one full-size gradient per use of ``z`` and ``m_k`` (each Gram, the sum, each flip) and
    add them up. Here every term is folded into one flip of the incoming ``dm_k`` (``flip(z) = m_k``, so
    ``flip(z @ D) = m_k @ partner(D)``) followed by in-place batched matmuls. The backward is made of
    differentiable ops, so double backward (Grad-CAM through a block with ``create_graph``) still works.
    """

    @staticmethod
    def forward(ctx, parts: torch.Tensor, mirror_dims: list[list[int]], num_parts: int):  # type: ignore[override]
        outs = _mirror_stats(parts, mirror_dims, num_parts)
        ctx.mirror_dims = mirror_dims
        ctx.num_parts = num_parts
        ctx.save_for_backward(parts, *outs[: len(mirror_dims)])
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):  # type: ignore[override]
        parts, *mirrored = ctx.saved_tensors
        k_axes = len(ctx.mirror_dims)
        d_m, (d_own, d_total), d_cross = grads[:k_axes], grads[k_axes : k_axes + 2], grads[k_axes + 2 :]
        b, c = parts.size(0), parts.size(-1)
        stats = [b] + [2] * k_axes + [c, c]  # per-part C x C matrices, part-major

        def partner(t: torch.Tensor, k: int) -> torch.Tensor:  # each part's matrix moved to its partner
            return t.reshape(stats).flip(1 + k).reshape(t.shape)

        grad = d_m[0].reshape(parts.shape).flip(ctx.mirror_dims[0])
        for k in range(1, k_axes):
            grad.add_(d_m[k].reshape(parts.shape).flip(ctx.mirror_dims[k]))
        g = grad.view(mirrored[0].shape)
        z = parts.view(g.shape)
        dt = g.dtype  # the small gradients may come out of autocast in lower precision
        g.baddbmm_(z, (d_own + d_own.transpose(1, 2)).to(dt))
        for k in range(k_axes):
            g.baddbmm_(mirrored[k], (d_cross[k].transpose(1, 2) + partner(d_cross[k], k)).to(dt))
        g.add_(d_total.unsqueeze(1).to(dt))
        return grad, None, None


def _cat_halves(first: torch.Tensor, second: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """Join the two halves of an axis; an odd axis gets a zero middle slice (no attention output there)."""
    if size % 2 == 1:
        shape = list(first.shape)
        shape[axis] = 1
        return torch.cat([first, first.new_zeros(shape), second], dim=axis)
    return torch.cat([first, second], dim=axis)


class AnatomicalCrossAttentionBlock(nn.Module):
    """Bidirectional channel-only cross-attention between anatomical parts of a feature volume.

    ``hemiretinal`` splits the B-scan axis (superior/inferior), ``onh_macula`` the lateral axis (macula/ONH),
    ``both`` both axes: each quadrant attends to its hemiretinal and to its ONH/macula partner (outputs averaged);
    ``depth`` splits the A-scan axis, a partner with no anatomical meaning (the control for the anatomical splits).
    A partner is mirrored across the split plane before pairing, so voxel ``n`` of a query part is paired with the
    mirror-symmetric voxel of its partner (e.g. the same distance from the horizontal raphe), and every output is
    written back at the voxels of the query part it belongs to. For odd sizes the middle slice belongs to no part
    (it keeps only the skip path).

    Structure (per-token LayerNorms, as in pre-norm transformers)::

        y = x + gamma * mean_partners CrossAttn(norm_q(x_part), norm_kv(mirror(x_partner)))
        y = y + GELU(mix(norm_mix(y)))
        out = BatchNorm3d(y)

    How it is computed: both LayerNorms normalise the same voxels, so the tokens are normalised once (``x_hat``)
    and their affine maps are folded, with ``W_q``, ``W_k``, ``W_v``, ``W_o`` and ``gamma``, into per-part
    ``(C+1) x (C+1)`` statistics and ``C x C`` output maps. The parts are laid out part-major, ``(B * P, N, C)``
    (a view for ``hemiretinal``), and one flip of that tensor per split axis gives every part's mirrored partner.
    The attention output of all parts is then one batched matmul of the mirrored tokens.

    Args:
        channels: feature channels ``C``.
        attention_type: ``"hemiretinal"``, ``"onh_macula"``, ``"both"`` or ``"depth"``.
        num_heads: attention heads.
        layer_scale_init: initial value of the LayerScale ``gamma`` on the attention branch.
    """

    def __init__(
        self, channels: int = 32, attention_type: str = "hemiretinal", num_heads: int = 4, layer_scale_init: float = 0.1
    ) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES or attention_type == "none":
            raise ValueError(f"attention_type must be one of {_SPLIT_TYPES}, got {attention_type!r}.")
        self.attention_type = attention_type
        self.num_heads = num_heads
        self.axes = list(_SPLIT_AXES[attention_type])
        n_axes = len(self.axes)
        self.num_parts = 2**n_axes
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        # one ChannelCrossAttention per directed pair, ordered part by part (S half major, then L half) and, for
        # 'both', hemiretinal partner before ONH/macula partner: index = part * n_axes + split axis
        self.attn = nn.ModuleList(ChannelCrossAttention(channels, num_heads) for _ in range(self.num_parts * n_axes))
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(channels))
        self.norm_mix = nn.LayerNorm(channels)
        self.mix = nn.Linear(channels, channels)
        self.norm_out = nn.BatchNorm3d(channels)
        # part-major layout: (B, S, A, L, C) with every split axis viewed as (2, half) is permuted to
        # (B, 2 [, 2], rest...); `to_parts` is that permutation, `from_parts` its inverse, `mirror_dims[k]` the dims
        # to flip (part index and position within the half) to mirror across the plane of split axis k
        split_dims, half_dims, other_dims = [], [], []
        d = 0
        for axis in range(5):
            if axis in self.axes:
                split_dims.append(d)
                half_dims.append(d + 1)
                d += 2
            else:
                other_dims.append(d)
                d += 1
        rest = sorted(half_dims + other_dims[1:])
        self.to_parts = [0] + split_dims + rest
        self.from_parts = [self.to_parts.index(i) for i in range(len(self.to_parts))]
        self.mirror_dims = [[1 + k, self.to_parts.index(half_dims[k])] for k in range(n_axes)]

    def _split_shape(self, t: torch.Tensor) -> list[int]:
        shape: list[int] = []
        for axis in range(5):
            if axis in self.axes:
                shape += [2, t.size(axis) // 2]
            else:
                shape.append(t.size(axis))
        return shape

    def _mapping(
        self, k: int, cross: torch.Tensor, own: torch.Tensor, partner: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output map ``(B, P, C, C)`` and bias ``(B, P, C)`` of every part's attention to its split-axis-``k``
        partner, from the augmented statistics ``(B, P, C+1, C+1)``: query x partner, query x query, partner x
        partner (both LayerNorm affines, the projections, LayerScale and the partner average folded in)."""
        n_axes = len(self.axes)
        w_q, w_k, w_v, w_o, b_o, temp = [], [], [], [], [], []
        for i, attn in enumerate(self.attn):
            if i % n_axes == k:
                c = attn.q.weight.size(0)
                w_q.append(attn.q.weight)
                w_k.append(attn.kv.weight[:c])
                w_v.append(attn.kv.weight[c:])
                w_o.append(attn.proj.weight)
                b_o.append(attn.proj.bias)
                temp.append(attn.temperature)
        wq, wk, wv, wo = torch.stack(w_q), torch.stack(w_k), torch.stack(w_v), torch.stack(w_o)  # P C C
        g_q, b_q = self.norm_q.weight, self.norm_q.bias
        g_kv, b_kv = self.norm_kv.weight, self.norm_kv.bias
        # q_n = A [x_hat_n; 1] with A = [W_q diag(g_q), W_q b_q] (P, C, C+1); likewise k and v with norm_kv
        a_q = torch.cat([wq * g_q, (wq @ b_q).unsqueeze(-1)], dim=-1)
        a_k = torch.cat([wk * g_kv, (wk @ b_kv).unsqueeze(-1)], dim=-1)
        a_v = torch.cat([wv * g_kv, (wv @ b_kv).unsqueeze(-1)], dim=-1)
        qk = a_q @ cross @ a_k.transpose(-1, -2)
        q_sq = ((a_q @ own) * a_q).sum(-1)
        k_sq = ((a_k @ partner) * a_k).sum(-1)
        heads = _channel_attention(qk, q_sq, k_sq, torch.stack(temp), self.num_heads)  # B P C C
        scale = (self.gamma / n_axes).unsqueeze(-1)
        full = wo @ heads @ a_v  # B P C C+1
        c = full.size(-2)
        return full[..., :c] * scale, (full[..., c] + torch.stack(b_o)) * scale.squeeze(-1)

    @torch.jit.unused
    def _mirror_stats_autograd(self, parts: torch.Tensor) -> list[torch.Tensor]:
        return list(_MirrorStats.apply(parts, self.mirror_dims, self.num_parts))

    def _attend(self, xt: torch.Tensor) -> torch.Tensor:
        """``xt + gamma * attention output`` for channel-last tokens ``xt`` ``(B, S, A, L, C)``."""
        sizes = xt.shape
        b, c = xt.size(0), xt.size(4)
        odd = False
        xn = F.layer_norm(xt, [c], None, None, self.norm_q.eps)  # shared by norm_q and norm_kv (affines folded)
        for axis in self.axes:
            size = xn.size(axis)
            if size % 2 == 1:  # the middle slice belongs to no part
                odd = True
                half = size // 2
                xn = torch.cat([xn.narrow(axis, 0, half), xn.narrow(axis, size - half, half)], dim=axis)
        split = self._split_shape(xn)
        parts = xn.view(split).permute(self.to_parts).contiguous()  # a view for hemiretinal
        p = self.num_parts
        k_axes = len(self.axes)
        if torch.jit.is_scripting() or not (torch.is_grad_enabled() and parts.requires_grad):
            outs = _mirror_stats(parts, self.mirror_dims, p)
        else:
            outs = self._mirror_stats_autograd(parts)
        mirrored, (own, total), crosses = outs[:k_axes], outs[k_axes : k_axes + 2], outs[k_axes + 2 :]
        n = mirrored[0].size(1)
        stats_shape = [b] + [2] * k_axes + [c + 1]
        total = total.view(b, p, c)
        own = _augment(own.view(b, p, c, c), total, total, n)
        weights: list[torch.Tensor] = []
        bias = torch.zeros(1)
        for k, dims in enumerate(self.mirror_dims):
            partner_total = total.view(stats_shape[:-1] + [c]).flip(dims[0]).view(b, p, c)
            partner = own.view(stats_shape + [c + 1]).flip(dims[0]).view(b, p, c + 1, c + 1)
            cross = _augment(crosses[k].view(b, p, c, c), total, partner_total, n)
            weight, part_bias = self._mapping(k, cross, own, partner)
            weights.append(weight.reshape(b * p, c, c).transpose(1, 2))
            bias = part_bias if k == 0 else bias + part_bias
        out = torch.baddbmm(bias.reshape(b * p, 1, c), mirrored[0], weights[0])
        for k in range(1, k_axes):  # in place: autocast does not cast for in-place ops, so match dtypes here
            out = out.baddbmm_(mirrored[k].to(out.dtype), weights[k].to(out.dtype))
        if not odd and self.to_parts == list(range(len(self.to_parts))):  # parts are a view of the tokens
            return out.add_(xt.view(out.shape)).view(sizes)
        out = out.view([split[i] for i in self.to_parts]).permute(self.from_parts)  # split layout
        if not odd:
            return (xt.view(split) + out).view(sizes)
        full = out.reshape(xn.shape)
        for axis in self.axes:
            if sizes[axis] % 2 == 1:
                half = xn.size(axis) // 2
                full = _cat_halves(full.narrow(axis, 0, half), full.narrow(axis, half, half), axis, sizes[axis])
        return xt + full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, C, S, A, L)``, best in channels-last-3d memory.

        Returns:
            ``(B, C, S, A, L)`` in channels-last-3d memory.
        """
        xt = x.permute(0, 2, 3, 4, 1)  # B S A L C: LayerNorm/Linear act on channels
        if not xt.is_contiguous():
            xt = xt.contiguous()
        for axis in self.axes:
            if xt.size(axis) < 2:
                raise ValueError("the attention block needs at least 2 voxels along every split axis.")
        y = self._attend(xt)
        y = F.gelu(self.mix(self.norm_mix(y))).add_(y)  # GELU's backward needs its input, not its output
        return self.norm_out(y.permute(0, 4, 1, 2, 3))


class PublicCrossAttentionBlock(nn.Module):
    """The authors' cross-attention block (public AI-CNet3D code), for comparison with
    :class:`AnatomicalCrossAttentionBlock`.

    The split axis is cut into two halves and token ``n`` of one half is paired with token ``n`` of the other: a
    translation (``s <-> s + S/2``), not a mirror. Each part is layer-normalised with its own LayerNorm (with
    ``both``, one per ONH/macula side, shared by the two hemiretinas), attends over channels to its partner(s) with
    :class:`ChannelCrossAttention` (attention dropout ``attn_drop``), and the outputs are written back at the part's
    own voxels::

        a = x + gamma * [CA(norm(x_part), norm(x_partner))]_parts      (gamma starts at 1e-6)
        out = a + Conv1x1(Dropout3d(a))

    With ``both``, every quarter attends to its hemiretinal and to its ONH/macula partner and the two outputs are
    summed. The authors' code writes the outputs of its ``onh_macula`` and combined blocks back at other voxels than
    the queries' (a reshaping slip); here every output lands at its query, and its two LayerNorms that take no part
    in the forward pass are left out (so this block has 4C parameters fewer than its parameter count). For odd sizes
    the middle slice belongs to no part (it keeps the skip path only).

    Args:
        channels: feature channels ``C``.
        attention_type: ``"hemiretinal"``, ``"onh_macula"``, ``"both"`` or ``"depth"``.
        num_heads: attention heads.
        layer_scale_init: initial ``gamma`` (the authors': 1e-6).
        attn_drop: dropout on the attention matrices (the authors': 0.15).
        proj_drop: Dropout3d before the 1x1 convolution (the authors': 0.1).
    """

    def __init__(
        self,
        channels: int = 32,
        attention_type: str = "hemiretinal",
        num_heads: int = 4,
        layer_scale_init: float = 1e-6,
        attn_drop: float = 0.15,
        proj_drop: float = 0.1,
    ) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES or attention_type == "none":
            raise ValueError(f"attention_type must be one of {_SPLIT_TYPES}, got {attention_type!r}.")
        self.attention_type = attention_type
        self.axes = list(_SPLIT_AXES[attention_type])
        # the part a LayerNorm belongs to: the half of the last split axis (ONH/macula side for "both")
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(2))
        # one attention per directed pair: (query part, partner part), parts numbered by their halves
        self.pairs = []
        for part in range(2 ** len(self.axes)):
            for k in range(len(self.axes)):
                self.pairs.append((part, part ^ (1 << (len(self.axes) - 1 - k))))
        self.attn = nn.ModuleList(ChannelCrossAttention(channels, num_heads, attn_drop) for _ in self.pairs)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(channels))
        self.drop = nn.Dropout3d(proj_drop)
        self.conv = nn.Conv3d(channels, channels, 1)

    def _part(self, xt: torch.Tensor, part: int) -> tuple[torch.Tensor, list[slice]]:
        """Tokens ``(B, N_part, C)`` of a part and its index into ``xt`` ``(B, S, A, L, C)``."""
        index = [slice(None)] * 5
        for k, axis in enumerate(self.axes):
            size, half = xt.size(axis), xt.size(axis) // 2
            second = (part >> (len(self.axes) - 1 - k)) & 1
            index[axis] = slice(size - half, size) if second else slice(0, half)
        tokens = xt[tuple(index)]
        return tokens.reshape(xt.size(0), -1, xt.size(4)), index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, A, L)`` -> ``(B, C, S, A, L)``."""
        xt = x.permute(0, 2, 3, 4, 1)
        for axis in self.axes:
            if xt.size(axis) < 2:
                raise ValueError("the attention block needs at least 2 voxels along every split axis.")
        parts = [self._part(xt, p) for p in range(2 ** len(self.axes))]
        normed = [self.norms[p & 1](tokens) for p, (tokens, _) in enumerate(parts)]
        update = torch.zeros_like(xt)
        for (query, partner), attn in zip(self.pairs, self.attn):
            tokens, index = parts[query]
            out = attn(normed[query], normed[partner])
            update[tuple(index)] = update[tuple(index)] + out.reshape(xt[tuple(index)].shape)
        a = (xt + self.gamma * update).permute(0, 4, 1, 2, 3)
        return a + self.conv(self.drop(a))


class SpatialChannelAttentionBlock(nn.Module):
    """Spatial + channel self-attention over the whole feature map (the efficient paired attention of UNETR++), the
    configuration the paper compares the anatomical cross-attention with, built as the authors' code builds it.

    With tokens ``x`` ``(B, N, C)`` and ``h`` heads of ``d = C / h`` channels::

        q, k, v_c, v_s = split(W x)                     (W: C -> 4C, no bias; each (B, h, d, N))
        q^, k^ = L2-normalised over the N tokens
        channel: A_c = softmax(t_1 * q^ k^T)  (d x d),  x_c = A_c v_c
        spatial: A_s = softmax(t_2 * q^T E(k))  (N x P), x_s = A_s E(v_s)^T   (E: Linear(N, P), shared)
        EPA(x) = [Linear_s(x_s) ; Linear_c(x_c)]        (C/2 channels each)
        a = x + gamma * EPA(LayerNorm(x));  out = a + Conv1x1(Dropout3d(a))

    ``E`` projects the token axis, so the block is made for one feature-map size (``num_tokens``). The spatial
    branch's output is laid out back into ``(B, N, C)`` as the authors' code does (a reshape of ``(B, d, h, N)``,
    which mixes channels and tokens: part of the function being compared).

    Args:
        channels: feature channels ``C``.
        num_tokens: ``N``, the voxels of the feature map the block sees.
        proj_size: ``P``, the projected token count (the authors': 64).
        num_heads: attention heads.
        attn_drop: dropout on both attention matrices (the authors': 0.15).
        proj_drop: Dropout3d before the 1x1 convolution (the authors': 0.1).
        layer_scale_init: initial ``gamma`` (the authors': 1e-6).
    """

    def __init__(
        self,
        channels: int = 32,
        num_tokens: int = 4096,
        proj_size: int = 64,
        num_heads: int = 4,
        attn_drop: float = 0.15,
        proj_drop: float = 0.1,
        layer_scale_init: float = 1e-6,
    ) -> None:
        super().__init__()
        if channels % num_heads or channels % 2:
            raise ValueError(f"channels ({channels}) must be even and divisible by num_heads ({num_heads}).")
        self.num_heads, self.num_tokens = num_heads, num_tokens
        self.norm = nn.LayerNorm(channels)
        self.qkvv = nn.Linear(channels, 4 * channels, bias=False)
        self.token_proj = nn.Linear(num_tokens, proj_size)
        self.temperature_channel = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.temperature_spatial = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.attn_drop = nn.Dropout(attn_drop)
        self.out_spatial = nn.Linear(channels, channels // 2)
        self.out_channel = nn.Linear(channels, channels // 2)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(channels))
        self.drop = nn.Dropout3d(proj_drop)
        self.conv = nn.Conv3d(channels, channels, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """EPA of tokens ``(B, N, C)`` -> ``(B, N, C)``."""
        b, n, c = x.shape
        h = self.num_heads
        q, k, v_c, v_s = self.qkvv(x).reshape(b, n, 4, h, c // h).permute(2, 0, 3, 4, 1)  # each (B, h, d, N)
        k_proj, v_proj = self.token_proj(k), self.token_proj(v_s)  # (B, h, d, P)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        a_c = self.attn_drop((q @ k.transpose(-2, -1) * self.temperature_channel).softmax(dim=-1))  # (B, h, d, d)
        x_c = (a_c @ v_c).permute(0, 3, 1, 2).reshape(b, n, c)
        a_s = self.attn_drop((q.transpose(-2, -1) @ k_proj * self.temperature_spatial).softmax(dim=-1))  # (B,h,N,P)
        x_s = (a_s @ v_proj.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(b, n, c)
        return torch.cat([self.out_spatial(x_s), self.out_channel(x_c)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, A, L)`` with ``S * A * L == num_tokens`` -> the same shape."""
        b, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)
        if tokens.shape[1] != self.num_tokens:
            raise ValueError(
                f"the spatial + channel attention block was made for {self.num_tokens} voxels, got "
                f"{tuple(x.shape[2:])}: build the network with the input_size it is fed."
            )
        a = tokens + self.gamma * self.attention(self.norm(tokens))
        a = a.transpose(1, 2).reshape(x.shape)
        return a + self.conv(self.drop(a))


def _attention_grids(input_size: Sequence[int], positions: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """The feature-map size after each attention position's conv layer, for an input of ``input_size``: conv 1
    (kernel 7, stride 2, padding 3) halves every side rounding up, each attention position's max-pooling halves
    it again rounding down."""
    size = [(int(n) + 1) // 2 for n in input_size]
    grids = {}
    for i in range(1, 6):
        if i in positions:
            grids[i] = tuple(size)
            size = [n // 2 for n in size]
    return grids


class _ConvBlock(Convolution):
    """MONAI Conv-BatchNorm-ReLU whose eval-mode forward folds the BatchNorm into the convolution (one pass, no
    normalised copy); training runs the plain layers with the ReLU in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.adn(self.conv(x))
        bn = self.adn.N
        mean, var, gain, shift = bn.running_mean, bn.running_var, bn.weight, bn.bias
        bias = self.conv.bias
        assert mean is not None and var is not None and gain is not None and shift is not None and bias is not None
        scale = gain * torch.rsqrt(var + bn.eps)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1, 1)
        return torch.relu_(self.conv._conv_forward(x, weight, (bias - mean) * scale + shift))


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

    Parameters: 241,682 for ``hemiretinal``/``onh_macula``/``depth``, 291,266 for ``both``, 222,466 for ``none``
    (defaults, 2 classes); the authors' block (``attention_block="public"``) has 241,426 and 291,010 (their code
    counts two LayerNorms more, which its forward pass never uses).

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
        attention_block: ``"ours"`` (:class:`AnatomicalCrossAttentionBlock`) or ``"public"`` (the authors' block,
            :class:`PublicCrossAttentionBlock`; ``layer_scale_init`` then does not apply, it starts at 1e-6).
        gradcam: how :meth:`explain` computes Grad-CAM: ``"ours"`` (post-ReLU conv-5 activations, channel weights
            from the class logit's gradient kept in the graph) or ``"public"`` (the authors': pre-BatchNorm conv-5
            output, channel weights from the gradient taken as constants).
        input_size: ``(S, A, L)`` the network is fed; needed by ``attention_type="spatial_channel"`` only, whose
            blocks project the token axis of a fixed-size feature map (:class:`SpatialChannelAttentionBlock`).
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
        attention_block: str = "ours",
        gradcam: str = "ours",
        input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}.")
        if attention_block not in ATTENTION_BLOCKS:
            raise ValueError(f"attention_block must be one of {ATTENTION_BLOCKS}, got {attention_block!r}.")
        if gradcam not in GRADCAM_FORMS:
            raise ValueError(f"gradcam must be one of {GRADCAM_FORMS}, got {gradcam!r}.")
        self.attention_block = attention_block
        self.gradcam = gradcam
        if attention_type == "spatial_channel" and input_size is None:
            raise ValueError("attention_type 'spatial_channel' needs input_size: its blocks are made for one size.")
        positions = sorted(int(p) for p in attention_positions)
        if len(set(positions)) != len(positions) or any(p < 1 or p > 5 for p in positions):
            raise ValueError(f"attention_positions must be distinct conv layers in 1..5, got {attention_positions}.")
        self.attention_type = attention_type
        self.attention_positions = tuple(positions)
        self.care_block = care_block
        grids = _attention_grids(input_size, positions) if input_size is not None else {}
        stages = []
        for i, k in enumerate(self.kernel_sizes, start=1):
            conv = _ConvBlock(
                spatial_dims=3,
                in_channels=in_channels if i == 1 else channels,
                out_channels=channels,
                strides=2 if i == 1 else 1,
                kernel_size=k,
                act=("RELU", {"inplace": True}),
                norm="BATCH",
            )
            block = None
            if attention_type == "spatial_channel" and i in positions:
                block = SpatialChannelAttentionBlock(channels, math.prod(grids[i]), num_heads=num_heads)
            elif attention_type != "none" and i in positions and attention_block == "public":
                block = PublicCrossAttentionBlock(channels, attention_type, num_heads)
            elif attention_type != "none" and i in positions:
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
        x = _channels_last(x)
        last_conv = x
        for stage in self.stages:
            last_conv, x = stage(x)
            if stage.has_attention:
                attended.append(x)
        return last_conv, x, attended

    def _run_pre_norm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """As :meth:`_run`, but returns the last conv layer's output before its BatchNorm and ReLU."""
        attended: list[torch.Tensor] = []
        x = _channels_last(x)
        for stage in self.stages[:-1]:
            _, x = stage(x)
            if stage.has_attention:
                attended.append(x)
        last = self.stages[-1]
        pre_norm = last.conv.conv(x)
        features = last.post(last.conv.adn(pre_norm))
        if last.has_attention:
            attended.append(features)
        return pre_norm, features, attended

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
        grids differ (attention after conv 5) CARE is resampled onto the Grad-CAM grid. ``gradcam="ours"``: the
        post-ReLU activations, and with ``create_graph`` the channel weights stay in the graph (so a loss on the map
        also trains the classifier); ``"public"``: the pre-BatchNorm conv output, channel weights taken as constants
        (the authors' hooks), the activations alone in the graph.

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
        if x.ndim != 5:
            raise ValueError(f"AICNet3D expects a (B, C, S, A, L) tensor, got shape {tuple(x.shape)}.")
        last = self.stages[-1]
        if self.gradcam == "public":
            return self._explain_public(x, target, create_graph, upsample)
        # conv 5 feeds global average pooling + linear directly: d logit_k / d A = W_k / N at every voxel, so the
        # Grad-CAM weights need no backward pass (and no graph at all when the maps are not trained)
        closed_form = not last.has_attention and isinstance(last.pool, nn.Identity)
        closed_form = closed_form and (not self.training or self.dropout.p == 0)
        with torch.set_grad_enabled(create_graph or torch.is_grad_enabled() or not closed_form):
            last_conv, features, attended = self._run(x)
            if not closed_form and not last_conv.requires_grad:  # frozen weights: differentiate w.r.t. activations
                last_conv = last_conv.detach().requires_grad_(True)
                features = last.post(last_conv)
                if last.has_attention:
                    attended[-1] = features
            logits = self._head(features)
            cls = _target_classes(logits, target)
            if closed_form:
                grad = self.classifier.weight[cls].view(cls.numel(), -1, 1, 1, 1) / last_conv[0, 0].numel()
            else:
                score = logits.gather(1, cls.view(-1, 1)).sum()
                (grad,) = torch.autograd.grad(score, last_conv, create_graph=create_graph, retain_graph=True)
        return self._maps(x, logits, grad, last_conv, attended, create_graph, upsample)

    def _explain_public(
        self, x: torch.Tensor, target: int | torch.Tensor | None, create_graph: bool, upsample: bool
    ) -> dict[str, torch.Tensor]:
        """:meth:`explain` with the authors' Grad-CAM (``gradcam="public"``)."""
        with torch.set_grad_enabled(True):
            pre_norm, features, attended = self._run_pre_norm(x)
            if not pre_norm.requires_grad:  # frozen weights: differentiate w.r.t. the activations
                pre_norm = pre_norm.detach().requires_grad_(True)
                features = self.stages[-1].post(self.stages[-1].conv.adn(pre_norm))
                if self.stages[-1].has_attention:
                    attended[-1] = features
            logits = self._head(features)
            score = logits.gather(1, _target_classes(logits, target).view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, pre_norm, retain_graph=create_graph)
        return self._maps(x, logits, grad, pre_norm, attended, create_graph, upsample)

    def _maps(self, x, logits, grad, activations, attended, create_graph: bool, upsample: bool) -> dict:
        """Grad-CAM from the gradient and the activations it was taken for, CARE, and their resized copies."""
        weights = grad.mean(dim=(2, 3, 4), keepdim=True)
        gradcam = normalize_map(F.relu((weights * activations).sum(dim=1, keepdim=True)))
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


def _target_classes(logits: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """The class explained per sample ``(B,)``: the predicted one, a given int, or a given tensor."""
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, torch.Tensor):
        return target.reshape(-1).long().to(logits.device)
    return torch.full((logits.shape[0],), int(target), dtype=torch.long, device=logits.device)
