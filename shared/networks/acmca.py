# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ACMCA: Asymmetric Cross-Modal Cross-Attention network for CN / MCI / AD classification from MRI, PET,
SNP genotypes and clinical variables (Multi-omic Prognosis of Alzheimer's Disease with Asymmetric Cross-Modal
Cross-Attention Network, arXiv 2507.08855).

Pipeline (shapes for the defaults, batch ``B``):

- image encoders: one 2D MONAI ResNet50 per image modality, ``(B, 1, 224, 224)`` -> spatial feature map
  ``(B, 2048, 7, 7)`` -> 49 region tokens projected to ``(B, 49, 100)`` (+ learnable region position embedding).
- vector encoders: a DNN per non-imaging modality, SNPs ``(B, 15000)`` and clinical ``(B, 7)`` -> ``(B, 1, 100)``.
- fusion: asymmetric multi-head cross-attention, clinical queries MRI regions and genetic queries PET regions
  (queries non-imaging, keys/values imaging), so each head gives one weight per image region.
- deep feature extraction: parallel FNet (2D Fourier mixing over tokens and features) and Transformer branches.
- classifier: 4-layer MLP -> ``(B, 3)`` logits (softmax in post-processing).
"""

# no postponed annotations here: TorchScript reads this module's annotations as written
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import CrossAttentionBlock, MLPBlock, TransformerBlock
from monai.networks.nets import resnet

from shared.networks.imagenet_resnet import load_imagenet_resnet

__all__ = [
    "IMAGE_MODALITIES",
    "VECTOR_MODALITIES",
    "ResNetRegionEncoder",
    "VectorEncoder",
    "CrossModalAttention",
    "FNetBlock",
    "ACMCA",
]

IMAGE_MODALITIES = ("mri", "pet")
VECTOR_MODALITIES = ("snp", "clinical")
_BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _grey_trunk(in_channels: int):
    """torchvision ResNet names -> :class:`ResNetRegionEncoder`'s (``stem.*``, ``layers.*``; the classifier dropped),
    with the RGB stem kernels summed into ``in_channels`` grey channels (each gets the sum / ``in_channels``), so a
    grey slice sees what the network saw in a grey photograph."""

    def rename(key: str, value: torch.Tensor):
        head, _, rest = key.partition(".")
        if head == "conv1":
            return f"stem.0.{rest}", (value.sum(dim=1, keepdim=True) / in_channels).repeat(1, in_channels, 1, 1)
        if head == "bn1":
            return f"stem.1.{rest}", value
        if head.startswith("layer") and head[5:].isdigit():
            return f"layers.{int(head[5:]) - 1}.{rest}", value
        return None

    return rename


class ResNetRegionEncoder(nn.Module):
    """
    2D MONAI ResNet trunk whose last spatial feature map becomes a sequence of region tokens.

    Each token is one position of the stride-32 feature map (a 32x32-pixel receptive-field centre on the
    224x224 slice), so attention weights over tokens are weights over image regions.

    Args:
        in_channels: channels of the input slice.
        hidden_size: token dimension.
        img_size: input slice size ``(H, W)`` the region embedding is made for; both must divide by 32.
        backbone: one of ``resnet10 .. resnet152`` from ``monai.networks.nets.resnet``.
        pos_embed: add a learnable embedding per region so queries can attend to locations.
        weights: the trunk's start: ``"random"``, ``"imagenet"`` (torchvision's ImageNet-1k weights of
            ``resnet18`` .. ``resnet152``, from torch's hub cache, downloaded when missing), or the path of such a
            torchvision state dict. Loaded with strict key and shape matching
            (:func:`~shared.networks.imagenet_resnet.load_imagenet_resnet`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden_size: int = 100,
        img_size: Sequence[int] = (224, 224),
        backbone: str = "resnet50",
        pos_embed: bool = True,
        weights: str = "random",
    ) -> None:
        super().__init__()
        if backbone not in _BACKBONES:
            raise ValueError(f"backbone must be one of {_BACKBONES}, got '{backbone}'.")
        if len(img_size) != 2 or any(int(s) % 32 != 0 or int(s) <= 0 for s in img_size):
            raise ValueError(f"img_size must be two positive multiples of 32, got {tuple(img_size)}.")
        # stride-2 7x7 stem as in the standard ImageNet ResNet: total stride 32, 224 -> 7x7 regions
        trunk = getattr(resnet, backbone)(
            spatial_dims=2, n_input_channels=in_channels, conv1_t_size=7, conv1_t_stride=2, feed_forward=False
        )
        # keep the convolutional trunk only: pooling would discard the regions the queries attend to
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.act, trunk.maxpool)
        self.layers = nn.Sequential(trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4)
        self.out_channels = int(trunk.in_planes)
        self.img_size: list[int] = [int(s) for s in img_size]
        self.grid: list[int] = [int(s) // 32 for s in img_size]
        self.proj = nn.Linear(self.out_channels, hidden_size)
        n_regions = self.grid[0] * self.grid[1]
        self.pos_embedding = nn.Parameter(torch.zeros(1, n_regions, hidden_size), requires_grad=pos_embed)
        if pos_embed:
            nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        if weights != "random":
            rename = _grey_trunk(in_channels)
            load_imagenet_resnet(self, backbone, weights, rename, "image_weights", trunk=("stem.", "layers."))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, H, W)``; ``img_size`` is the size the region embedding was made for, other sizes
                (multiples of 32) get it bilinearly resized to their feature-map grid, as ViTs do.

        Returns:
            region tokens ``(B, (H/32)*(W/32), hidden_size)``, row-major over the feature map.
        """
        if x.shape[2] % 32 != 0 or x.shape[3] % 32 != 0:
            raise ValueError("image slice size {} must be a multiple of 32.".format(list(x.shape[2:])))
        f = self.layers(self.stem(x))  # (B, C, h, w)
        tokens = self.proj(f.flatten(2).transpose(1, 2))  # (B, h*w, D)
        pos = self.pos_embedding
        if f.shape[2] != self.grid[0] or f.shape[3] != self.grid[1]:
            grid = pos.transpose(1, 2).reshape(1, pos.shape[2], self.grid[0], self.grid[1])
            grid = F.interpolate(grid, size=(int(f.shape[2]), int(f.shape[3])), mode="bilinear", align_corners=False)
            pos = grid.flatten(2).transpose(1, 2)
        return tokens + pos


class VectorEncoder(nn.Module):
    """
    DNN for a non-imaging vector (SNP dosages or encoded clinical variables).

    Args:
        in_features: input length.
        hidden_size: token dimension.
        hidden_layers: widths of the hidden layers.
        num_tokens: number of output tokens (the paper uses one 100-d vector).
        dropout: dropout after each hidden layer.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int = 100,
        hidden_layers: Sequence[int] = (256,),
        num_tokens: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if in_features < 1 or num_tokens < 1:
            raise ValueError(f"in_features and num_tokens must be >= 1, got {in_features} and {num_tokens}.")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden_layers:
            layers += [nn.Linear(width, int(h)), nn.LayerNorm(int(h)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, hidden_size * num_tokens))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.num_tokens = num_tokens
        self.hidden_size = hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` -> ``(B, num_tokens, hidden_size)``."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError("vector input must have shape (B, {}), got {}.".format(self.in_features, list(x.shape)))
        return self.net(x).reshape(x.shape[0], self.num_tokens, self.hidden_size)


class CrossModalAttention(nn.Module):
    """
    Pre-norm residual cross-attention: ``query`` tokens attend to ``context`` tokens (MONAI CrossAttentionBlock),
    followed by an MLP. The last attention matrix is kept in ``attn.att_mat`` as ``(B, heads, Lq, Lk)``.

    Args:
        query_name: modality the queries come from.
        context_name: modality the keys/values come from.
        hidden_size: token dimension.
        num_heads: attention heads.
        mlp_ratio: MLP width over ``hidden_size``.
        dropout: dropout rate.
        pool_output: average the output tokens into one (used when image regions are the queries).
    """

    def __init__(
        self,
        query_name: str,
        context_name: str,
        hidden_size: int = 100,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        pool_output: bool = False,
    ) -> None:
        super().__init__()
        self.query_name = query_name
        self.context_name = context_name
        self.pool_output = pool_output
        self.norm_q = nn.LayerNorm(hidden_size)
        self.norm_kv = nn.LayerNorm(hidden_size)
        self.attn = CrossAttentionBlock(hidden_size, num_heads, dropout_rate=dropout, qkv_bias=True, save_attn=True)
        self.norm_mlp = nn.LayerNorm(hidden_size)
        self.mlp = MLPBlock(hidden_size, int(hidden_size * mlp_ratio), dropout)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``query (B, Lq, D)``, ``context (B, Lk, D)`` -> ``(B, Lq, D)`` or ``(B, 1, D)`` when pooling."""
        x = query + self.attn(self.norm_q(query), context=self.norm_kv(context))
        x = x + self.mlp(self.norm_mlp(x))
        if self.pool_output:
            x = x.mean(dim=1, keepdim=True)
        return x


class FNetBlock(nn.Module):
    """
    FNet encoder block (Lee-Thorp et al. 2021): token/feature mixing by the real part of a 2D DFT over
    the (token, feature) axes, then a feed-forward layer, each with a residual and post-LayerNorm.

    Args:
        hidden_size: token dimension.
        mlp_dim: feed-forward width.
        dropout: dropout rate.
    """

    def __init__(self, hidden_size: int = 100, mlp_dim: int = 200, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.mlp = MLPBlock(hidden_size, mlp_dim, dropout)
        self.norm2 = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        x = self.norm1(x + torch.fft.fft2(x.float(), dim=(-2, -1)).real.to(x.dtype))
        return self.norm2(x + self.mlp(x))


class ACMCA(nn.Module):
    """
    Asymmetric Cross-Modal Cross-Attention network (arXiv 2507.08855) with ablation switches.

    Args:
        modalities: enabled modalities, any non-empty subset of ``("mri", "pet", "snp", "clinical")``.
        num_classes: output classes (CN, MCI, AD).
        snp_features: SNP vector length.
        clinical_features: encoded clinical vector length.
        hidden_size: shared token dimension (100 in the paper).
        img_size: slice size ``(H, W)``, multiples of 32.
        backbone: 2D MONAI ResNet depth for the image encoders.
        attention_pairs: ``(query, context)`` pairs, non-imaging query first, imaging context second.
        fusion: ``"asymmetric"`` (queries non-imaging, keys/values imaging), ``"symmetric"`` (also image regions
            querying the non-imaging tokens) or ``"concat"`` (no cross-attention: modality tokens side by side).
        deep_branches: ``"both"`` (parallel FNet and Transformer), ``"fnet"`` or ``"transformer"``.
        num_heads: heads of the cross-attention and Transformer blocks; must divide ``hidden_size``.
        deep_layers: blocks per deep branch.
        snp_hidden: hidden widths of the SNP DNN.
        clinical_hidden: hidden widths of the clinical DNN.
        vector_tokens: tokens per non-imaging modality (queries per modality).
        classifier_hidden: widths of the 3 hidden layers of the 4-layer classifier MLP.
        dropout: dropout rate.
        pos_embed: learnable region position embedding on image tokens.
        image_weights: start of the image trunks: ``"random"``, ``"imagenet"`` or a torchvision weights file (see
            :class:`ResNetRegionEncoder`).

    Forward inputs: ``image (B, n_image_modalities, H, W)`` with channels in ``("mri", "pet")`` order restricted to
    the enabled ones (``None`` when none is enabled), ``snp (B, snp_features)``, ``clinical (B, clinical_features)``.
    Output: logits ``(B, num_classes)``. ``forward_with_attention`` also returns the cross-attention weights.
    """

    # typed for TorchScript: these may be empty for some ablations
    passthrough: list[str]
    image_modalities: list[str]
    image_channel: dict[str, int]

    def __init__(
        self,
        modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
        num_classes: int = 3,
        snp_features: int = 15000,
        clinical_features: int = 7,
        hidden_size: int = 100,
        img_size: Sequence[int] = (224, 224),
        backbone: str = "resnet50",
        attention_pairs: Sequence[Sequence[str]] = (("clinical", "mri"), ("snp", "pet")),
        fusion: str = "asymmetric",
        deep_branches: str = "both",
        num_heads: int = 4,
        deep_layers: int = 1,
        snp_hidden: Sequence[int] = (512, 256),
        clinical_hidden: Sequence[int] = (64,),
        vector_tokens: int = 1,
        classifier_hidden: Sequence[int] = (256, 128, 64),
        dropout: float = 0.1,
        pos_embed: bool = True,
        image_weights: str = "random",
    ) -> None:
        super().__init__()
        known = IMAGE_MODALITIES + VECTOR_MODALITIES
        mods = [str(m) for m in modalities]
        if not mods or any(m not in known for m in mods) or len(set(mods)) != len(mods):
            raise ValueError(f"modalities must be a non-empty subset of {known} without repeats, got {mods}.")
        if fusion not in ("asymmetric", "symmetric", "concat"):
            raise ValueError(f"fusion must be 'asymmetric', 'symmetric' or 'concat', got '{fusion}'.")
        if deep_branches not in ("both", "fnet", "transformer"):
            raise ValueError(f"deep_branches must be 'both', 'fnet' or 'transformer', got '{deep_branches}'.")
        if hidden_size % num_heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}).")
        if len(classifier_hidden) != 3:
            raise ValueError(f"classifier_hidden must give 3 widths (4-layer MLP), got {list(classifier_hidden)}.")
        pairs = [(str(p[0]), str(p[1])) for p in attention_pairs]
        for q, c in pairs:
            if q not in VECTOR_MODALITIES or c not in IMAGE_MODALITIES:
                raise ValueError(f"attention pair ({q}, {c}) must be (non-imaging query, imaging context).")
        used = [m for p in pairs for m in p]
        if len(set(used)) != len(used):
            raise ValueError(f"each modality may appear in at most one attention pair, got {pairs}.")

        # canonical order so the image channel layout never depends on how the user listed modalities
        self.modalities: list[str] = [m for m in known if m in mods]
        self.image_modalities: list[str] = [m for m in IMAGE_MODALITIES if m in mods]
        self.fusion_mode = fusion
        self.deep_branches = deep_branches
        self.snp_features = snp_features
        self.clinical_features = clinical_features
        self.hidden_size = hidden_size
        self.num_classes = num_classes

        self.image_encoders = nn.ModuleDict(
            {
                m: ResNetRegionEncoder(1, hidden_size, img_size, backbone, pos_embed, image_weights)
                for m in self.image_modalities
            }
        )
        self.image_channel: dict[str, int] = {m: i for i, m in enumerate(self.image_modalities)}
        self.region_grid: list[int] = [int(s) // 32 for s in img_size]
        vec: dict[str, nn.Module] = {}
        if "snp" in mods:
            vec["snp"] = VectorEncoder(snp_features, hidden_size, snp_hidden, vector_tokens, dropout)
        if "clinical" in mods:
            vec["clinical"] = VectorEncoder(clinical_features, hidden_size, clinical_hidden, vector_tokens, dropout)
        self.vector_encoders = nn.ModuleDict(vec)

        # fusion plan: cross-attention where both sides of a pair are enabled, pass-through tokens otherwise
        blocks: dict[str, nn.Module] = {}
        passthrough: list[str] = []
        n_tokens = 0
        for q, c in pairs:
            if fusion != "concat" and q in mods and c in mods:
                blocks[f"{q}_to_{c}"] = CrossModalAttention(q, c, hidden_size, num_heads, 2.0, dropout, False)
                n_tokens += vector_tokens
                if fusion == "symmetric":
                    blocks[f"{c}_to_{q}"] = CrossModalAttention(c, q, hidden_size, num_heads, 2.0, dropout, True)
                    n_tokens += 1
            else:
                passthrough += [m for m in (q, c) if m in mods]
        passthrough += [m for m in self.modalities if m not in used]
        n_tokens += sum(1 if m in IMAGE_MODALITIES else vector_tokens for m in passthrough)
        self.fusion = nn.ModuleDict(blocks)
        self.passthrough: list[str] = passthrough
        self.num_tokens = n_tokens
        # the deep branches see an ordered token set: a learnable type embedding tells the tokens apart
        self.token_embedding = nn.Parameter(torch.zeros(1, n_tokens, hidden_size))
        nn.init.trunc_normal_(self.token_embedding, std=0.02)

        mlp_dim = 2 * hidden_size
        self.fnet = nn.Sequential(*[FNetBlock(hidden_size, mlp_dim, dropout) for _ in range(deep_layers)])
        self.transformer = nn.Sequential(
            *[TransformerBlock(hidden_size, mlp_dim, num_heads, dropout, qkv_bias=True) for _ in range(deep_layers)]
        )
        self.use_fnet = deep_branches in ("both", "fnet")
        self.use_transformer = deep_branches in ("both", "transformer")
        n_branches = int(self.use_fnet) + int(self.use_transformer)
        widths = [n_branches * n_tokens * hidden_size] + [int(w) for w in classifier_hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.classifier = nn.Sequential(*layers)

    def _encode(
        self, image: torch.Tensor | None, snp: torch.Tensor | None, clinical: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        feats: dict[str, torch.Tensor] = {}
        n_img = len(self.image_modalities)
        if n_img > 0:
            if image is None:
                raise ValueError("input 'image' is required for modalities {}.".format(self.image_modalities))
            if image.dim() != 4 or image.shape[1] != n_img:
                raise ValueError(
                    "input 'image' must be (B, {}, H, W) with channels {}, got {}.".format(
                        n_img, self.image_modalities, list(image.shape)
                    )
                )
        for name, enc in self.image_encoders.items():
            assert image is not None
            ch = self.image_channel[name]
            feats[name] = enc(image[:, ch : ch + 1])
        for name, enc in self.vector_encoders.items():
            x = snp if name == "snp" else clinical
            if x is None:
                raise ValueError("input '{}' is required because modality '{}' is enabled.".format(name, name))
            feats[name] = enc(x.to(self.token_embedding.dtype))
        return feats

    def forward_with_attention(
        self, image: torch.Tensor | None = None, snp: torch.Tensor | None = None, clinical: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Returns:
            logits ``(B, num_classes)`` and a dict ``"<query>_to_<context>" -> (B, heads, Lq, Lk)`` of the
            cross-attention weights (softmax over the context tokens; image tokens are feature-map regions in
            row-major order over ``region_grid``).
        """
        feats = self._encode(image, snp, clinical)
        tokens: list[torch.Tensor] = []
        attention: dict[str, torch.Tensor] = {}
        for key, block in self.fusion.items():
            tokens.append(block(feats[block.query_name], feats[block.context_name]))
            attention[key] = block.attn.att_mat
        for name in self.passthrough:
            t = feats[name]
            if name in self.image_modalities:
                t = t.mean(dim=1, keepdim=True)
            tokens.append(t)
        x = torch.cat(tokens, dim=1) + self.token_embedding  # (B, T, D)
        outs: list[torch.Tensor] = []
        if self.use_fnet:
            outs.append(self.fnet(x).flatten(1))
        if self.use_transformer:
            outs.append(self.transformer(x).flatten(1))
        return self.classifier(torch.cat(outs, dim=1)), attention

    def forward(
        self, image: torch.Tensor | None = None, snp: torch.Tensor | None = None, clinical: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            image: ``(B, n_image_modalities, H, W)``, channels ordered ``mri, pet`` (enabled ones only).
            snp: ``(B, snp_features)`` allele dosages (missing values imputed beforehand).
            clinical: ``(B, clinical_features)`` encoded clinical vector.

        Returns:
            logits ``(B, num_classes)``.
        """
        return self.forward_with_attention(image, snp, clinical)[0]
