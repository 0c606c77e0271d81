"""A MONAI ``CacheDataset`` that joins its cache-filling threads (its own module: the classification bundles use it
without the memory-aware cache's dependencies)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import monai.data

__all__ = ["CacheDataset"]


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
