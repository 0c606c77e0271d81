"""Metrics: classification reports, and segmentation scores with the definitions the model cards give."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import classification, oct_classification, segmentation
    from .classification import MulticlassReport, macro_auroc, multiclass_report
    from .oct_classification import BinaryClassificationMetrics, binary_metrics, youden_threshold
    from .segmentation import SegmentationMetrics, SegmentationReportSaver

__all__ = [
    "BinaryClassificationMetrics",
    "MulticlassReport",
    "SegmentationMetrics",
    "SegmentationReportSaver",
    "binary_metrics",
    "macro_auroc",
    "multiclass_report",
    "youden_threshold",
    "classification",
    "oct_classification",
    "segmentation",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MulticlassReport": "classification",
        "multiclass_report": "classification",
        "macro_auroc": "classification",
        "BinaryClassificationMetrics": "oct_classification",
        "binary_metrics": "oct_classification",
        "youden_threshold": "oct_classification",
        "SegmentationMetrics": "segmentation",
        "SegmentationReportSaver": "segmentation",
    },
    __all__,
)
