"""Losses shared by the bundles (segmentation uses MONAI's DiceCELoss directly)."""

from . import class_variance, consistency, dino_atten3d_loss, supcon
from .class_variance import ClassVarianceLoss
from .consistency import MapDistance, MultiTaskConsistencyLoss
from .dino_atten3d_loss import DinoAtten3DLoss
from .supcon import SupConLoss
