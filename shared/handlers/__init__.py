"""Ignite handlers shared by the bundles."""

from .checkpoint import AtomicCheckpointSaver, CheckedCheckpointLoader, ResumeCheckpointLoader, check_state_dict
from .progress import ProgressBar
