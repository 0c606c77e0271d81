"""Datalists, readers, input checks and synthetic demo-data writers."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import (
        ad_cohort,
        cache,
        cache_dataset,
        checks,
        classification_datalist,
        embedding_cache,
        multiomic,
        nifti_writer,
        oct,
        oct_phantom,
        oct_record,
        plink,
        segmentation,
        spine_datasets,
        spine_phantom,
        synthetic_brain_mri,
    )
    from .cache import memory_aware_dataset
    from .cache_dataset import CacheDataset
    from .nifti_writer import AtomicNibabelWriter
    from .segmentation import (
        check_label_mapping,
        check_segmentation_pairs,
        image_datalist,
        segmentation_datalist,
        select_split,
        split_by_subject,
    )

__all__ = [
    "AtomicNibabelWriter",
    "CacheDataset",
    "check_label_mapping",
    "check_segmentation_pairs",
    "memory_aware_dataset",
    "image_datalist",
    "segmentation_datalist",
    "select_split",
    "split_by_subject",
    "ad_cohort",
    "checks",
    "cache",
    "cache_dataset",
    "classification_datalist",
    "embedding_cache",
    "multiomic",
    "nifti_writer",
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
        "AtomicNibabelWriter": "nifti_writer",
        "CacheDataset": "cache_dataset",
        "check_label_mapping": "segmentation",
        "check_segmentation_pairs": "segmentation",
        "image_datalist": "segmentation",
        "memory_aware_dataset": "cache",
        "segmentation_datalist": "segmentation",
        "select_split": "segmentation",
        "split_by_subject": "segmentation",
    },
    __all__,
)
