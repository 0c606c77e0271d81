# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Synthetic 3D OCT volumes of the optic-nerve-head/macula region, with and without glaucomatous damage.

A volume is ``(S, A, L)``: B-scans (superior -> inferior), depth along the A-scan (vitreous -> choroid), lateral
position (macula -> optic nerve head), stored as ``uint8`` like device exports. The retina is drawn as layers with
typical relative OCT reflectivities (bright RNFL, medium GCL/IPL and OPL, dark INL and ONL, a bright IS/OS line
and the brightest RPE, then choroid), on a tilted, curved surface with a foveal pit and an optic-disc cup, under
multiplicative speckle. Glaucomatous eyes thin the RNFL and GCL, one hemiretina much more than the other, and
have a wider, deeper cup. It is a demo and test phantom, not a clinical simulator.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

__all__ = [
    "synthesize_oct_volume",
    "write_oct_phantom_dataset",
    "phantom_settings",
    "CLASS_FOLDERS",
    "PHANTOM_DESCRIPTION",
]

CLASS_FOLDERS = ("non_glaucoma", "glaucoma")
PHANTOM_DESCRIPTION = "synthetic OCT phantom (not real data)"

# relative reflectivity of each band, from the inner surface down
_LAYERS = (("rnfl", 0.85), ("gcl_ipl", 0.55), ("inl", 0.25), ("opl", 0.5), ("onl", 0.18), ("is_os", 0.8), ("rpe", 1.0))


def synthesize_oct_volume(
    shape: tuple[int, int, int] = (64, 96, 56), glaucoma: bool = False, rng: np.random.Generator | None = None
) -> np.ndarray:
    """One synthetic OCT volume.

    Args:
        shape: ``(S, A, L)`` = B-scans, depth, lateral.
        glaucoma: draw glaucomatous damage (asymmetric RNFL/GCL thinning, enlarged cup).
        rng: random generator (tilt, thickness, cup, damaged hemiretina, speckle).

    Returns:
        ``uint8`` array of ``shape``.
    """
    rng = np.random.default_rng() if rng is None else rng
    n_s, n_a, n_l = (int(v) for v in shape)
    if min(n_s, n_a, n_l) < 8:
        raise ValueError(f"phantom shape must be at least 8 per axis, got {shape}.")
    s = np.linspace(-1.0, 1.0, n_s)[:, None]  # superior (-1) .. inferior (+1)
    lat = np.linspace(0.0, 1.0, n_l)[None, :]  # macula (0) .. ONH (1)
    fovea = (0.0 + rng.normal(0, 0.05), 0.3 + rng.normal(0, 0.03))
    disc = (0.0 + rng.normal(0, 0.05), 0.8 + rng.normal(0, 0.03))
    d_fovea = np.sqrt((s - fovea[0]) ** 2 + (lat - fovea[1]) ** 2 * 4)
    d_disc = np.sqrt((s - disc[0]) ** 2 + (lat - disc[1]) ** 2 * 4)

    # inner retinal surface (fraction of depth): tilt + curvature + foveal pit + cup
    cup_radius = rng.uniform(0.22, 0.3) * (1.45 if glaucoma else 1.0)
    cup_depth = rng.uniform(0.1, 0.14) * (1.5 if glaucoma else 1.0)
    surface = (
        0.25
        + rng.uniform(-0.06, 0.06) * s
        + rng.uniform(-0.06, 0.06) * (lat - 0.5)
        + 0.04 * (s**2 + (lat - 0.5) ** 2)
        + 0.04 * np.exp(-((d_fovea / 0.12) ** 2))
        + cup_depth * np.exp(-((d_disc / cup_radius) ** 2))
    )
    scale = rng.uniform(0.85, 1.15)  # global thickness
    # RNFL thickens toward the disc and thins over the fovea; GCL is thickest around the fovea
    rnfl = scale * (0.02 + 0.05 * np.exp(-((d_disc / 0.55) ** 2))) * (1 - 0.8 * np.exp(-((d_fovea / 0.1) ** 2)))
    gcl = scale * (0.03 + 0.03 * np.exp(-(((d_fovea - 0.18) / 0.12) ** 2)))
    gcl = gcl * (1 - 0.9 * np.exp(-((d_fovea / 0.06) ** 2)))
    if glaucoma:
        damaged_superior = rng.random() < 0.5
        hemi = (s < 0) if damaged_superior else (s > 0)
        strong, weak = rng.uniform(0.35, 0.55), rng.uniform(0.8, 0.95)
        loss = np.where(hemi, strong, weak)
        rnfl = rnfl * loss
        gcl = gcl * (0.5 + 0.5 * loss)
    thickness = [rnfl, gcl, scale * 0.035, scale * 0.02, scale * 0.07, scale * 0.012, scale * 0.02]
    inside_disc = np.exp(-((d_disc / (0.6 * cup_radius)) ** 2))  # layers fade out inside the disc

    depth = np.linspace(0.0, 1.0, n_a)[None, :, None]  # broadcast to (S, A, L)
    vol = np.full((n_s, n_a, n_l), 0.03)
    top = surface[:, None, :] * np.ones((1, 1, 1))
    for (_, reflect), thick in zip(_LAYERS, thickness):
        thick = np.broadcast_to(np.asarray(thick, dtype=float), surface.shape)[:, None, :]
        band = (depth >= top) & (depth < top + thick)
        vol = np.where(band, reflect * (1 - 0.85 * inside_disc[:, None, :]), vol)
        top = top + thick
    choroid = (depth >= top) & (depth < top + 0.15)
    vol = np.where(choroid, 0.45 * np.exp(-(depth - top) / 0.08), vol)
    # speckle (multiplicative, gamma distributed) and a little additive noise
    vol = vol * rng.gamma(4.0, 1.0 / 4.0, size=vol.shape) + rng.normal(0, 0.02, size=vol.shape)
    return (np.clip(vol, 0, 1) * 255).astype(np.uint8)


