"""Losses shared by the bundles (segmentation uses MONAI's DiceCELoss directly)."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import class_variance, consistency, dino_atten3d_loss, supcon
    from .class_variance import ClassVarianceLoss
    from .consistency import MapDistance, MultiTaskConsistencyLoss
    from .dino_atten3d_loss import DinoAtten3DLoss
    from .supcon import SupConLoss

__all__ = [
    "ClassVarianceLoss",
    "DinoAtten3DLoss",
    "MapDistance",
    "MultiTaskConsistencyLoss",
    "SupConLoss",
    "class_variance",
    "consistency",
    "dino_atten3d_loss",
    "supcon",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ClassVarianceLoss": "class_variance",
        "MapDistance": "consistency",
        "MultiTaskConsistencyLoss": "consistency",
        "DinoAtten3DLoss": "dino_atten3d_loss",
        "SupConLoss": "supcon",
    },
    __all__,
)
