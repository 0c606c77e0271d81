# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""SwinUNETR with adaptive window attention and multi-scale convolution fusion.

Method: "Adaptive Transformer Attention and Multi-Scale Fusion for Spine 3D Segmentation" (arXiv 2503.12853).
Both additions start out as identities, so a freshly built network computes what MONAI's ``SwinUNETR`` computes,
and both switch off by constructor flags, in which case the module is MONAI's SwinUNETR, parameters and code alike.

Speed: the window attention runs as one fused attention per chunk of windows (relative-position bias, saliency
bias and shifted-window mask as one additive mask, the temperature folded into the queries; the backward pass
recomputes each chunk's probabilities instead of keeping them), the fusion's parallel depthwise branches are
summed into one kernel before they are applied, and convolutions run channels-last. ``precision="bf16"`` (or
``"auto"`` on a CPU with native bf16) runs the forward pass under bf16 autocast, about twice as fast on such a CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import SwinTransformerBlock, WindowAttention

from shared.errors import InputError
from shared.networks.precision import check_precision, resolve_precision

__all__ = [
    "window_attention",
    "reference_window_attention",
    "FusedWindowAttention",
    "AdaptiveWindowAttention",
    "MultiScaleFusion",
    "AdaptiveSwinUNETR",
    "check_roi_size",
]

# logits held at once per chunk of windows, by device type: about 4 MiB of float32 stays in a CPU core's cache;
# elsewhere (a GPU) chunks are as large as memory comfortably allows
_CHUNK_ELEMENTS = {"cpu": 1 << 20, "other": 1 << 27}


def _chunks(b: int, group: int, chunk: int):
    """Slices of ``chunk`` windows that never straddle two images (``group`` windows each), with the matching slice
    of the per-window shift mask."""
    for g0 in range(0, b, group):
        for w0 in range(0, group, chunk):
            w1 = min(group, w0 + chunk)
            yield slice(g0 + w0, g0 + w1), slice(w0, w1)


def _logit_bias(rel: torch.Tensor, key_bias: torch.Tensor | None, mask: torch.Tensor | None, rows, mrows):
    """The one additive mask of a chunk: (cw, heads, N, N), float32 or wider."""
    cw = rows.stop - rows.start
    bias = rel.unsqueeze(0).expand(cw, *rel.shape)
    if key_bias is not None:
        bias = bias + key_bias[rows].unsqueeze(2)
    if mask is not None:
        bias = bias + mask[mrows].unsqueeze(1)
    return bias


class _ChunkedWindowAttention(torch.autograd.Function):
    """softmax(q k^T + bias) v over chunks of windows. Forward: one ``scaled_dot_product_attention`` per chunk with
    a single additive mask. Backward: the chunk's probabilities are recomputed, so only q, k, v and the small bias
    terms are kept between passes (no (windows, heads, N, N) tensor survives the forward). The bias gradients come
    out here because the fused kernels do not return a gradient for their mask."""

    @staticmethod
    def forward(ctx, q, k, v, rel, key_bias, mask, group, chunk):
        out = torch.empty_like(q)
        for rows, mrows in _chunks(q.shape[0], group, chunk):
            bias = _logit_bias(rel, key_bias, mask, rows, mrows).to(q.dtype)
            out[rows] = F.scaled_dot_product_attention(q[rows], k[rows], v[rows], attn_mask=bias, scale=1.0)
        ctx.save_for_backward(q, k, v, rel, key_bias, mask)
        ctx.group, ctx.chunk = group, chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, rel, key_bias, mask = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        acc = torch.promote_types(q.dtype, torch.float32)  # logits and their gradients: float32 or wider
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        drel = torch.zeros(rel.shape, dtype=acc, device=rel.device)
        dkey = None if key_bias is None else torch.empty(key_bias.shape, dtype=acc, device=q.device)
        with torch.autocast(q.device.type, enabled=False):
            for rows, mrows in _chunks(q.shape[0], ctx.group, ctx.chunk):
                logits = torch.matmul(q[rows], k[rows].transpose(-2, -1)).to(acc)
                probs = torch.softmax(logits.add_(_logit_bias(rel, key_bias, mask, rows, mrows)), dim=-1)
                dprobs = torch.matmul(grad_out[rows], v[rows].transpose(-2, -1)).to(acc)
                dlogits = torch._softmax_backward_data(dprobs, probs, -1, acc)
                torch.matmul(probs.transpose(-2, -1).to(v.dtype), grad_out[rows], out=dv[rows])
                dlogits_q = dlogits.to(q.dtype)
                torch.matmul(dlogits_q, k[rows], out=dq[rows])
                torch.matmul(dlogits_q.transpose(-2, -1), q[rows], out=dk[rows])
                drel += dlogits.sum(0)
                if dkey is not None:
                    torch.sum(dlogits, dim=2, out=dkey[rows])
        dkey = None if dkey is None else dkey.to(key_bias.dtype)
        return dq, dk, dv, drel.to(rel.dtype), dkey, None, None, None


def _plain(t: torch.Tensor | None) -> torch.Tensor | None:
    # only MetaTensors: the tensor subclasses of tracing and export must stay what they are
    return t.as_subclass(torch.Tensor) if isinstance(t, MetaTensor) else t


def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_bias: torch.Tensor,
    key_bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused window attention ``softmax(q k^T + rel_bias + key_bias + mask) v`` (no further scaling: fold it into q).

    Args:
        q, k, v: (B * nW, heads, N, d).
        rel_bias: (heads, N, N) relative-position bias, shared by all windows.
        key_bias: (B * nW, heads, N) per-key bias of each window, or None.
        mask: (nW, N, N) shifted-window mask (0 or -100), or None.

    Returns:
        (B * nW, heads, N, d).
    """
    # plain tensors: a MetaTensor from a MONAI pipeline would carry batch metadata into every per-chunk slice
    q, k, v, rel_bias, key_bias, mask = (_plain(t) for t in (q, k, v, rel_bias, key_bias, mask))
    b, h, n, _ = q.shape
    group = mask.shape[0] if mask is not None else b
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
        # an exported graph holds no Python function: one plain fused call over all windows
        bias = _logit_bias(rel_bias, key_bias, None, slice(0, b), None)
        if mask is not None:
            bias = (bias.reshape(b // group, group, h, n, n) + mask.unsqueeze(1)).reshape(b, h, n, n)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)
    budget = _CHUNK_ELEMENTS.get(q.device.type, _CHUNK_ELEMENTS["other"])
    chunk = max(1, budget // (h * n * n))
    # one dtype for the three (a learnt fp32 temperature can promote q under autocast): autocast's, else q's
    device = q.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else q.dtype
    q, k, v = (t.to(dtype).contiguous() for t in (q, k, v))
    return _ChunkedWindowAttention.apply(q, k, v, rel_bias.contiguous(), key_bias, mask, group, chunk)


def reference_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_bias: torch.Tensor,
    key_bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    dropout: nn.Module | None = None,
) -> torch.Tensor:
    """What :py:func:`window_attention` computes, written out step by step as MONAI's ``WindowAttention`` does
    (full (B * nW, heads, N, N) logits and probabilities; attention dropout applied). Shapes as there."""
    b, h, n, _ = q.shape
    attn = q @ k.transpose(-2, -1) + rel_bias.unsqueeze(0)
    if key_bias is not None:
        attn = attn + key_bias.unsqueeze(2)
    if mask is not None:
        nw = mask.shape[0]
        attn = (attn.view(b // nw, nw, h, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(b, h, n, n)
    attn = torch.softmax(attn, dim=-1)
    if dropout is not None:
        attn = dropout(attn)
    return attn.to(v.dtype) @ v


class FusedWindowAttention(WindowAttention):
    """MONAI's Swin window attention (same parameters, same function) computed by :py:func:`window_attention`.

    ``fused = False`` (an attribute) computes it step by step instead; so does a training pass with attention
    dropout, which the fused kernel cannot replay in its backward pass.

    Shapes: ``x`` (num_windows * B, N, dim), ``mask`` (num_windows, N, N) or None; output like ``x``.
    """

    fused: bool = True

    @classmethod
    def from_window_attention(cls, attn: WindowAttention, **kwargs) -> FusedWindowAttention:
        """Build a copy of ``attn`` of this class that holds its current weights."""
        new = cls(
            attn.dim,
            attn.num_heads,
            attn.window_size,
            qkv_bias=attn.qkv.bias is not None,
            attn_drop=attn.attn_drop.p,
            proj_drop=attn.proj_drop.p,
            **kwargs,
        )
        new.load_state_dict(attn.state_dict(), strict=False)
        return new.to(attn.qkv.weight.device)

    def attention_terms(self, x: torch.Tensor):
        """q (already scaled), k, v as (B', heads, N, d), the relative-position bias (heads, N, N) and the per-key
        bias (B', heads, N) or None."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        rel = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)]
        return q * self.scale, k, v, rel.reshape(n, n, -1).permute(2, 0, 1), None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v, rel, key_bias = self.attention_terms(x)
        if self.fused and not (self.training and self.attn_drop.p > 0):
            x = window_attention(q, k, v, rel, key_bias, mask)
        else:
            x = reference_window_attention(q, k, v, rel, key_bias, mask, self.attn_drop)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class AdaptiveWindowAttention(FusedWindowAttention):
    """Swin window attention whose logits adapt to the window's content.

    For head ``h``, query token ``i`` and key token ``j`` the logits become::

        (q_i . k_j * scale + rel_bias_ij) / tau_h + s_hj

    ``tau_h`` is a learnable per-head temperature (sharper or flatter attention per head) and ``s_hj`` a boundary
    saliency of key ``j``: a light MLP of the token's deviation from its window mean, which is large where the
    window holds an edge (e.g. cortical bone against soft tissue). ``tau = 1`` and a zero-initialised last saliency
    layer make the module start out as plain window attention. The shifted-window mask is added unscaled. The
    temperature is folded into q and the (heads, N, N) bias table, never applied to full-size logits.

    Args:
        saliency_ratio: hidden width of the saliency MLP as a fraction of ``dim`` (at least 8 units).
        Other arguments as :py:class:`monai.networks.nets.swin_unetr.WindowAttention`.

    Shapes: ``x`` (num_windows * B, N, dim), ``mask`` (num_windows, N, N) or None; output like ``x``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: Sequence[int],
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        saliency_ratio: float = 0.25,
    ) -> None:
        super().__init__(dim, num_heads, window_size, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.log_temperature = nn.Parameter(torch.zeros(num_heads))
        hidden = max(8, int(dim * saliency_ratio))
        self.saliency = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_heads))
        nn.init.zeros_(self.saliency[-1].weight)
        nn.init.zeros_(self.saliency[-1].bias)

    def attention_terms(self, x: torch.Tensor):
        q, k, v, rel, _ = super().attention_terms(x)
        inv_tau = torch.exp(-self.log_temperature).view(-1, 1, 1)
        saliency = self.saliency(x - x.mean(dim=1, keepdim=True))  # (B', N, heads), one score per key token
        return q * inv_tau, k, v, rel * inv_tau, saliency.transpose(1, 2)


class MultiScaleFusion(nn.Module):
    """Parallel depthwise convolutions of several kernel sizes, fused with softmax-normalised learned weights.

    ``y = x + W_pw( sum_i softmax(alpha)_i * DWConv_{k_i}(x) )``. Depthwise branches keep the cost of large
    kernels low; the pointwise projection ``W_pw`` mixes channels and is zero-initialised, so the block starts
    as the identity and the network it is inserted into keeps its behaviour at initialisation.

    The branches are linear and centred, so their weighted sum is one depthwise convolution whose kernel is the
    weighted sum of the branch kernels, zero-padded to the largest size: that single convolution is what runs
    (``fused = False``, an attribute, runs the branches one by one; same result to float precision).

    Args:
        channels: feature channels ``C``.
        kernel_sizes: one branch per (odd) kernel size.
        spatial_dims: 2 or 3.

    Shapes: input and output (B, C, *spatial).
    """

    fused: bool = True

    def __init__(self, channels: int, kernel_sizes: Sequence[int] = (1, 3, 5), spatial_dims: int = 3) -> None:
        super().__init__()
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be a non-empty list of odd sizes, got {list(kernel_sizes)}.")
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.spatial_dims = spatial_dims
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.branches = nn.ModuleList(
            conv(channels, channels, k, padding=k // 2, groups=channels, bias=False) for k in self.kernel_sizes
        )
        self.branch_logits = nn.Parameter(torch.zeros(len(self.kernel_sizes)))
        self.project = conv(channels, channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    @property
    def branch_weights(self) -> torch.Tensor:
        """The normalised fusion weights, one per kernel size."""
        return torch.softmax(self.branch_logits, dim=0)

    def fused_kernel(self) -> torch.Tensor:
        """The one depthwise kernel (C, 1, K, ..., K), K the largest kernel size, that equals the weighted branches."""
        size = max(self.kernel_sizes)
        return sum(
            w * F.pad(branch.weight, [(size - k) // 2] * (2 * self.spatial_dims))
            for w, k, branch in zip(self.branch_weights, self.kernel_sizes, self.branches)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            conv = F.conv3d if self.spatial_dims == 3 else F.conv2d
            kernel = self.fused_kernel()
            fused = conv(x, kernel, padding=kernel.shape[-1] // 2, groups=kernel.shape[0])
        else:
            fused = sum(w * branch(x) for w, branch in zip(self.branch_weights, self.branches))
        return x + self.project(fused)


class AdaptiveSwinUNETR(SwinUNETR):
    """MONAI's SwinUNETR with adaptive window attention in the Swin encoder and multi-scale fusion blocks.

    The five skip features that enter the decoder are numbered by resolution::

        stage 0: encoder1(x)          feature_size    x 1
        stage 1: encoder2(hidden[0])  feature_size    x 1/2
        stage 2: encoder3(hidden[1])  2*feature_size  x 1/4
        stage 3: encoder4(hidden[2])  4*feature_size  x 1/8
        stage 4: hidden[3]            8*feature_size  x 1/16

    ``msf_stages`` picks the skips that get a :py:class:`MultiScaleFusion` block; ``msf_on_input`` adds one on the
    input features, the patch embedding (feature_size x 1/2) before the first Swin stage, which then feeds the
    Swin encoder and skip 1 alike. With ``use_msf=False`` and ``adaptive_attention=False`` the module is MONAI's
    SwinUNETR: its parameter names, its code, its output bit for bit.

    Args:
        use_msf: insert multi-scale fusion blocks (on the skips of ``msf_stages`` and, with ``msf_on_input``, on
            the input features).
        msf_kernel_sizes: kernel sizes of the fusion branches.
        msf_stages: the skip stages (0-4) that get a fusion block.
        msf_on_input: also fuse the patch-embedded input features before the first Swin stage.
        adaptive_attention: replace every Swin window attention by :py:class:`AdaptiveWindowAttention`.
        saliency_ratio: hidden width of the saliency MLP relative to the stage's channels.
        fast_path: fused window attention (:py:func:`window_attention`) and channels-last convolutions. ``None``
            (default): on whenever an improvement is on, so with both off the module stays MONAI's code; ``True``
            with both off gives SwinUNETR's function (its weights load strictly) to float precision.
        precision: ``"fp32"`` (default): ``forward`` sets no precision of its own, so an enclosing autocast (a
            bundle's ``amp`` on a GPU) applies; ``"bf16"``: ``forward`` runs under bf16 autocast (weights stay
            fp32, the output is fp32); ``"auto"``: bf16 where the device computes it natively
            (:func:`~shared.networks.precision.resolve_precision`), else as ``"fp32"``.
        kwargs: everything :py:class:`monai.networks.nets.SwinUNETR` takes (``in_channels``, ``out_channels``,
            ``feature_size``, ``depths``, ``num_heads``, ``use_checkpoint``, ``use_v2``, ...).

    Shapes: input (B, in_channels, H, W, D) with every side divisible by ``patch_size ** 5`` (32);
    output (B, out_channels, H, W, D) logits.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        use_msf: bool = True,
        msf_kernel_sizes: Sequence[int] = (1, 3, 5),
        msf_stages: Sequence[int] = (1, 2, 3, 4),
        msf_on_input: bool = False,
        adaptive_attention: bool = True,
        saliency_ratio: float = 0.25,
        fast_path: bool | None = None,
        precision: str = "fp32",
        **kwargs,
    ) -> None:
        super().__init__(in_channels=in_channels, out_channels=out_channels, **kwargs)
        self.precision = check_precision(precision)
        if kwargs.get("use_hyena", False):
            raise ValueError("AdaptiveSwinUNETR adapts window attention; it cannot be combined with use_hyena=True.")
        spatial_dims = kwargs.get("spatial_dims", 3)
        fs = kwargs.get("feature_size", 24)
        skip_channels = (fs, fs, 2 * fs, 4 * fs, 8 * fs)
        stages = sorted(set(int(s) for s in msf_stages)) if use_msf else []
        if any(s not in range(5) for s in stages):
            raise ValueError(f"msf_stages must be within 0..4 (the five decoder skips), got {list(msf_stages)}.")
        on_input = bool(use_msf and msf_on_input)
        self.use_msf = bool(stages) or on_input
        self.adaptive_attention = adaptive_attention
        self.fast_path = (self.use_msf or adaptive_attention) if fast_path is None else bool(fast_path)
        self.msf = nn.ModuleList(
            MultiScaleFusion(c, msf_kernel_sizes, spatial_dims) if i in stages else nn.Identity()
            for i, c in enumerate(skip_channels)
        )
        self.msf_input = MultiScaleFusion(fs, msf_kernel_sizes, spatial_dims) if on_input else nn.Identity()
        attention = AdaptiveWindowAttention if adaptive_attention else FusedWindowAttention if self.fast_path else None
        if attention is not None:
            extra = {"saliency_ratio": saliency_ratio} if adaptive_attention else {}
            for block in self.swinViT.modules():
                if isinstance(block, SwinTransformerBlock):
                    block.attn = attention.from_window_attention(block.attn, **extra)
                    block.attn.fused = self.fast_path
        # channels-last: oneDNN runs these 3D convolutions about twice as fast as on channels-first tensors
        self.memory_format = torch.contiguous_format
        if self.fast_path:
            self.memory_format = torch.channels_last_3d if spatial_dims == 3 else torch.channels_last
            self.to(memory_format=self.memory_format)

    def encode(self, x_in: torch.Tensor) -> list[torch.Tensor]:
        """The Swin encoder's five normalised feature maps (``SwinTransformer.forward``), with the input fusion
        block after the patch embedding. Shapes: (B, feature_size * 2**i, *spatial / 2**(i + 1)), i = 0..4."""
        vit, fmt = self.swinViT, self.memory_format
        x = vit.pos_drop(self.msf_input(vit.patch_embed(x_in)))
        hidden = [vit.proj_out(x, self.normalize)]
        for i in range(1, 5):
            if vit.use_v2:
                x = getattr(vit, f"layers{i}c")[0](x.contiguous(memory_format=fmt))
            x = getattr(vit, f"layers{i}")[0](x.contiguous(memory_format=fmt))
            hidden.append(vit.proj_out(x, self.normalize))
        return hidden

    def compute_precision(self, device: torch.device | str) -> str:
        """``"bf16"`` or ``"fp32"``: the precision ``forward`` sets on ``device`` (fp32: none of its own)."""
        return "fp32" if self.precision == "fp32" else resolve_precision(self.precision, device)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        exporting = torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_exporting()
        if not exporting:
            self._check_input_size(x_in.shape[2:])
        bf16 = not exporting and self.compute_precision(x_in.device) == "bf16"
        if self.fast_path:
            x_in = x_in.contiguous(memory_format=self.memory_format)
        with torch.autocast(x_in.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = self._decode(x_in, self.encode(x_in), bf16_cpu=bf16 and x_in.device.type == "cpu")
        return out.float() if bf16 else out

    def _decode(self, x_in: torch.Tensor, hidden: list[torch.Tensor], bf16_cpu: bool = False) -> torch.Tensor:
        skips = [self.encoder1(x_in), self.encoder2(hidden[0]), self.encoder3(hidden[1]), self.encoder4(hidden[2])]
        skips.append(hidden[3])
        skips = [_shallow_in_fp32(fuse, s, bf16_cpu) for fuse, s in zip(self.msf, skips)]
        dec4 = _shallow_in_fp32(self.encoder10, hidden[4], bf16_cpu)
        dec3 = self.decoder5(dec4, skips[4])
        dec2 = self.decoder4(dec3, skips[3])
        dec1 = self.decoder3(dec2, skips[2])
        dec0 = self.decoder2(dec1, skips[1])
        out = self.decoder1(dec0, skips[0])
        return self.out(out)


def _shallow_in_fp32(block: nn.Module, x: torch.Tensor, bf16_cpu: bool) -> torch.Tensor:
    """``block(x)``, in fp32 when bf16 autocast runs on a CPU and a convolution of ``block`` has a kernel larger
    than ``x`` along some axis: oneDNN's bf16 backward returns garbage weight gradients for those (dense and
    depthwise, seen with torch 2.13 on AVX-512-BF16). Only the deepest, smallest maps are that shallow, so fp32 there
    costs nothing. Sides may differ (an anisotropic patch): the shortest one decides."""
    if bf16_cpu and x.ndim == 5:
        depth = max((max(m.kernel_size) for m in block.modules() if isinstance(m, nn.Conv3d)), default=1)
        if min(x.shape[2:]) < depth:
            with torch.autocast(x.device.type, enabled=False):
                return block(x.float())
    return block(x)


def check_roi_size(roi_size: Sequence[int], patch_size: int = 2) -> Sequence[int]:
    """Check a patch/window size before any compute: every side must divide by ``patch_size ** 5`` (32), and the
    bottleneck (each side / 32) must hold more than one voxel, which its instance norm needs in training. Sides may
    differ (e.g. ``[32, 128, 128]`` for a thin sagittal slab). Returns ``roi_size``."""
    factor = patch_size**5
    sides = [int(s) for s in roi_size]
    bad = [s for s in sides if s % factor or s < factor]
    if bad or math.prod(s // factor for s in sides) < 2:  # a config value: reported as one line (shared.errors)
        raise InputError(
            f"roi_size {list(roi_size)} does not fit the network: every side must be a positive multiple of {factor}"
            f", and not all {factor} (its bottleneck needs more than one voxel), e.g. [96, 96, 96] or [32, 128, 128]."
        )
    return roi_size
