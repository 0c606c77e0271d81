# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Synthetic spine CT phantoms with per-vertebra labels: the embedded demo data of the spine_seg bundle.

Each case is a torso section in Hounsfield units: air behind the back, subcutaneous fat, muscle, and a run of
consecutive vertebrae along a curved spine (vertebral body with cortical shell and cancellous core, neural arch
around the spinal canal, spinous and transverse processes), intervertebral discs and CSF, with random pose, size,
curvature, bone density and noise. The landmarks a reader counts vertebrae by are there too: ribs on the thoracic
vertebrae (short floating ribs on T11 and T12), and below L5 the sacrum with the iliac wings beside it, whose crests
reach up to L4-L5. Labels use the VerSe ids (1-24 = C1..L5, 26 = sacrum); ribs and iliac bones are background.

``levels`` fixes the vertebrae in view, e.g. ``(18, 24)``: T11 to L5 with the sacrum, the field of an abdominal
or lumbar CT, in which each vertebra can be told by the ribs above and the sacrum below. The phantoms exercise the
whole pipeline; they are no substitute for real CT.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["spine_phantom", "write_spine_phantom_dataset", "SACRUM"]

logger = logging.getLogger(__name__)

SACRUM = 26  # VerSe's id of the sacrum
# body width (mm, left-right) at C1, T1, L1 and L5; heights and depths scale from it
_LEVEL_WIDTH = {1: 16.0, 8: 26.0, 20: 42.0, 24: 50.0}
# length of each thoracic rib's arc (degrees): long ribs, then the short floating ribs of T11 and T12
_RIB_ARC = {**{lv: 150.0 for lv in range(8, 18)}, 18: 90.0, 19: 55.0}


def _width(level: int) -> float:
    levels = sorted(_LEVEL_WIDTH)
    return float(np.interp(level, levels, [_LEVEL_WIDTH[k] for k in levels]))


def _heights(level: int, scale: float) -> tuple[float, float, float]:
    """Width, body height and the height of the disc below, in mm."""
    w = _width(level) * scale
    return w, 0.55 * w, 0.12 * w + 2.0


def _run_length(levels: Sequence[int], scale: float) -> float:
    """Length along the spine of the vertebrae and discs of ``levels`` (and the sacrum below L5)."""
    total = sum(h + d for _, h, d in (_heights(lv, scale) for lv in levels))
    return total + (2.0 * _width(24) * scale if 24 in levels else 0.0)


