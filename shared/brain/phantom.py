# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Synthetic two-class T1 brain MRI set derived from the skull-stripped ICBM152 2009a (symmetric) template and its
grey/white-matter maps, shipped as package data in the nilearn wheel.

Every subject is the template under a random affine and a smooth elastic deformation, with a multiplicative
bias field and Rician-like noise. The "anomaly" class additionally has enlarged lateral ventricles and
medial-temporal and cortical atrophy (grey matter replaced by CSF-like intensity), with a random severity.
It is a demonstration/test set for the pipeline, not a substitute for real data.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import logging
import os
from importlib import resources

import nibabel as nib
import numpy as np
from scipy import ndimage

from shared.atomic import atomic_write, write_json
from shared.errors import InputError, MissingInputError
from shared.inputs import check_folder

__all__ = ["CLASS_NAMES", "load_mni152", "write_synthetic_brain_mri", "ensure_demo_dataset"]

logger = logging.getLogger(__name__)

CLASS_NAMES = ("control", "anomaly")
_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def load_mni152() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 1 mm ICBM152 2009a T1 template and GM/WM maps (scaled to 0..1) from nilearn's package data, and affine."""
    try:
        data_dir = resources.files("nilearn.datasets") / "data"
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("the synthetic brain MRI demo set needs nilearn (pip install nilearn)") from e
    out, affine = {}, None
    for k, name in _FILES.items():
        img = nib.load(str(data_dir / name))
        arr = np.asarray(img.dataobj, dtype=np.float32)
        out[k] = arr / max(float(arr.max()), 1e-6)  # stored as 0..255: bring intensities/probabilities to 0..1
        affine = img.affine if affine is None else affine
    return out, np.asarray(affine)


def _mm_to_vox(affine: np.ndarray, xyz: tuple[float, float, float]) -> np.ndarray:
    return (np.linalg.inv(affine) @ np.array([*xyz, 1.0]))[:3]


class _AnomalyModel:
    """Precomputed template geometry for the anomaly edits (distance maps make each subject cheap)."""

    def __init__(self, t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray) -> None:
        self.affine = affine
        self.brain = t1 > 0.05
        tissue = gm + wm
        csf = self.brain & (tissue < 0.2)
        self.csf_value = float(np.median(t1[csf])) if csf.any() else 0.1
        # lateral ventricles: dark, non-tissue voxels in a central box (MNI mm)
        lo, hi = _mm_to_vox(affine, (-30, -45, -5)), _mm_to_vox(affine, (30, 30, 35))
        box = np.zeros(t1.shape, bool)
        sl = tuple(slice(int(min(a, b)), int(max(a, b)) + 1) for a, b in zip(lo, hi))
        box[sl] = True
        ventricles = box & self.brain & (tissue < 0.35) & (t1 < 0.45)
        self.dist_ventricles = ndimage.distance_transform_edt(~ventricles).astype(np.float32)
        self.depth = ndimage.distance_transform_edt(self.brain).astype(np.float32)  # distance to the brain surface
        self.cortex = gm > 0.4

    def apply(self, t1: np.ndarray, severity: float, rng: np.random.Generator) -> None:
        """In place: enlarge the lateral ventricles, shrink the hippocampal region and thin the cortex."""
        t1[(self.dist_ventricles <= 1 + 2.5 * severity) & self.brain] = self.csf_value
        # medial temporal atrophy: tissue around both hippocampi fades to CSF intensity
        r = 7.0 + 5.0 * severity
        for x in (-26.0, 26.0):
            c = _mm_to_vox(self.affine, (x + rng.normal(0, 1), -22 + rng.normal(0, 1), -14 + rng.normal(0, 1)))
            sl = tuple(slice(max(int(c[a] - r), 0), int(c[a] + r) + 2) for a in range(3))
            g = np.ogrid[sl]
            d = np.sqrt(sum((g[a] - c[a]) ** 2 for a in range(3)))
            w = np.clip(1.0 - d / r, 0, 1) * (0.5 + 0.5 * severity)
            t1[sl] = t1[sl] * (1 - w) + self.csf_value * w * self.brain[sl]
        # cortical thinning: grey matter near the outer brain surface becomes CSF
        thin = (self.depth <= 1 + 2 * severity) & self.cortex & (rng.random(t1.shape) < 0.5 + 0.4 * severity)
        t1[thin] = self.csf_value


