# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Datasets that cache what the deterministic transforms produce, chosen by what fits in memory.

:class:`CacheDataset` is MONAI's, with its cache-filling threads joined. :func:`memory_aware_dataset` picks MONAI's
in-memory, partial or on-disk cache from what the datalist would need: it estimates the cache's size from the image
headers alone (shape x spacing after resampling to ``pixdim``, channels, cached dtype) before anything is loaded,
compares it with the memory available now, and chooses:

- everything fits: ``CacheDataset`` with the configured ``cache_rate``;
- it does not, and a cache folder is configured: ``PersistentDataset`` (each case computed once, kept on disk);
- it does not, and no folder is configured: ``CacheDataset`` with the ``cache_rate`` that fits; the rest of the
  cases run their deterministic transforms every epoch.

One log line says what was chosen and why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import monai.data
import numpy as np
import torch
from monai.data import PersistentDataset
from monai.data.utils import pickle_hashing

__all__ = ["CacheDataset", "available_memory", "case_bytes", "estimate_cache_bytes", "memory_aware_dataset"]


class CacheDataset(monai.data.CacheDataset):
    """MONAI's ``CacheDataset`` whose cache-filling threads have all stopped when it returns or raises.

    MONAI fills the cache in a ``multiprocessing.pool.ThreadPool`` and leaves it with ``terminate()``, which does not
    join the (daemon) worker threads. When one case raises (a bad input), the other threads are still running
    transforms; the error ends the process, and a thread that comes back from a torch operator while the interpreter
    shuts down is stopped by ``pthread_exit`` inside a ``noexcept`` destructor (pybind11's ``gil_scoped_release``):
    "terminate called without an active exception", SIGABRT, at random. Here a failing case cancels the cases not
    started and waits for those running, before the error goes on.
    """

    def _fill_cache(self, indices=None) -> list:
        if self.cache_num <= 0:
            return []
        indices = list(range(self.cache_num)) if indices is None else list(indices)
        pool = ThreadPoolExecutor(max_workers=self.num_workers or os.cpu_count() or 1)
        try:
            futures = [pool.submit(self._load_cache_item, i) for i in indices]
            if self.progress:
                from monai.utils import optional_import

                tqdm, has_tqdm = optional_import("tqdm", name="tqdm")
                futures = tqdm(futures, desc="Loading dataset") if has_tqdm else futures
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


logger = logging.getLogger(__name__)

_NIBABEL = (".nii", ".nii.gz", ".hdr", ".img")


def available_memory() -> int:
    """Bytes this process can still allocate: the system's available memory, or less where a cgroup (container)
    limit leaves less."""
    import psutil

    free = int(psutil.virtual_memory().available)
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        try:
            limit = Path(limit_file).read_text(encoding="utf-8").strip()
            usage = int(Path(usage_file).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit():
            free = min(free, max(0, int(limit) - usage))
        break
    return free


def _header(path: str) -> tuple[np.ndarray, np.ndarray, int, list[int]]:
    """From an image's header: spatial shape, voxel spacing, channel count, and for each voxel axis the world axis
    (x, y, z) it lies closest to, i.e. where ``Orientationd`` puts it. NIfTI/Analyze through nibabel and single-file
    ITK formats through SimpleITK read the header only; anything else (a DICOM folder) is loaded by MONAI."""
    if path.lower().endswith(_NIBABEL):
        import nibabel as nib

        img = nib.load(path)
        ndim = min(3, len(img.shape))
        affine = np.asarray(img.affine)
        axes = nib.orientations.io_orientation(affine)[:ndim, 0].astype(int).tolist()
        spacing = np.linalg.norm(affine[:3, :ndim], axis=0)
        return np.asarray(img.shape[:ndim]), spacing, int(np.prod(img.shape[ndim:], dtype=int)), axes
    if os.path.isfile(path):
        try:
            import SimpleITK as sitk
        except ImportError:
            sitk = None
        if sitk is not None:
            reader = sitk.ImageFileReader()
            reader.SetFileName(path)
            reader.ReadImageInformation()
            ndim = reader.GetDimension()
            axes = np.abs(np.reshape(reader.GetDirection(), (ndim, ndim))).argmax(axis=0).tolist()
            return np.asarray(reader.GetSize()), np.asarray(reader.GetSpacing()), reader.GetNumberOfComponents(), axes
    from monai.transforms import LoadImage

    img = LoadImage(image_only=True, ensure_channel_first=True)(path)
    ndim = img.ndim - 1
    axes = np.abs(np.asarray(img.affine)[:ndim, :ndim]).argmax(axis=0).tolist()
    return np.asarray(img.shape[1:]), np.asarray(img.pixdim, dtype=float)[:ndim], int(img.shape[0]), axes


def case_bytes(
    item: Mapping[str, str],
    keys: Sequence[str] = ("image", "label"),
    pixdim: Sequence[float] | None = None,
    dtypes: Mapping[str, str | torch.dtype] | None = None,
) -> int:
    """Bytes one datalist item takes in a cache, from its headers: for each key, the voxels after resampling to
    ``pixdim`` (as ``Orientationd`` then ``Spacingd`` compute it: along each axis ``round((n - 1) * spacing /
    pixdim) + 1``; a non-positive ``pixdim`` keeps the spacing) times the channels times the size of the cached
    dtype (``dtypes[key]``, float32 by default). An upper bound when a foreground crop follows, which headers
    cannot foresee.

    Raises:
        ValueError: naming the file when its header cannot be read.
    """
    total = 0
    for key in keys:
        path = str(item[key])
        try:
            shape, spacing, channels, axes = _header(path)
        except Exception as e:
            raise ValueError(f"Cannot read the header of the {key} file {path} to size the cache: {e}") from e
        sides = shape.astype(float)
        if pixdim is not None:
            target = np.resize(np.asarray(pixdim, dtype=float), len(sides))
            for i, axis in enumerate(axes):
                if target[axis] > 0:
                    sides[i] = np.round((sides[i] - 1) * spacing[i] / target[axis]) + 1
        itemsize = torch.empty((), dtype=_dtype((dtypes or {}).get(key, torch.float32))).element_size()
        total += int(np.prod(sides)) * int(channels) * itemsize
    return total


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"Unknown cache dtype {dtype!r}: expected a torch dtype name such as 'float32' or 'uint8'.")
    return resolved


