"""Network definitions of every bundle in the collection."""

from .adaptive_swin_unetr import AdaptiveSwinUNETR, AdaptiveWindowAttention, MultiScaleFusion, check_roi_size
