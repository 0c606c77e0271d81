"""SwinUNETR with adaptive window attention and multi-scale convolution fusion on the skip connections.

Method: "Adaptive Transformer Attention and Multi-Scale Fusion for Spine 3D Segmentation" (arXiv 2503.12853).
Both additions start out as identities, so a freshly built network computes what MONAI's ``SwinUNETR`` computes,
and both switch off by constructor flags, in which case the module holds exactly SwinUNETR's parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import SwinTransformerBlock, WindowAttention

__all__ = ["AdaptiveWindowAttention", "MultiScaleFusion", "AdaptiveSwinUNETR", "check_roi_size"]


class AdaptiveWindowAttention(WindowAttention):
    """Swin window attention whose logits adapt to the window's content.

    For head ``h``, query token ``i`` and key token ``j`` the logits become::

        (q_i . k_j * scale + rel_bias_ij) / tau_h + s_hj

    ``tau_h`` is a learnable per-head temperature (sharper or flatter attention per head) and ``s_hj`` a boundary
    saliency of key ``j``: a light MLP of the token's deviation from its window mean, which is large where the
    window holds an edge (e.g. cortical bone against soft tissue). ``tau = 1`` and a zero-initialised last saliency
    layer make the module start out as plain window attention. The shifted-window mask is added unscaled.

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

    @classmethod
    def from_window_attention(cls, attn: WindowAttention, saliency_ratio: float = 0.25) -> AdaptiveWindowAttention:
        """Build an adaptive copy of ``attn`` that shares its current weights."""
        new = cls(
            attn.dim,
            attn.num_heads,
            attn.window_size,
            qkv_bias=attn.qkv.bias is not None,
            attn_drop=attn.attn_drop.p,
            proj_drop=attn.proj_drop.p,
            saliency_ratio=saliency_ratio,
        )
        new.load_state_dict(attn.state_dict(), strict=False)
        return new.to(attn.qkv.weight.device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        rel_bias = self.relative_position_bias_table[self.relative_position_index.clone()[:n, :n].reshape(-1)]
        rel_bias = rel_bias.reshape(n, n, -1).permute(2, 0, 1)  # (heads, N, N)

        # the temperature scales q and the small bias table rather than the (B', heads, N, N) logits: one full-size
        # pass (and one saved activation) fewer
        inv_tau = torch.exp(-self.log_temperature).view(-1, 1, 1)
        saliency = self.saliency(x - x.mean(dim=1, keepdim=True))  # (B', N, heads), one score per key token
        attn = (q * (self.scale * inv_tau)) @ k.transpose(-2, -1)
        attn += (rel_bias * inv_tau).unsqueeze(0)  # in place: an add's backward keeps nothing
        attn += saliency.transpose(1, 2).unsqueeze(2)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(self.softmax(attn)).to(v.dtype)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class MultiScaleFusion(nn.Module):
    """Parallel depthwise convolutions of several kernel sizes, fused with softmax-normalised learned weights.

    ``y = x + W_pw( sum_i softmax(alpha)_i * DWConv_{k_i}(x) )``. Depthwise branches keep the cost of large
    kernels low; the pointwise projection ``W_pw`` mixes channels and is zero-initialised, so the block starts
    as the identity and the network it is inserted into keeps its behaviour at initialisation.

    Args:
        channels: feature channels ``C``.
        kernel_sizes: one branch per (odd) kernel size.
        spatial_dims: 2 or 3.

    Shapes: input and output (B, C, *spatial).
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int] = (1, 3, 5), spatial_dims: int = 3) -> None:
        super().__init__()
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be a non-empty list of odd sizes, got {list(kernel_sizes)}.")
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.branch_weights
        fused = sum(w * branch(x) for w, branch in zip(weights, self.branches))
        return x + self.project(fused)


class AdaptiveSwinUNETR(SwinUNETR):
    """MONAI's SwinUNETR with adaptive window attention in the Swin encoder and multi-scale fusion on the skips.

    The five skip features that enter the decoder are numbered by resolution::

        stage 0: encoder1(x)          feature_size    x 1
        stage 1: encoder2(hidden[0])  feature_size    x 1/2
        stage 2: encoder3(hidden[1])  2*feature_size  x 1/4
        stage 3: encoder4(hidden[2])  4*feature_size  x 1/8
        stage 4: hidden[3]            8*feature_size  x 1/16

    ``msf_stages`` picks the stages that get a :py:class:`MultiScaleFusion` block. With ``use_msf=False`` and
    ``adaptive_attention=False`` the module has SwinUNETR's parameter names and computes SwinUNETR's output.

    Args:
        use_msf: insert multi-scale fusion blocks on the skips.
        msf_kernel_sizes: kernel sizes of the fusion branches.
        msf_stages: the skip stages (0-4) that get a fusion block.
        adaptive_attention: replace every Swin window attention by :py:class:`AdaptiveWindowAttention`.
        saliency_ratio: hidden width of the saliency MLP relative to the stage's channels.
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
        adaptive_attention: bool = True,
        saliency_ratio: float = 0.25,
        **kwargs,
    ) -> None:
        super().__init__(in_channels=in_channels, out_channels=out_channels, **kwargs)
        if kwargs.get("use_hyena", False):
            raise ValueError("AdaptiveSwinUNETR adapts window attention; it cannot be combined with use_hyena=True.")
        spatial_dims = kwargs.get("spatial_dims", 3)
        fs = kwargs.get("feature_size", 24)
        skip_channels = (fs, fs, 2 * fs, 4 * fs, 8 * fs)
        stages = sorted(set(int(s) for s in msf_stages)) if use_msf else []
        if any(s not in range(5) for s in stages):
            raise ValueError(f"msf_stages must be within 0..4 (the five decoder skips), got {list(msf_stages)}.")
        self.use_msf = bool(stages)
        self.adaptive_attention = adaptive_attention
        self.msf = nn.ModuleList(
            MultiScaleFusion(c, msf_kernel_sizes, spatial_dims) if i in stages else nn.Identity()
            for i, c in enumerate(skip_channels)
        )
        if adaptive_attention:
            for block in self.swinViT.modules():
                if isinstance(block, SwinTransformerBlock):
                    block.attn = AdaptiveWindowAttention.from_window_attention(block.attn, saliency_ratio)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self._check_input_size(x_in.shape[2:])
        hidden = self.swinViT(x_in, self.normalize)
        skips = [self.encoder1(x_in), self.encoder2(hidden[0]), self.encoder3(hidden[1]), self.encoder4(hidden[2])]
        skips.append(hidden[3])
        skips = [fuse(s) for fuse, s in zip(self.msf, skips)]
        dec4 = self.encoder10(hidden[4])
        dec3 = self.decoder5(dec4, skips[4])
        dec2 = self.decoder4(dec3, skips[3])
        dec1 = self.decoder3(dec2, skips[2])
        dec0 = self.decoder2(dec1, skips[1])
        out = self.decoder1(dec0, skips[0])
        return self.out(out)


def check_roi_size(roi_size: Sequence[int], patch_size: int = 2) -> Sequence[int]:
    """Check a patch/window size before any compute: every side must divide by ``patch_size ** 5`` (32) and be at
    least twice that, since the bottleneck's instance norm needs more than one voxel. Returns ``roi_size``."""
    factor = patch_size**5
    bad = [int(s) for s in roi_size if int(s) % factor or int(s) < 2 * factor]
    if bad:
        raise ValueError(
            f"roi_size {list(roi_size)} does not fit the network: every side must be a multiple of {factor} "
            f"and at least {2 * factor} (e.g. [96, 96, 96])."
        )
    return roi_size
