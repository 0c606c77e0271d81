# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""PNG views of 3D segmentations: three orthogonal slices of a volume with label maps on top.

One rendering function serves inference (CT + predicted label map) and evaluation (CT, prediction, ground truth).
matplotlib is imported inside it, so importing this module (or a network) never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shared.atomic import atomic_write

__all__ = ["render_orthogonal_slices", "label_colors"]


def label_colors(n: int) -> np.ndarray:
    """``(n, 3)`` RGB in [0, 1] for label ids ``1..n`` (row ``i`` is id ``i + 1``): tab20 then tab20b, repeated, so
    an id has the same colour in every image."""
    from matplotlib import colormaps

    palette = np.concatenate([colormaps["tab20"].colors, colormaps["tab20b"].colors])[:, :3]
    return palette[np.arange(n) % len(palette)]


def _as_volume(x, name: str) -> np.ndarray:
    """``(X, Y, Z)`` numpy array from an array/tensor shaped ``(X, Y, Z)`` or ``(1, X, Y, Z)``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"{name} must be (X, Y, Z) or (1, X, Y, Z), got shape {x.shape}.")
    return x


def _to_ras(volumes: list[np.ndarray], affine: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Reorient voxel arrays to RAS axis order and direction; return them and their voxel sizes (mm)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    transform = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS"))
    spacing = nib.affines.voxel_sizes(affine)[np.argsort(ornt[:, 0])]
    return [nib.orientations.apply_orientation(v, transform) for v in volumes], spacing


def _views(volume: np.ndarray, centre: Sequence[int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices of an RAS volume in radiological display: patient's right on the image's
    left, anterior (axial) and superior (coronal, sagittal) at the top, anterior on the left (sagittal)."""
    x, y, z = centre
    return [np.flip(volume[:, :, z].T, (0, 1)), np.flip(volume[:, y, :].T, (0, 1)), np.flip(volume[x, :, :].T, (0, 1))]


def render_orthogonal_slices(
    image,
    rows: Mapping[str, object | None],
    path: str | os.PathLike,
    affine: np.ndarray | None = None,
    window: Sequence[float] | None = None,
    title: str = "",
    panel_size: int = 256,
    alpha: float = 0.45,
) -> Path:
    """Write a PNG of ``len(rows)`` x 3 panels: per row, the axial, coronal and sagittal slices of ``image`` with
    that row's label map on top (``None``: the image alone).

    The slices cross at the centre of the bounding box of the last row's labelled voxels (the ground truth when it
    is the last row; the volume's centre when there are none), so they cut through the structure shown whatever a
    prediction adds elsewhere. Panels keep the physical aspect ratio from ``affine``.

    Args:
        image: ``(X, Y, Z)`` or ``(1, X, Y, Z)`` intensities.
        rows: row title -> ``(X, Y, Z)`` / ``(1, X, Y, Z)`` integer label map on the image's grid, or ``None``.
        path: the PNG to write (atomically: a temporary file renamed into place).
        affine: voxel-to-world matrix of the grid (default: identity); the views are shown in RAS.
        window: intensity range shown from black to white (default: the 0.5th-99.5th percentiles).
        title: text written in the first panel.
        panel_size: pixels per panel side; the PNG is ``3 * panel_size`` wide, ``len(rows) * panel_size`` high.
        alpha: opacity of the labels.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    volume = _as_volume(image, "image").astype(np.float32)
    labels = {name: None if lbl is None else _as_volume(lbl, name).astype(np.int64) for name, lbl in rows.items()}
    for name, lbl in labels.items():
        if lbl is not None and lbl.shape != volume.shape:
            raise ValueError(f"label map {name!r} has shape {lbl.shape}, the image {volume.shape}.")
    if not labels:
        raise ValueError("rows must name at least one row.")
    names = list(labels)
    oriented, spacing = _to_ras([volume] + [labels[n] for n in names if labels[n] is not None], _affine(affine))
    volume, rest = oriented[0], iter(oriented[1:])
    labels = {n: None if labels[n] is None else next(rest) for n in names}

    labelled = [lbl for lbl in labels.values() if lbl is not None]
    foreground = np.argwhere(labelled[-1] > 0) if labelled else np.zeros((0, 3), int)
    if len(foreground):
        centre = ((foreground.min(0) + foreground.max(0)) // 2).tolist()
    else:
        centre = [s // 2 for s in volume.shape]
    lo, hi = window if window is not None else np.percentile(volume, [0.5, 99.5])
    hi = hi if hi > lo else lo + 1.0
    top = max([int(lbl.max()) for lbl in labels.values() if lbl is not None] + [1])
    colors = np.concatenate([np.zeros((1, 3)), label_colors(top)])
    # row / column pixel spacing of the axial, coronal and sagittal views
    aspects = [spacing[1] / spacing[0], spacing[2] / spacing[0], spacing[2] / spacing[1]]

    dpi = 100
    fig = Figure(figsize=(3 * panel_size / dpi, len(names) * panel_size / dpi), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), 3, squeeze=False, gridspec_kw=dict(wspace=0, hspace=0))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    views = ("axial", "coronal", "sagittal")
    for r, name in enumerate(names):
        for c, (view, aspect) in enumerate(zip(_views(volume, centre), aspects)):
            ax = axes[r][c]
            ax.set_facecolor("black")
            ax.imshow(view, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="antialiased")
            if labels[name] is not None:
                lbl = _views(labels[name], centre)[c]
                rgba = np.concatenate([colors[lbl], (alpha * (lbl > 0))[..., None]], axis=-1)
                ax.imshow(rgba, aspect=aspect, interpolation="nearest")
            ax.set_axis_off()
            text = f"{name}: {views[c]}" if not (r == 0 and c == 0 and title) else f"{title}\n{name}: {views[c]}"
            ax.text(0.02, 0.98, text, color="white", fontsize=8, va="top", transform=ax.transAxes)
    return _save_atomic(fig, Path(path))


def _affine(affine) -> np.ndarray:
    if affine is None:
        return np.eye(4)
    if hasattr(affine, "detach"):
        affine = affine.detach().cpu().numpy()
    return np.asarray(affine, dtype=np.float64)


def _save_atomic(fig, path: Path) -> Path:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", facecolor=fig.get_facecolor())
    return path
