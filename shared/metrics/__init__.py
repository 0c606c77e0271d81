"""Classification metrics (segmentation uses MONAI's MeanDice, MeanIoU and ConfusionMatrix handlers)."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import classification, oct_classification
    from .classification import MulticlassReport, multiclass_report
    from .oct_classification import BinaryClassificationMetrics, binary_metrics, youden_threshold

__all__ = [
    "BinaryClassificationMetrics",
    "MulticlassReport",
    "binary_metrics",
    "multiclass_report",
    "youden_threshold",
    "classification",
    "oct_classification",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MulticlassReport": "classification",
        "multiclass_report": "classification",
        "BinaryClassificationMetrics": "oct_classification",
        "binary_metrics": "oct_classification",
        "youden_threshold": "oct_classification",
    },
    __all__,
)