def estimate_cache_bytes(
    data: Sequence[Mapping[str, str]],
    keys: Sequence[str] = ("image", "label"),
    pixdim: Sequence[float] | None = None,
    dtypes: Mapping[str, str | torch.dtype] | None = None,
) -> list[int]:
    """:py:func:`case_bytes` of every item, in order."""
    return [case_bytes(item, keys, pixdim, dtypes) for item in data]


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def memory_aware_dataset(
    data: Sequence[Mapping[str, str]],
    transform: Callable,
    cache_rate: float = 1.0,
    num_workers: int | None = None,
    keys: Sequence[str] = ("image", "label"),
    pixdim: Sequence[float] | None = None,
    dtypes: Mapping[str, str | torch.dtype] | None = None,
    cache_dir: str | os.PathLike | None = None,
    memory_fraction: float = 0.5,
    available: int | None = None,
) -> CacheDataset | PersistentDataset:
    """A ``CacheDataset`` when its cache fits in memory, else a ``PersistentDataset`` in ``cache_dir`` or, without
    one, a ``CacheDataset`` that caches only the fraction that fits.

    Args:
        data: datalist items (``{"image": path, "label": path, ...}``).
        transform: the dataset's transform; its deterministic head is what gets cached.
        cache_rate: the fraction of cases to cache when memory allows (as ``CacheDataset``'s).
        num_workers: threads that fill the in-memory cache (None: one per CPU, as in MONAI's ``CacheDataset``).
        keys, pixdim, dtypes: what the cached items hold, see :py:func:`case_bytes`.
        cache_dir: folder for an on-disk cache when memory does not suffice; None: cache what fits in memory.
        memory_fraction: the share of the available memory the cache may take; the rest is headroom for the
            network, the data loader's workers and the system. Split between the processes of one machine
            (``LOCAL_WORLD_SIZE``, as ``torchrun`` sets it).
        available: bytes available (default: :py:func:`available_memory`); tests pass it to simulate a machine.
    """
    if not 0.0 < memory_fraction <= 1.0:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction}.")
    sizes = estimate_cache_bytes(data, keys, pixdim, dtypes)
    cached = min(len(sizes), int(len(sizes) * max(0.0, float(cache_rate))))  # CacheDataset caches the first ones
    need = sum(sizes[:cached])
    free = available_memory() if available is None else int(available)
    # processes launched together on one machine (torchrun) each build their own cache from the same memory
    sharers = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    budget = int(free * memory_fraction) // sharers
    what = f"{len(sizes)} cases, cache of {cached} estimated at {_gib(need)}, {_gib(budget)} allowed"
    what += f" ({memory_fraction:.0%} of {_gib(free)} available" + (
        f" over {sharers} processes)" if sharers > 1 else ")"
    )
    if need <= budget:
        logger.info(f"Dataset cache: in memory, {what}.")
        return CacheDataset(data, transform, cache_rate=cache_rate, num_workers=num_workers)
    if cache_dir is not None:
        logger.info(f"Dataset cache: on disk in {cache_dir} (PersistentDataset), since {what}.")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        # the transform settings are part of each file's key, so changing e.g. pixdim never reads a stale cache
        return PersistentDataset(data, transform, cache_dir=cache_dir, hash_transform=pickle_hashing)
    fits = int(np.searchsorted(np.cumsum(sizes[:cached]), budget, side="right"))
    logger.info(
        f"Dataset cache: in memory for the first {fits} cases only (partial CacheDataset), since {what}; "
        "the others are loaded every epoch. Set cache_dir to cache every case on disk instead."
    )
    return CacheDataset(data, transform, cache_num=fits, num_workers=num_workers)
