"""Network definitions of every bundle in the collection."""

from . import acmca, adaptive_swin_unetr, ai_cnet3d, dino_atten3d, dinov2
from .acmca import ACMCA
from .adaptive_swin_unetr import AdaptiveSwinUNETR, AdaptiveWindowAttention, MultiScaleFusion, check_roi_size
from .ai_cnet3d import AICNet3D, AnatomicalCrossAttentionBlock, ChannelCrossAttention, ExplainInferer
from .dino_atten3d import DinoAtten3D, SliceAttention
from .dinov2 import DinoV2ViT, dinov2_vits14, load_dinov2_weights
