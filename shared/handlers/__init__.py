"""Ignite handlers shared by the bundles."""

from . import multiomic_outputs, oct_outputs, slice_attention
from .checkpoint import AtomicCheckpointSaver, CheckedCheckpointLoader, ResumeCheckpointLoader, check_state_dict
from .progress import ProgressBar
