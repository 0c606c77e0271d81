"""Ignite handlers shared by the bundles."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import (
        checkpoint,
        evaluation_report,
        multiomic_outputs,
        oct_checkpoint,
        oct_outputs,
        progress,
        segmentation_overlay,
        slice_attention,
        split_record,
    )
    from .checkpoint import AtomicCheckpointSaver, CheckedCheckpointLoader, ResumeCheckpointLoader, check_state_dict
    from .evaluation_report import EvaluationReport
    from .progress import ProgressBar
    from .segmentation_overlay import SegmentationOverlayWriter
    from .split_record import SplitRecord

__all__ = [
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "EvaluationReport",
    "ProgressBar",
    "ResumeCheckpointLoader",
    "SegmentationOverlayWriter",
    "SplitRecord",
    "check_state_dict",
    "checkpoint",
    "evaluation_report",
    "multiomic_outputs",
    "oct_checkpoint",
    "oct_outputs",
    "progress",
    "segmentation_overlay",
    "slice_attention",
    "split_record",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AtomicCheckpointSaver": "checkpoint",
        "CheckedCheckpointLoader": "checkpoint",
        "ResumeCheckpointLoader": "checkpoint",
        "check_state_dict": "checkpoint",
        "EvaluationReport": "evaluation_report",
        "ProgressBar": "progress",
        "SegmentationOverlayWriter": "segmentation_overlay",
        "SplitRecord": "split_record",
    },
    __all__,
)
