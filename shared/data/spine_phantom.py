"""Synthetic spine CT phantoms with per-vertebra labels: the embedded demo data of the spine_seg bundle.

Each case is a torso section in Hounsfield-like units: air, subcutaneous fat, muscle, and a run of consecutive
vertebrae along a curved spine (vertebral body with cortical shell and cancellous core, neural arch around the
spinal canal, spinous and transverse processes), intervertebral discs and CSF, with random pose, size, curvature and
noise. Labels use the VerSe ids (1-24 = C1..L5). It exercises the whole pipeline; it is no substitute for real CT.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["spine_phantom", "write_spine_phantom_dataset"]

logger = logging.getLogger(__name__)

# body width (mm, left-right) at C1, T1, L1 and L5; heights and depths scale from it
_LEVEL_WIDTH = {1: 16.0, 8: 26.0, 20: 42.0, 24: 50.0}


def _width(level: int) -> float:
    levels = sorted(_LEVEL_WIDTH)
    return float(np.interp(level, levels, [_LEVEL_WIDTH[k] for k in levels]))


def spine_phantom(
    shape: tuple[int, int, int] = (96, 96, 128),
    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5),
    num_vertebrae: int | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(image, label, affine)`` of one phantom, arrays indexed (x, y, z) in RAS.

    ``image`` is float32 HU, ``label`` uint8 VerSe ids, ``affine`` the voxel-to-world RAS matrix.
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing, dtype=float)
    extent = np.asarray(shape) * spacing
    scale = rng.uniform(0.85, 1.15)
    n_vert = int(num_vertebrae or rng.integers(4, 7))

    # choose the run of levels so that it fits the field of view along z
    def run_length(top: int) -> float:
        return sum(scale * (0.55 * _width(lv) + 0.12 * _width(lv) + 2.0) for lv in range(top, top + n_vert))

    tops = [t for t in range(1, 25 - n_vert + 1) if run_length(t) < 0.9 * extent[2]] or [25 - n_vert]
    top = int(rng.choice(tops))
    levels = list(range(top, top + n_vert))

    grid = np.meshgrid(*[(np.arange(n) + 0.5) * s - e / 2 for n, s, e in zip(shape, spacing, extent)], indexing="ij")
    # random pose: small rotation about each axis plus a shift, applied to the sampling grid
    angles = np.deg2rad(rng.uniform(-8, 8, size=3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )
    shift = rng.uniform(-6, 6, size=3)
    x, y, z = np.tensordot(rot, np.stack(grid), axes=1).reshape(3, *shape) - shift[:, None, None, None]

    image = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    # torso: fat ellipse with muscle inside, the spine sits in its posterior half
    torso_a, torso_b = 0.46 * extent[0] * rng.uniform(0.9, 1.0), 0.47 * extent[1] * rng.uniform(0.9, 1.0)
    torso = (x / torso_a) ** 2 + (y / torso_b) ** 2
    image[torso <= 1.0] = -100.0
    image[torso <= 0.8] = 45.0

    bone = np.zeros(shape, dtype=bool)
    canal = np.zeros(shape, dtype=bool)
    disc = np.zeros(shape, dtype=bool)
    lordosis = rng.uniform(-8, 8)
    z_pos = 0.5 * run_length(top)
    for level in levels:
        w = _width(level) * scale
        h, depth, disc_h = 0.55 * w, 0.75 * w, 0.12 * w + 2.0
        zc = z_pos - h / 2
        z_pos -= h + disc_h
        t = zc / max(extent[2] / 2, 1.0)
        yc, xc = 0.08 * extent[1] + lordosis * (1 - t**2), 2.0 * np.sin(2.5 * t)
        lx, ly, lz = x - xc, y - yc, z - zc
        body = ((lx / (w / 2)) ** 2 + (ly / (depth / 2)) ** 2 <= 1) & (np.abs(lz) <= h / 2)
        r_canal, thick = 0.13 * w + 3.0, 0.1 * w + 2.0
        cy_canal = -depth / 2 - r_canal - 1.0
        r = np.hypot(lx, ly - cy_canal)
        near = np.abs(lz) <= 0.4 * h
        arch = (r >= r_canal) & (r <= r_canal + thick) & (ly <= -depth / 2 + 2.0) & near
        spinous_len = 0.4 * w
        spinous = (
            (np.abs(lx) <= 0.06 * w + 1.0)
            & (ly <= cy_canal - r_canal)
            & (ly >= cy_canal - r_canal - spinous_len)
            & (np.abs(lz + 0.3 * (cy_canal - r_canal - ly)) <= 0.2 * h)
        )
        transverse = (
            (np.abs(lx) >= r_canal)
            & (np.abs(lx) <= r_canal + 0.5 * w)
            & (np.abs(ly - cy_canal) <= 0.08 * w + 1.0)
            & (np.abs(lz) <= 0.18 * h)
        )
        vertebra = body | arch | spinous | transverse
        label[vertebra] = level
        bone |= vertebra
        canal |= (r < r_canal) & (np.abs(lz) <= h / 2 + disc_h)
        below = (lx / (w / 2)) ** 2 + (ly / (depth / 2)) ** 2 <= 0.95
        disc |= below & (lz < -h / 2) & (lz >= -h / 2 - disc_h)

    image[canal] = 15.0
    image[disc & ~bone] = 90.0
    cortex = bone & ~ndimage.binary_erosion(bone, iterations=1)
    image[bone] = rng.uniform(180, 300)
    image[cortex] = rng.uniform(700, 1000)
    image = ndimage.gaussian_filter(image, sigma=0.6)
    image += rng.normal(0.0, rng.uniform(8, 20), size=shape)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -extent / 2 + spacing / 2
    return image.astype(np.float32), label, affine


def write_spine_phantom_dataset(
    dataset_dir: str | os.PathLike,
    num_cases: int = 10,
    shape: tuple[int, int, int] = (96, 96, 128),
    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5),
    seed: int = 0,
) -> Path:
    """Write ``num_cases`` phantoms as ``images/spine_XXX.nii.gz`` and ``labels/spine_XXX.nii.gz`` under
    ``dataset_dir`` (the layout :py:func:`shared.data.segmentation_datalist` discovers)."""
    root = Path(dataset_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(num_cases):
        image, label, affine = spine_phantom(shape, spacing, seed=seed + i)
        name = f"spine_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(np.round(image).astype(np.int16), affine), str(root / "images" / name))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labels" / name))
    logger.warning(
        f"Wrote {num_cases} synthetic spine CT phantoms to {root} (demo data). "
        "To train on real data, pass --dataset_dir <folder with images/ and labels/> or --datalist <decathlon json>."
    )
    return root