def _rotation(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    return (
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )


def spine_phantom(
    shape: tuple[int, int, int] = (96, 96, 128),
    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5),
    num_vertebrae: int | None = None,
    seed: int | None = None,
    levels: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(image, label, affine)`` of one phantom, arrays ``(X, Y, Z)`` indexed in RAS.

    Args:
        shape, spacing: the grid; the field of view is ``shape * spacing`` mm, centred on the spine.
        num_vertebrae: with ``levels`` unset, the number of consecutive vertebrae (default: 4 to 6), a run of
            levels chosen at random among those that fit the field of view.
        seed: the random generator's seed (pose, size, curvature, densities, noise).
        levels: ``(first, last)`` VerSe ids of the vertebrae in view (inclusive, 1-24). The run starts near the
            top of the field of view; a run longer than the field is cut at the bottom (the sacrum first).

    Returns:
        ``image`` float32 HU, ``label`` uint8 VerSe ids, ``affine`` the voxel-to-world RAS matrix.
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing, dtype=float)
    extent = np.asarray(shape) * spacing
    scale = rng.uniform(0.9, 1.1)
    if levels is not None:
        first, last = (int(v) for v in levels)
        if not 1 <= first <= last <= 24:
            raise ValueError(f"levels must be (first, last) VerSe ids with 1 <= first <= last <= 24, got {levels}.")
        run = list(range(first, last + 1))
        h_first = _heights(first, scale)[1]
        # start near the top: from a little above the first vertebra to a cut through its upper quarter
        z_top = extent[2] / 2 - max(0.0, extent[2] - _run_length(run, scale)) * rng.uniform(0, 0.3)
        z_top -= rng.uniform(-0.25, 0.1) * h_first
    else:
        n_vert = int(num_vertebrae or rng.integers(4, 7))
        fits = [t for t in range(1, 26 - n_vert) if _run_length(range(t, t + n_vert), scale) < 0.9 * extent[2]]
        top = int(rng.choice(fits or [25 - n_vert]))
        run = list(range(top, top + n_vert))
        z_top = _run_length(run, scale) / 2 + rng.uniform(-6, 6)

    grid = np.meshgrid(*[(np.arange(n) + 0.5) * s - e / 2 for n, s, e in zip(shape, spacing, extent)], indexing="ij")
    # random pose: a small rotation about each axis plus an in-plane shift, applied to the sampling grid
    rot = _rotation(np.deg2rad(rng.uniform(-8, 8, size=3)))
    shift = np.array([*rng.uniform(-6, 6, size=2), 0.0])
    x, y, z = np.tensordot(rot, np.stack(grid), axes=1).reshape(3, *shape) - shift[:, None, None, None]

    # the vertebral body's centre line: anterior of the field's centre (the posterior elements reach further back),
    # with a lordotic/kyphotic bow
    w_mid = _width(run[len(run) // 2]) * scale
    bow = rng.uniform(-8, 8)

    def body_y(zc: float) -> float:
        t = zc / max(extent[2] / 2, 1.0)
        return 0.3 * w_mid + bow * (1 - t**2)

    image = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    # torso of an adult lying supine, centred anterior of the spine: fat, with muscle and organs inside
    y_torso = body_y(0.0) + rng.uniform(0, 20)
    torso = (x / rng.uniform(140, 170)) ** 2 + ((y - y_torso) / rng.uniform(120, 140)) ** 2
    image[torso <= 1.0] = -100.0
    image[torso <= rng.uniform(0.75, 0.85)] = 45.0

    bone = np.zeros(shape, dtype=bool)  # every bone (labelled or not): gets the cortex and marrow intensities
    canal = np.zeros(shape, dtype=bool)
    disc = np.zeros(shape, dtype=bool)
    z_pos = z_top
    for level in run:
        w, h, disc_h = _heights(level, scale)
        zc = z_pos - h / 2
        z_pos -= h + disc_h
        yc, xc = body_y(zc), 2.0 * np.sin(2.5 * zc / max(extent[2] / 2, 1.0))
        lx, ly, lz = x - xc, y - yc, z - zc
        depth = 0.75 * w
        body = ((lx / (w / 2)) ** 2 + (ly / (depth / 2)) ** 2 <= 1) & (np.abs(lz) <= h / 2)
        r_canal, thick = 0.13 * w + 3.0, 0.1 * w + 2.0
        cy_canal = -depth / 2 - r_canal - 1.0
        r = np.hypot(lx, ly - cy_canal)
        arch = (r >= r_canal) & (r <= r_canal + thick) & (ly <= -depth / 2 + 2.0) & (np.abs(lz) <= 0.4 * h)
        spinous = (
            (np.abs(lx) <= 0.06 * w + 1.0)
            & (ly <= cy_canal - r_canal)
            & (ly >= cy_canal - r_canal - 0.4 * w)
            & (np.abs(lz + 0.3 * (cy_canal - r_canal - ly)) <= 0.2 * h)
        )
        tip = r_canal + 0.5 * w
        transverse = (
            (np.abs(lx) >= r_canal)
            & (np.abs(lx) <= tip)
            & (np.abs(ly - cy_canal) <= 0.08 * w + 1.0)
            & (np.abs(lz) <= 0.18 * h)
        )
        vertebra = body | arch | spinous | transverse
        label[vertebra] = level
        bone |= vertebra
        if level in _RIB_ARC:
            bone |= _ribs(lx, ly, lz, tip, cy_canal, w, _RIB_ARC[level]) & ~vertebra
        canal |= (r < r_canal) & (np.abs(lz) <= h / 2 + disc_h)
        below = (lx / (w / 2)) ** 2 + (ly / (depth / 2)) ** 2 <= 0.95
        disc |= below & (lz < -h / 2) & (lz >= -h / 2 - disc_h)
    if run[-1] == 24:  # the sacrum below L5's disc, and the iliac wings beside it
        w = _width(24) * scale
        sacrum, sacral_canal, ilium = _pelvis(x, y, z, z_pos, body_y(z_pos), w)
        label[sacrum & ~bone] = SACRUM
        bone |= sacrum | (ilium & ~canal)
        canal |= sacral_canal

    image[canal] = 15.0
    image[disc & ~bone] = 90.0
    cortex = bone & ~ndimage.binary_erosion(bone, iterations=max(1, int(round(1.5 / spacing.min()))))
    image[bone] = rng.uniform(180, 300)
    image[cortex] = rng.uniform(700, 1000)
    image = ndimage.gaussian_filter(image, sigma=0.6)
    image += rng.normal(0.0, rng.uniform(8, 20), size=shape)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -extent / 2 + spacing / 2
    return image.astype(np.float32), label, affine


def _ribs(lx, ly, lz, tip: float, cy_canal: float, w: float, arc_deg: float) -> np.ndarray:
    """A pair of ribs leaving the transverse process tips: arcs of a circle on each side that run back, out and
    round to the front, sloping down, ``arc_deg`` long; tubes of about 8 mm."""
    radius = 1.6 * w
    cx, cy = tip + 4.0, cy_canal + 0.9 * radius
    dx, dy = np.abs(lx) - cx, ly - cy
    angle = np.degrees(np.arctan2(dy, dx))  # -90: straight back from the circle's centre, 0: lateral, 90: front
    start = np.degrees(np.arctan2(cy_canal - cy, tip - cx))
    along = np.deg2rad(angle - start) * radius  # mm of rib from its head
    on_arc = (angle >= start) & (angle <= start + arc_deg)
    return on_arc & (np.abs(np.hypot(dx, dy) - radius) <= 4.0) & (np.abs(lz + 0.25 * along) <= 4.0)


def _pelvis(x, y, z, z_top: float, y_top: float, w: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sacrum (``2 w`` long, alae at the top, tapering and curving back), its canal, and the iliac wings from the
    sacroiliac joints out and forward, whose crests reach up to the L4-L5 disc. ``w``: L5's width."""
    length = 2.0 * w
    u = np.clip((z_top - z) / length, 0.0, 1.0)  # 0 at the top of S1, 1 at the tip
    inside = (z <= z_top) & (z >= z_top - length)
    yc = y_top - 0.6 * w * u**2
    half_width, half_depth = w * (1.0 - 0.75 * u), 0.38 * w * (1.0 - 0.5 * u)
    sacrum = inside & ((x / half_width) ** 2 + ((y - yc) / half_depth) ** 2 <= 1)
    canal = sacrum & (np.hypot(x, y - (yc - 0.6 * half_depth)) <= 0.1 * w * (1 - 0.6 * u) + 2.0)
    sacrum &= ~canal
    # each wing: a 10 mm plate along the segment from the sacroiliac joint out and forward
    p0 = np.array([w + 3.0, y_top - 0.2 * w])
    p1 = p0 + np.array([1.6 * w, 0.9 * w])
    seg = p1 - p0
    t = np.clip(((np.abs(x) - p0[0]) * seg[0] + (y - p0[1]) * seg[1]) / (seg @ seg), 0, 1)
    dist = np.hypot(np.abs(x) - (p0[0] + t * seg[0]), y - (p0[1] + t * seg[1]))
    ilium = (dist <= 5.0) & (z <= z_top + 0.75 * w) & (z >= z_top - 0.55 * length)
    return sacrum, canal, ilium


def write_spine_phantom_dataset(
    dataset_dir: str | os.PathLike,
    num_cases: int = 10,
    shape: Sequence[int] = (96, 96, 128),
    spacing: Sequence[float] = (1.5, 1.5, 1.5),
    seed: int = 0,
    levels: Sequence[int] | None = None,
) -> Path:
    """Write ``num_cases`` phantoms (:py:func:`spine_phantom`; case ``i`` has seed ``seed + i``) as
    ``images/spine_XXX.nii.gz`` and ``labels/spine_XXX.nii.gz`` under ``dataset_dir`` (the layout
    :py:func:`shared.spine.datalist.segmentation_datalist` discovers)."""
    from shared.atomic import atomic_write

    root = Path(dataset_dir)
    for i in range(num_cases):
        image, label, affine = spine_phantom(tuple(shape), tuple(spacing), seed=seed + i, levels=levels)
        name = f"spine_{i:03d}.nii.gz"
        for folder, array in (("images", np.round(image).astype(np.int16)), ("labels", label)):
            with atomic_write(root / folder / name, "wb") as f:
                f.write(gzip.compress(nib.Nifti1Image(array, affine).to_bytes(), compresslevel=1))
    logger.warning(
        f"Wrote {num_cases} synthetic spine CT phantoms to {root} (demo data). "
        "To train on real data, pass --dataset_dir <folder with images/ and labels/> or --datalist_file <json>."
    )
    return root
