"""Datalists, readers, input checks and synthetic demo-data writers."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import (
        ad_cohort,
        cache,
        classification_datalist,
        embedding_cache,
        multiomic,
        oct,
        oct_phantom,
        plink,
        segmentation,
        spine_phantom,
        synthetic_brain_mri,
    )
    from .cache import memory_aware_dataset
    from .segmentation import check_segmentation_pairs, image_datalist, segmentation_datalist

__all__ = [
    "check_segmentation_pairs",
    "memory_aware_dataset",
    "image_datalist",
    "segmentation_datalist",
    "ad_cohort",
    "cache",
    "classification_datalist",
    "embedding_cache",
    "multiomic",
    "oct",
    "oct_phantom",
    "plink",
    "segmentation",
    "spine_phantom",
    "synthetic_brain_mri",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check_segmentation_pairs": "segmentation",
        "image_datalist": "segmentation",
        "memory_aware_dataset": "cache",
        "segmentation_datalist": "segmentation",
    },
    __all__,
)
