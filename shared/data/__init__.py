"""Datalists, input checks and synthetic demo-data generators."""

from . import spine_phantom
from .segmentation import check_segmentation_pairs, image_datalist, segmentation_datalist
