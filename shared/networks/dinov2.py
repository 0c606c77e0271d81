# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
DINOv2 vision transformer (ViT-S/14 by default), written so that Meta's official checkpoint
``dinov2_vits14_pretrain.pth`` loads with strict key matching.

Also converts the timm (``vit_small_patch14_dinov2.lvd142m``) and Hugging Face (``facebook/dinov2-small``)
layouts to the official one. Depends on torch only (no torchvision, timm or transformers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from shared.networks.hub_weights import hub_weights_path
from shared.networks.precision import PRECISIONS, check_precision, cpu_has_native_bf16, resolve_precision

__all__ = [
    "PRECISIONS",
    "cpu_has_native_bf16",
    "resolve_precision",
    "DINOV2_VITS14_URL",
    "DINOV2_VITS14_FILENAME",
    "DinoV2ViT",
    "dinov2_vits14",
    "convert_dinov2_state_dict",
    "detect_dinov2_layout",
    "read_state_dict",
    "load_dinov2_weights",
    "weights_fingerprint",
]

logger = logging.getLogger(__name__)

DINOV2_VITS14_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
DINOV2_VITS14_FILENAME = "dinov2_vits14_pretrain.pth"


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (B, C, H, W) -> (B, H/p * W/p, D)."""

    def __init__(self, patch_size: int = 14, in_channels: int = 3, embed_dim: int = 384) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def _bf16_attention_is_fast(device: torch.device) -> bool:
    """CPU attention kernels run bf16 on AMX tiles; without AMX (AVX-512-BF16 only) the bf16 kernel measured no
    faster than the fp32 one, which is also the more accurate."""
    return device.type != "cpu" or bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (the official key layout)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim {dim} must be divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        if not torch.jit.is_scripting() and qkv.dtype == torch.bfloat16:
            x = self._bf16_attention(qkv)
        else:
            x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # scale is head_dim ** -0.5
        return self.proj(x.transpose(1, 2).reshape(b, n, d))

    @torch.jit.unused
    def _bf16_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        """Attention of bf16 (3, B, heads, N, head_dim) projections; in fp32 where the bf16 kernel is slower."""
        if _bf16_attention_is_fast(qkv.device):
            return F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        with torch.autocast(qkv.device.type, enabled=False):
            qkv = qkv.float()
            return F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, layerscale_init: float = 1.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # addcmul is x + branch * gamma (LayerScale) in one pass over the tokens; under bf16 autocast the branch is
        # bf16 and the residual stream stays fp32
        x = torch.addcmul(x, self.attn(self.norm1(x)), self.ls1.gamma)
        return torch.addcmul(x, self.mlp(self.norm2(x)), self.ls2.gamma)


class DinoV2ViT(nn.Module):
    """
    DINOv2 vision transformer backbone (no head). Defaults give ViT-S/14 (22,056,576 parameters), whose
    state-dict keys equal those of Meta's ``dinov2_vits14_pretrain.pth``.

    Args:
        img_size: image side the position embeddings were trained for (518 -> a 37 x 37 grid + cls).
        patch_size: patch side in pixels.
        in_channels: input channels.
        embed_dim: token width.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        layerscale_init: initial LayerScale value, 1.0 as Meta's hub constructor; it only matters for random
            weights, where a tiny value would make the CLS token almost independent of the input.
        interpolate_offset: the official implementation scales the position grid by
            ``(new_grid + offset) / old_grid`` when interpolating; 0 uses the exact target size instead.
        precision: compute precision of ``forward``: ``"fp32"``, ``"bf16"`` (autocast: matrix products in bf16,
            attention too where its bf16 kernel is the faster; residual stream, norms and output in fp32) or
            ``"auto"`` (see :func:`resolve_precision`). Weights stay fp32, so checkpoints load and save unchanged.
            ``forward`` sets the precision itself, so an enclosing autocast (e.g. an AMP evaluator) does not change
            it; a TorchScript export computes in fp32.

    Input: (B, in_channels, H, W) with H and W multiples of ``patch_size``.
    Output of ``forward``: (B, embed_dim) float32, the final-norm CLS token.
    """

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        in_channels: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        layerscale_init: float = 1.0,
        interpolate_offset: float = 0.1,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        if img_size % patch_size != 0:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}.")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.interpolate_offset = float(interpolate_offset)
        self.grid_size = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size**2 + 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, layerscale_init) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # normal clipped at 2 std: the usual ViT init, much faster than trunc_normal_ for 22M values
        self.pos_embed.normal_(0, 0.02).clamp_(-0.04, 0.04)
        self.cls_token.normal_(0, 1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.02).clamp_(-0.04, 0.04)
                if m.bias is not None:
                    m.bias.zero_()

    def interpolate_pos_encoding(self, h: int, w: int) -> torch.Tensor:
        """Position embeddings for an ``h`` x ``w`` patch grid: (1, h * w + 1, D), bicubic as in the original."""
        if h == self.grid_size and w == self.grid_size:
            return self.pos_embed
        pos = self.pos_embed.float()
        grid = pos[:, 1:].reshape(1, self.grid_size, self.grid_size, self.embed_dim).permute(0, 3, 1, 2)
        if self.interpolate_offset > 0:
            # the released weights were used with this scale factor; keep it so features match the reference code
            scale = [(h + self.interpolate_offset) / self.grid_size, (w + self.interpolate_offset) / self.grid_size]
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
        else:
            grid = F.interpolate(grid, size=[h, w], mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, self.embed_dim)
        return torch.cat([pos[:, :1], grid], dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, D) tokens; ``masks`` (B, N) bool replaces patches by the mask token."""
        b, _, h, w = x.shape
        if h % self.patch_size != 0 or w % self.patch_size != 0:
            raise ValueError(f"input sides {h}x{w} must be multiples of the patch size {self.patch_size}.")
        tokens = self.patch_embed(x).float()  # fp32 residual stream, also under bf16 autocast
        if masks is not None:
            tokens = torch.where(masks.unsqueeze(-1), self.mask_token.to(tokens.dtype).unsqueeze(0), tokens)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1).to(tokens.dtype), tokens], dim=1)
        return tokens + self.interpolate_pos_encoding(h // self.patch_size, w // self.patch_size).to(tokens.dtype)

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, D) normalised tokens (index 0 is the CLS token)."""
        x = self.prepare_tokens(x, masks)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def compute_precision(self, device: torch.device | str) -> str:
        """``"bf16"`` or ``"fp32"``: what ``forward`` computes in on ``device`` (part of embedding cache keys)."""
        return resolve_precision(self.precision, device)

    @torch.jit.unused
    def _forward_cls(self, x: torch.Tensor) -> torch.Tensor:
        bf16 = self.compute_precision(x.device) == "bf16"
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.forward_features(x)[:, 0].float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, D) CLS embedding."""
        if torch.jit.is_scripting():
            return self.forward_features(x)[:, 0]  # TorchScript export: fp32
        if torch.jit.is_tracing() or torch.compiler.is_exporting():
            return self.forward_features(x)[:, 0]  # traced or exported graphs (ONNX): fp32, no autocast region
        return self._forward_cls(x)


