# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""A NIfTI writer for MONAI's ``SaveImage`` / ``SaveImaged`` whose files appear whole or not at all."""

from __future__ import annotations

import gzip
import os

import numpy as np
from monai.data import NibabelWriter
from monai.data.utils import to_affine_nd
from monai.utils import convert_data_type

from shared.atomic import atomic_write

__all__ = ["AtomicNibabelWriter"]


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's :py:class:`~monai.data.NibabelWriter` that writes through :func:`shared.atomic.atomic_write` (a
    temporary file renamed into place), so an interrupted inference never leaves a truncated label map. The image
    is the one ``NibabelWriter`` makes (same dtype, sform and qform); ``.gz`` names are gzip-compressed.

    In a config: ``"writer": {"_target_": "shared.spine.nifti_writer.AtomicNibabelWriter", "_mode_": "callable"}``.
    """

    def write(self, filename: str | os.PathLike, verbose: bool = False, **obj_kwargs) -> None:
        super(NibabelWriter, self).write(filename, verbose=verbose)  # ImageWriter's: logs the name
        image = self.create_backend_obj(self.data_obj, affine=self.affine, dtype=self.output_dtype, **obj_kwargs)
        affine = np.eye(4) if self.affine is None else convert_data_type(self.affine, np.ndarray)[0]
        affine = to_affine_nd(r=3, affine=affine)
        image.set_sform(affine, code=1)
        image.set_qform(affine, code=1)
        data = image.to_bytes()
        with atomic_write(filename, "wb") as f:
            f.write(gzip.compress(data, compresslevel=6) if str(filename).endswith(".gz") else data)
