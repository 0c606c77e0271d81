# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Spacing that tolerates non-dictionary ``<key>_*`` entries (such as an ``image_path`` string) in the data."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import NdarrayOrTensor
from monai.transforms import Spacingd as _MonaiSpacingd

__all__ = ["Spacingd"]


class Spacingd(_MonaiSpacingd):
    """
    ``monai.transforms.Spacingd`` (same arguments, same result, invertible the same way) that sets aside every
    ``<key>_*`` entry that is not a dictionary while it runs.

    After resampling a NIfTI image, MONAI 1.6's ``Spacingd`` calls ``.update()`` on every entry whose name starts
    with ``<key>_``, assuming each is a meta dictionary. MONAI Label adds ``image_path`` (a string) to the data it
    feeds a bundle's pre-processing, which made that call fail; the plain bundle runner never adds such entries, so
    there the behaviour is unchanged.
    """

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor], lazy: bool | None = None) -> dict:
        d = dict(data)
        prefixes = tuple(f"{key}_" for key in self.keys)
        aside = {
            k: d.pop(k)
            for k in list(d)
            if isinstance(k, str) and k.startswith(prefixes) and not isinstance(d[k], Mapping)
        }
        out = super().__call__(d, lazy=lazy)
        out.update(aside)
        return out
