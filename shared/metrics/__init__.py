"""Classification metrics (segmentation uses MONAI's MeanDice, MeanIoU and ConfusionMatrix handlers)."""

from . import classification, oct_classification
from .classification import MulticlassReport, multiclass_report
from .oct_classification import BinaryClassificationMetrics, binary_metrics, youden_threshold
