"""Ignite handlers shared by the bundles."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import (
        checkpoint,
        multiomic_outputs,
        oct_checkpoint,
        oct_outputs,
        progress,
        segmentation_overlay,
        slice_attention,
    )
    from .checkpoint import AtomicCheckpointSaver, CheckedCheckpointLoader, ResumeCheckpointLoader, check_state_dict
    from .progress import ProgressBar
    from .segmentation_overlay import SegmentationOverlayWriter

__all__ = [
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "ProgressBar",
    "ResumeCheckpointLoader",
    "SegmentationOverlayWriter",
    "check_state_dict",
    "checkpoint",
    "multiomic_outputs",
    "oct_checkpoint",
    "oct_outputs",
    "progress",
    "segmentation_overlay",
    "slice_attention",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AtomicCheckpointSaver": "checkpoint",
        "CheckedCheckpointLoader": "checkpoint",
        "ResumeCheckpointLoader": "checkpoint",
        "check_state_dict": "checkpoint",
        "ProgressBar": "progress",
        "SegmentationOverlayWriter": "segmentation_overlay",
    },
    __all__,
)