def write_oct_phantom_dataset(
    out_dir: str,
    num_patients: int = 16,
    shape: tuple[int, int, int] = (64, 96, 56),
    seed: int = 0,
    eyes_per_patient: int = 2,
    fmt: str = "npy",
) -> list[dict]:
    """Write a class-folder OCT dataset: ``out_dir/{glaucoma,non_glaucoma}/P0003_OD.npy`` (or ``.nii.gz``).

    Half the patients are glaucomatous (both eyes). File stems start with the patient id, so splits can be made by
    patient. A ``datalist.json`` (``image`` relative path, ``label``, ``patient_id``, and the ``settings`` it was
    written with) is written beside the folders. The dataset is written into a hidden sibling folder that is renamed
    to ``out_dir`` at the end, so an interrupted run never leaves a partial dataset; ``out_dir`` must be absent or
    empty.

    Returns:
        the datalist (absolute image paths).
    """
    if fmt not in ("npy", "nii.gz"):
        raise ValueError(f"fmt must be 'npy' or 'nii.gz', got {fmt!r}.")
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir} is not empty: the phantom dataset is written into a new or empty folder.")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", suffix=".partial", dir=parent)
    rng = np.random.default_rng(seed)
    rel_items = []
    try:
        for c in CLASS_FOLDERS:
            os.makedirs(os.path.join(tmp, c))
        for p in range(num_patients):
            label = p % 2
            pid = f"P{p:04d}"
            for e in range(eyes_per_patient):
                vol = synthesize_oct_volume(shape, glaucoma=bool(label), rng=rng)
                rel = os.path.join(CLASS_FOLDERS[label], f"{pid}_{('OD', 'OS')[e % 2]}{e // 2 or ''}.{fmt}")
                if fmt == "npy":
                    np.save(os.path.join(tmp, rel), vol)
                else:
                    import nibabel as nib

                    nib.save(nib.Nifti1Image(vol, np.eye(4)), os.path.join(tmp, rel))
                rel_items.append({"image": rel, "label": label, "patient_id": pid})
        settings = {"num_patients": int(num_patients), "shape": [int(v) for v in shape], "seed": int(seed)}
        settings.update(eyes_per_patient=int(eyes_per_patient), fmt=fmt)
        with open(os.path.join(tmp, "datalist.json"), "w") as f:
            json.dump({"description": PHANTOM_DESCRIPTION, "settings": settings, "data": rel_items}, f, indent=1)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty, checked above
        os.replace(tmp, out_dir)  # atomic on one file system: the dataset appears complete or not at all
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return [{**item, "image": os.path.join(out_dir, item["image"])} for item in rel_items]


def phantom_settings(out_dir: str) -> dict | None:
    """The ``settings`` a phantom dataset in ``out_dir`` was written with (``None``: not a phantom dataset)."""
    path = os.path.join(out_dir, "datalist.json")
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("description") != PHANTOM_DESCRIPTION:
        return None
    return content.get("settings")