def dinov2_vits14(weights: str | None = "official", img_size: int = 518, **kwargs) -> DinoV2ViT:
    """ViT-S/14 with weights from ``weights`` (see :func:`load_dinov2_weights`); ``kwargs`` go to
    :class:`DinoV2ViT` (e.g. ``precision``)."""
    net = DinoV2ViT(img_size=img_size, patch_size=14, embed_dim=384, depth=12, num_heads=6, **kwargs)
    if weights is not None:
        load_dinov2_weights(net, weights)
    return net


# ----------------------------------------------------------------------------------------------------------------
# checkpoint layouts

_HF_PREFIXES = ("dinov2.", "backbone.", "model.")
# the hub files use attention.attention.{query,key,value}; transformers >= 5 names the modules {q,k,v}_proj
_HF_QKV = {
    "attention.attention.query": "query",
    "attention.attention.key": "key",
    "attention.attention.value": "value",
    "attention.q_proj": "query",
    "attention.k_proj": "key",
    "attention.v_proj": "value",
}


def detect_dinov2_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Return ``"official"``, ``"timm"`` or ``"hf"`` for a DINOv2 state dict (after prefix stripping)."""
    keys = set(state_dict)
    if any(k.startswith("embeddings.") or k.startswith("encoder.layer.") for k in keys):
        return "hf"
    if "blocks.0.attn.qkv.weight" in keys:
        return "official" if "mask_token" in keys else "timm"
    raise ValueError(
        "state dict is not a DINOv2 checkpoint in the official, timm or Hugging Face layout; "
        f"first keys: {sorted(keys)[:8]}"
    )


def _strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = dict(state_dict)
    for prefix in ("module.", "teacher.backbone.", "student.backbone.") + _HF_PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    # Hugging Face classification models keep the backbone under "dinov2." next to a "classifier."
    if any(k.startswith("dinov2.") for k in sd):
        sd = {k[len("dinov2.") :]: v for k, v in sd.items() if k.startswith("dinov2.")}
    return sd


def _convert_hf(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    simple = {
        "embeddings.cls_token": "cls_token",
        "embeddings.mask_token": "mask_token",
        "embeddings.position_embeddings": "pos_embed",
        "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "layernorm.weight": "norm.weight",
        "layernorm.bias": "norm.bias",
    }
    block_map = {
        "norm1": "norm1",
        "norm2": "norm2",
        "attention.output.dense": "attn.proj",
        "attention.o_proj": "attn.proj",  # transformers >= 5 module names
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for k, v in sd.items():
        if k in simple:
            out[simple[k]] = v
            continue
        m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias|lambda1)", k)
        if m is None:
            unknown.append(k)
            continue
        i, name, param = int(m.group(1)), m.group(2), m.group(3)
        if name in ("layer_scale1", "layer_scale2") and param == "lambda1":
            out[f"blocks.{i}.ls{name[-1]}.gamma"] = v
        elif name in block_map:
            out[f"blocks.{i}.{block_map[name]}.{param}"] = v
        elif name in _HF_QKV:
            qkv.setdefault((i, param), {})[_HF_QKV[name]] = v
        else:
            unknown.append(k)
    for (i, param), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            unknown.append(f"encoder.layer.{i}.attention.attention.*.{param} (has only {sorted(parts)})")
            continue
        out[f"blocks.{i}.attn.qkv.{param}"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    # unknown keys are kept under their own names so a strict load lists them
    for k in unknown:
        out[k] = sd[k] if k in sd else torch.empty(0)
    if "cls_token" in out and out["cls_token"].ndim == 2:
        out["cls_token"] = out["cls_token"].reshape(1, 1, -1)
    return out


def convert_dinov2_state_dict(
    state_dict: Mapping[str, torch.Tensor], layout: str | None = None, embed_dim: int | None = None
) -> dict[str, torch.Tensor]:
    """
    Convert a DINOv2 state dict in the official, timm or Hugging Face layout to the official layout.

    Args:
        state_dict: the checkpoint's tensors (wrapping prefixes such as ``module.`` or ``dinov2.`` are stripped).
        layout: ``"official"``, ``"timm"`` or ``"hf"``; detected from the keys when None.
        embed_dim: token width, used to create the (unused at inference) ``mask_token`` that timm drops.
    """
    sd = _strip_prefixes(state_dict)
    layout = layout or detect_dinov2_layout(sd)
    if layout == "official":
        return dict(sd)
    if layout == "timm":
        out = {k: v for k, v in sd.items() if not k.startswith("head.")}  # timm may carry an empty/classifier head
        if "mask_token" not in out:
            # timm drops the mask token; it only takes part in masked-image pretraining, never in inference
            dim = embed_dim or int(out["cls_token"].shape[-1])
            out["mask_token"] = torch.zeros(1, dim, dtype=out["cls_token"].dtype)
        return out
    if layout == "hf":
        return _convert_hf(sd)
    raise ValueError(f"unknown DINOv2 checkpoint layout {layout!r}; expected 'official', 'timm' or 'hf'.")


# ----------------------------------------------------------------------------------------------------------------
# reading and loading

_ST_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """Minimal reader of the safetensors format (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported safetensors dtype {info['dtype']}.")
        start, end = info["data_offsets"]
        buf = bytearray(data[start:end])
        t = torch.frombuffer(buf, dtype=_ST_DTYPES[info["dtype"]]) if end > start else torch.empty(0)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read tensors from ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DINOv2 weights file not found: {path}")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "teacher"):  # common training-checkpoint wrappers
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} does not hold a state dict (found {type(obj).__name__}).")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _official_weights_path() -> str:
    """Path of the official checkpoint in torch's hub cache, downloading it when missing (needs a network)."""
    hint = " or pass its path as the backbone weights (config id 'backbone_weights')"
    return hub_weights_path(DINOV2_VITS14_URL, "DINOv2 ViT-S/14 weights", hint)