@functools.lru_cache(maxsize=1)
def _template() -> tuple[dict[str, np.ndarray], np.ndarray, _AnomalyModel]:
    # loading and the distance maps take seconds; a process writing several sets (tests, CV demos) does it once
    tpl, affine = load_mni152()
    return tpl, affine, _AnomalyModel(tpl["t1"], tpl["gm"], tpl["wm"], affine)


def _random_warp(shape_out, vox_out, affine_tpl, affine_out, rng, elastic_mm: float = 3.0) -> np.ndarray:
    """Template voxel coordinates (3, *shape_out) for each output voxel: random affine + smooth elastic field."""
    ang = np.deg2rad(rng.uniform(-6, 6, 3))
    cx, cy, cz = np.cos(ang)
    sx, sy, sz = np.sin(ang)
    rot = (
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )
    lin = rot @ np.diag(rng.uniform(0.94, 1.06, 3))
    shift = rng.uniform(-3, 3, 3)
    idx = np.indices(shape_out, dtype=np.float32).reshape(3, -1)
    mm = affine_out[:3, :3] @ idx + affine_out[:3, 3:4]
    mm = lin @ mm + shift[:, None]
    # elastic: a coarse random field, upsampled smoothly to the output grid
    coarse = rng.normal(0, elastic_mm, (3, 6, 7, 6)).astype(np.float32)
    # cubic to a quarter-resolution grid, then linear to full size: smooth and cheap
    mid = [max(s // 4, c) for s, c in zip(shape_out, coarse.shape[1:])]
    field = []
    for c in coarse:
        c = ndimage.zoom(c, [m / k for m, k in zip(mid, c.shape)], order=3)
        c = ndimage.zoom(c, [s / m for s, m in zip(shape_out, c.shape)], order=1)
        field.append(c[: shape_out[0], : shape_out[1], : shape_out[2]])
    field = np.stack(field)
    mm = mm + field.reshape(3, -1)
    vox = np.linalg.inv(affine_tpl) @ np.vstack([mm, np.ones((1, mm.shape[1]), np.float32)])
    return vox[:3].reshape(3, *shape_out)


def _save_nifti(img: nib.Nifti1Image, path: str) -> None:
    """``nib.save`` to a ``.nii.gz``, atomically."""
    with atomic_write(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(img.to_bytes())


def write_synthetic_brain_mri(
    out_dir: str, subjects_per_class: int = 10, voxel_size: float = 2.0, seed: int = 0, noise: float = 0.03
) -> str:
    """
    Write ``images/sub-XXX.nii.gz`` (RAS, float32) and ``datalist.csv`` (image, label, subject_id) to ``out_dir``.

    Args:
        out_dir: destination folder.
        subjects_per_class: subjects per class (one scan each).
        voxel_size: isotropic output spacing in mm (the template is 1 mm; 2 mm gives 99 x 117 x 95).
        seed: random seed (the set is reproducible).
        noise: noise std relative to the white-matter intensity.

    Returns the datalist path.
    """
    if subjects_per_class < 1:
        raise ValueError(f"subjects_per_class must be >= 1, got {subjects_per_class}.")
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}.")
    tpl, affine_tpl, anomaly = _template()
    rng = np.random.default_rng(seed)
    shape_out = tuple(int(np.floor(s / voxel_size)) for s in tpl["t1"].shape)
    affine_out = affine_tpl.copy()
    affine_out[:3, :3] = affine_tpl[:3, :3] * voxel_size
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    rows = []
    n = 0
    for label, name in enumerate(CLASS_NAMES):
        for _ in range(subjects_per_class):
            sid = f"sub-{n:03d}"
            t1 = tpl["t1"].copy()
            if label == 1:
                anomaly.apply(t1, float(rng.uniform(0.4, 1.0)), rng)
            coords = _random_warp(shape_out, voxel_size, affine_tpl, affine_out, rng)
            img = ndimage.map_coordinates(t1, coords, order=1, mode="constant", cval=0.0)
            # smooth multiplicative bias field
            g = np.indices(shape_out, dtype=np.float32) / np.array(shape_out, np.float32).reshape(3, 1, 1, 1) - 0.5
            coef = rng.normal(0, 0.15, 3)
            img = img * np.exp((coef.reshape(3, 1, 1, 1) * g).sum(0) + rng.normal(0, 0.08) * (g**2).sum(0))
            # magnitude of complex Gaussian noise (Rician, as in magnitude MR images)
            s = noise * float(np.percentile(img[img > 0.05], 90)) if np.any(img > 0.05) else noise
            img = np.sqrt((img + rng.normal(0, s, shape_out)) ** 2 + rng.normal(0, s, shape_out) ** 2)
            path = os.path.join("images", f"{sid}.nii.gz")
            _save_nifti(nib.Nifti1Image((img * 1000).astype(np.float32), affine_out), os.path.join(out_dir, path))
            rows.append({"image": path, "label": name, "subject_id": sid})
            n += 1
    datalist = os.path.join(out_dir, "datalist.csv")  # last: a complete set is one with its datalist
    with atomic_write(datalist, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "label", "subject_id"])
        w.writeheader()
        w.writerows(rows)
    logger.info(f"wrote {n} synthetic brain MRI volumes {shape_out} to {out_dir}")
    return datalist


def ensure_demo_dataset(
    dataset_dir: str,
    demo_dir: str,
    datalist_name: str = "datalist.csv",
    subjects_per_class: int = 10,
    voxel_size: float = 2.0,
    seed: int = 0,
) -> str:
    """
    Return the datalist to use. When ``dataset_dir`` is the demo folder, the synthetic set is written there first if
    it holds none yet, or was written with other settings, or its writing was interrupted (``demo_settings.json``
    marks a folder this function writes; the datalist is written last). A user-given ``dataset_dir`` that is missing
    or has no datalist is an error that names the path and the expected layout.
    """
    datalist = os.path.join(dataset_dir, datalist_name)
    if os.path.abspath(os.path.expanduser(dataset_dir)) != os.path.abspath(os.path.expanduser(demo_dir)):
        if os.path.isfile(datalist):
            return datalist
        layout = (
            f"expected a folder with {datalist_name} (columns image,label[,subject_id][,split], image paths relative "
            "to it) and the images it lists, or pass the datalist as --datalist_file"
        )
        check_folder(dataset_dir, "dataset_dir", layout)
        raise MissingInputError(f"dataset_dir {dataset_dir} has no {datalist_name}: {layout}.")
    settings = {"subjects_per_class": subjects_per_class, "voxel_size": float(voxel_size), "seed": seed, "version": 1}
    settings_file = os.path.join(dataset_dir, "demo_settings.json")
    written = None
    if os.path.isfile(settings_file):
        try:
            with open(settings_file) as f:
                written = json.load(f)
        except (OSError, ValueError):
            written = {}  # ours, but unreadable: write the set again
    if os.path.isfile(datalist) and written in (None, settings):
        return datalist  # the set written with these settings, or data the user put in the demo folder
    if written is None:
        entries = [f for f in os.listdir(dataset_dir) if not f.startswith(".")] if os.path.isdir(dataset_dir) else []
        if entries:
            raise InputError(
                f"demo dataset folder {dataset_dir} is not empty but has no {datalist_name} and was not written by "
                "the bundle: empty it to regenerate the synthetic set, or pass your data as --dataset_dir."
            )
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    if not distributed or dist.get_rank() == 0:  # one writer; the other ranks wait for it
        if written is not None:
            logger.info(f"demo dataset {dataset_dir} is incomplete or was written with other settings; regenerating")
            _remove_demo_files(dataset_dir, datalist)
        os.makedirs(dataset_dir, exist_ok=True)
        write_json(settings_file, settings)  # first: marks the folder as the bundle's while it is written
        write_synthetic_brain_mri(dataset_dir, subjects_per_class, voxel_size, seed)
    if distributed:
        dist.barrier()
    return datalist


def _remove_demo_files(dataset_dir: str, datalist: str) -> None:
    if os.path.isfile(datalist):
        os.remove(datalist)
    images = os.path.join(dataset_dir, "images")
    for name in os.listdir(images) if os.path.isdir(images) else []:
        if name.startswith("sub-") and name.endswith(".nii.gz"):
            os.remove(os.path.join(images, name))
