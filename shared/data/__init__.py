"""Datalists, readers, input checks and synthetic demo-data writers (heavy packages are imported where used)."""

from . import (
    ad_cohort,
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
from .segmentation import check_segmentation_pairs, image_datalist, segmentation_datalist