def load_dinov2_weights(net: DinoV2ViT, weights: str) -> DinoV2ViT:
    """
    Load weights into ``net``, strictly.

    Args:
        net: the backbone.
        weights: a file path (official, timm or Hugging Face layout; ``.pth``/``.bin``/``.safetensors``),
            ``"official"`` (torch hub cache, downloaded from Meta's URL when online), or ``"random"`` (keep the
            random initialisation, with a warning: for tests and demos only, features are meaningless).
    """
    if weights == "random":
        logger.warning(
            "!" * 30 + " DINOv2 backbone uses RANDOM weights: slice features are meaningless, results are only "
            "good for testing the pipeline. Set 'backbone_weights' to the official checkpoint for real use. " + "!" * 30
        )
        return net
    path = _official_weights_path() if weights == "official" else os.path.expanduser(str(weights))
    sd = convert_dinov2_state_dict(read_state_dict(path), embed_dim=net.embed_dim)
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"DINOv2 weights {path} do not match the ViT architecture: missing keys {missing}, "
            f"unexpected keys {unexpected}."
        )
    bad = [f"{k}: {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if bad:
        raise ValueError(f"DINOv2 weights {path} have wrong shapes (checkpoint != model): {bad}")
    net.load_state_dict(sd, strict=True)
    logger.info(f"loaded DINOv2 weights from {path}")
    return net


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, shapes, dtypes and values): identifies the backbone weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(np.ascontiguousarray(t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()).tobytes())
    return h.hexdigest()
