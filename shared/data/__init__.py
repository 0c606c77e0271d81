"""Datalists, readers, input checks and synthetic demo-data writers."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import (
        ad_cohort,
        checks,
        classification_datalist,
        embedding_cache,
        multiomic,
        oct,
        oct_phantom,
        oct_record,
        plink,
        segmentation,
        spine_datasets,
        spine_phantom,
        synthetic_brain_mri,
    )
    from .segmentation import (
        check_segmentation_pairs,
        image_datalist,
        segmentation_datalist,
        select_split,
        split_by_subject,
    )

__all__ = [
    "check_segmentation_pairs",
    "image_datalist",
    "segmentation_datalist",
    "select_split",
    "split_by_subject",
    "ad_cohort",
    "checks",
    "classification_datalist",
    "embedding_cache",
    "multiomic",
    "oct",
    "oct_phantom",
    "oct_record",
    "plink",
    "segmentation",
    "spine_datasets",
    "spine_phantom",
    "synthetic_brain_mri",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check_segmentation_pairs": "segmentation",
        "image_datalist": "segmentation",
        "segmentation_datalist": "segmentation",
        "select_split": "segmentation",
        "split_by_subject": "segmentation",
    },
    __all__,
)
