# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Files crafted to lie about their size, and checkpoints of another bundle's network, for the input-guard tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

__all__ = ["claiming_nifti", "claiming_npy", "spine_checkpoint", "HUGE"]

HUGE = (2048, 2048, 1024)  # 16 GiB as float32


def claiming_nifti(path: str | Path, shape=HUGE, data: bytes = b"") -> Path:
    """A NIfTI file (gzip-compressed for ``.gz``) whose header claims ``shape`` float32 voxels while it holds only
    ``data`` after the header."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + data
    path = Path(path)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def claiming_npy(path: str | Path, shape=(4096, 4096, 4096)) -> Path:
    """A ``.npy`` file whose header claims ``shape`` uint8 voxels, with no data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return Path(path)


def spine_checkpoint() -> dict:
    """What spine_seg's training writes as checkpoint_last.pt, for a tiny network."""
    from shared.networks.adaptive_swin_unetr import AdaptiveSwinUNETR

    net = AdaptiveSwinUNETR(in_channels=1, out_channels=3, feature_size=12, depths=(1, 1, 1, 1))
    state = {"epoch": 1, "iteration": 1, "epoch_length": 1}
    return {
        "model": net.state_dict(),
        "optimizer": torch.optim.AdamW(net.parameters()).state_dict(),
        "lr_scheduler": {},
        "best_model": {"_saved": []},
        "trainer": state,
        "made_for": {"network": "AdaptiveSwinUNETR (spine_seg)"},
    }
