# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""A tiny caching workflow that fails on a bad case and ends the interpreter through the uncaught error.

    python exit_probe.py <dataset_dir> <num_workers>

Fills ``shared.cache.CacheDataset`` with the deterministic transforms of spine_seg's training (load, RAS,
resample, intensity window) over ``<dataset_dir>/images/*.nii.gz``, whose first case is broken: its error ends the
process while the other cases were still being transformed in the cache-filling threads. A clean exit is status 1
with the error; a thread left running at interpreter shutdown shows as SIGABRT ("terminate called without an active
exception").
"""

import sys
from pathlib import Path

from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, ScaleIntensityRanged, Spacingd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for shared

from shared.cache import CacheDataset  # noqa: E402

images = sorted(Path(sys.argv[1], "images").glob("*.nii.gz"))
transform = Compose(
    [
        LoadImaged("image"),
        EnsureChannelFirstd("image"),
        Orientationd("image", axcodes="RAS"),
        Spacingd("image", pixdim=(1.5, 1.5, 1.5)),
        ScaleIntensityRanged("image", a_min=-1000, a_max=1500, b_min=0.0, b_max=1.0, clip=True),
    ]
)
CacheDataset(
    [{"image": str(p)} for p in images], transform, cache_rate=1.0, num_workers=int(sys.argv[2]), progress=False
)
