"""Network definitions of every bundle in the collection."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import acmca, adaptive_swin_unetr, ai_cnet3d, dino_atten3d, dinov2, precision
    from .acmca import ACMCA
    from .adaptive_swin_unetr import (
        AdaptiveSwinUNETR,
        AdaptiveWindowAttention,
        FusedWindowAttention,
        MultiScaleFusion,
        check_roi_size,
    )
    from .ai_cnet3d import AICNet3D, AnatomicalCrossAttentionBlock, ChannelCrossAttention, ExplainInferer
    from .dino_atten3d import DinoAtten3D, SliceAttention
    from .dinov2 import DinoV2ViT, dinov2_vits14, load_dinov2_weights

__all__ = [
    "ACMCA",
    "AICNet3D",
    "AdaptiveSwinUNETR",
    "AdaptiveWindowAttention",
    "AnatomicalCrossAttentionBlock",
    "ChannelCrossAttention",
    "DinoAtten3D",
    "DinoV2ViT",
    "ExplainInferer",
    "FusedWindowAttention",
    "MultiScaleFusion",
    "SliceAttention",
    "check_roi_size",
    "dinov2_vits14",
    "load_dinov2_weights",
    "acmca",
    "adaptive_swin_unetr",
    "ai_cnet3d",
    "dino_atten3d",
    "dinov2",
    "precision",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ACMCA": "acmca",
        "AdaptiveSwinUNETR": "adaptive_swin_unetr",
        "AdaptiveWindowAttention": "adaptive_swin_unetr",
        "FusedWindowAttention": "adaptive_swin_unetr",
        "MultiScaleFusion": "adaptive_swin_unetr",
        "check_roi_size": "adaptive_swin_unetr",
        "AICNet3D": "ai_cnet3d",
        "AnatomicalCrossAttentionBlock": "ai_cnet3d",
        "ChannelCrossAttention": "ai_cnet3d",
        "ExplainInferer": "ai_cnet3d",
        "DinoAtten3D": "dino_atten3d",
        "SliceAttention": "dino_atten3d",
        "DinoV2ViT": "dinov2",
        "dinov2_vits14": "dinov2",
        "load_dinov2_weights": "dinov2",
    },
    __all__,
)
