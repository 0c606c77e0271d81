# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Synthetic three-class (CN / MCI / AD) multi-omic demo cohort.

Each subject gets:

- MRI: the MNI152 2009 T1 template shipped in the nilearn wheel, with class-dependent grey-matter loss
  (medial parietal / posterior cingulate, medial temporal, plus a global component), a smooth bias field,
  noise and a one-voxel jitter.
- PET: an FDG-like map made from the MNI152 grey-matter probability map (plus white-matter uptake), with
  class-dependent temporo-parietal and posterior-cingulate/precuneus hypometabolism, smoothed to PET resolution.
- SNPs: dosages 0/1/2 from per-locus allele frequencies; a few risk loci have frequencies that rise with class.
  Written as one PLINK 1 binary set (``genotypes/cohort.bed/.bim/.fam``) with the subject ids as IIDs.
- clinical: age, sex, education, MMSE, CDR-SB, ADAS-Cog13 and FAQ drawn from class-dependent distributions, and
  the APOE e4 allele count (0/1/2) with a class-dependent e4 frequency, with a few missing entries. MMSE, CDR-SB,
  ADAS-Cog13 and FAQ are the scores a diagnosis is made from (they nearly give the label away); age, sex, education
  and APOE e4 are not.

The result is a folder with ``manifest.csv`` in the layout :func:`shared.multiomic.manifest.read_manifest` reads.
The images are derived from the ICBM 2009 template (Copyright (C) 1993-2009 Louis Collins, McConnell Brain
Imaging Centre, Montreal Neurological Institute, McGill University), used under its permissive licence.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from shared.errors import InputError
from shared.multiomic.plink import write_plink_bed

__all__ = ["DEMO_CLINICAL_NUMERIC", "DEMO_CLINICAL_CATEGORICAL", "write_demo_cohort", "prepare_dataset"]

DEMO_CLINICAL_NUMERIC = ("age", "education", "mmse", "cdr_sb", "adas13", "faq", "apoe4")
DEMO_CLINICAL_CATEGORICAL = ("sex",)
_CLASSES = ("CN", "MCI", "AD")
_SETTINGS_FILE = "demo_settings.json"
_FORMAT = 2  # bump when the cohort's content changes: an older demo folder is then rewritten
_SEVERITY = (0.0, 0.5, 1.0)
# class means / sds of the clinical variables, loosely following ADNI baseline summaries
_CLINICAL = {
    "age": ((72.0, 6.0), (73.5, 7.0), (75.0, 7.5), (55, 95)),
    "education": ((16.4, 2.6), (15.8, 2.9), (15.2, 3.0), (6, 22)),
    "mmse": ((29.0, 1.1), (27.3, 1.8), (23.2, 2.2), (10, 30)),
    "cdr_sb": ((0.05, 0.2), (1.6, 0.9), (4.4, 1.6), (0, 18)),
    "adas13": ((9.0, 4.5), (17.0, 6.5), (30.0, 7.5), (0, 85)),
    "faq": ((0.3, 1.0), (3.5, 4.0), (13.5, 7.0), (0, 30)),
}
# APOE e4 allele frequency per class (carriers about 25 % / 45 % / 60 %, as in ADNI baseline summaries)
_APOE4_FREQUENCY = (0.14, 0.26, 0.37)
# regions in MNI mm: (centre, radius)
_PCC_PRECUNEUS = ((0.0, -58.0, 32.0), 16.0)
_TEMPOROPARIETAL = (((-46.0, -60.0, 26.0), 18.0), ((46.0, -60.0, 26.0), 18.0))
_MEDIAL_TEMPORAL = (((-26.0, -20.0, -16.0), 12.0), ((26.0, -20.0, -16.0), 12.0))


def _template_dir() -> str:
    """The data folder of the installed nilearn wheel, found without importing nilearn (a slow import)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the demo cohort needs the MNI152 templates of the 'nilearn' package: pip install nilearn"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


def _templates(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """T1, GM, WM maps of the MNI152 2009 template block-averaged from 1 mm to ``resolution`` mm, and the affine."""
    import nibabel as nib

    k = int(resolution)
    if k < 1:
        raise ValueError(f"resolution must be a positive integer number of mm, got {resolution}.")
    out = []
    affine = None
    for name in ("t1", "gm", "wm"):
        img = nib.load(os.path.join(_template_dir(), f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"))
        a = np.asarray(img.dataobj, np.float32) / 255.0  # stored as uint8; maps are probabilities in [0, 1]
        n = [s // k for s in a.shape]
        a = a[: n[0] * k, : n[1] * k, : n[2] * k].reshape(n[0], k, n[1], k, n[2], k).mean(axis=(1, 3, 5))
        out.append(a.astype(np.float32))
        affine = np.asarray(img.affine, np.float64) @ np.diag([k, k, k, 1.0])
        affine[:3, 3] = img.affine[:3, 3] + img.affine[:3, :3] @ np.full(3, (k - 1) / 2.0)
    return out[0], out[1], out[2], affine


def _sphere_weight(shape: Sequence[int], affine: np.ndarray, centre: Sequence[float], radius: float) -> np.ndarray:
    """Smooth (Gaussian-edged) weight in [0, 1] around an MNI coordinate."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    d2 = ((xyz - np.asarray(centre, np.float32)[:, None]) ** 2).sum(0)
    return np.exp(-d2 / (2.0 * radius**2)).reshape(shape).astype(np.float32)


def _smooth(x: np.ndarray, sigma_vox: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma_vox).astype(np.float32)


def write_demo_cohort(
    out_dir: str,
    n_per_class: Sequence[int] = (20, 20, 20),
    n_snps: int = 15000,
    n_risk_loci: int = 30,
    resolution: int = 2,
    missing_rate: float = 0.02,
    seed: int = 0,
) -> str:
    """
    Write the synthetic cohort into ``out_dir`` (created; must be empty or absent).

    Args:
        out_dir: target folder.
        n_per_class: subjects per class (CN, MCI, AD).
        n_snps: SNPs per subject.
        n_risk_loci: loci whose risk-allele frequency rises with class.
        resolution: voxel size in mm of the written volumes (the template is resampled by nilearn).
        missing_rate: fraction of missing clinical entries (non-label columns) and missing genotypes.
        seed: random seed; the same arguments give the same cohort.

    Returns:
        the manifest path.
    """
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"demo cohort target '{out_dir}' is not empty.")
    if len(n_per_class) != 3 or min(n_per_class) < 1:
        raise InputError(
            f"config id 'demo_cohort#n_per_class' is {list(n_per_class)}: expected three positive subject counts "
            "(CN, MCI, AD)."
        )
    if not 0 < n_risk_loci <= n_snps:
        raise InputError(f"config id 'demo_cohort#n_risk_loci' is {n_risk_loci}: expected 1 to n_snps={n_snps}.")
    if int(resolution) != resolution or resolution < 1:
        raise InputError(f"config id 'demo_cohort#resolution' is {resolution!r}: expected a whole number of mm >= 1.")
    import nibabel as nib

    settings = dict(
        n_per_class=list(n_per_class),
        n_snps=n_snps,
        n_risk_loci=n_risk_loci,
        resolution=resolution,
        missing_rate=missing_rate,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    t1, gm, wm, affine = _templates(int(resolution))
    shape = t1.shape
    pcc = _sphere_weight(shape, affine, *_PCC_PRECUNEUS)
    tp = sum(_sphere_weight(shape, affine, c, r) for c, r in _TEMPOROPARIETAL)
    mtl = sum(_sphere_weight(shape, affine, c, r) for c, r in _MEDIAL_TEMPORAL)
    brain = (gm + wm) > 0.2
    pet_base = np.where(brain | (gm > 0.05), gm + 0.35 * wm, 0.0).astype(np.float32)
    sigma_pet = 3.0 / resolution  # about 7 mm FWHM
    t1_max = float(t1.max())

    # genotype model shared by the whole cohort
    maf = rng.uniform(0.05, 0.5, n_snps).astype(np.float32)
    risk = np.sort(rng.choice(n_snps, n_risk_loci, replace=False))
    risk_effect = rng.uniform(0.15, 0.3, n_risk_loci).astype(np.float32)

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo_", dir=parent)  # same file system: the final rename is atomic
    try:
        os.makedirs(os.path.join(tmp, "mri"))
        os.makedirs(os.path.join(tmp, "pet"))
        rows: list[dict[str, str]] = []
        dosages: list[np.ndarray] = []
        sexes: list[int] = []
        idx = 0
        for c, n in enumerate(n_per_class):
            for _ in range(int(n)):
                idx += 1
                sid = f"SUBJ{idx:04d}"
                sev = float(np.clip(_SEVERITY[c] + rng.normal(0, 0.12), 0.0, 1.3))

                # MRI: grey-matter loss pulls T1 intensity toward CSF
                loss = gm * np.clip(0.06 * sev + 0.45 * sev * pcc + 0.5 * sev * mtl + 0.2 * sev * tp, 0, 0.85)
                bias = 1.0 + 0.05 * _smooth(rng.standard_normal(shape).astype(np.float32), 12.0 / resolution) * 8
                mri = t1 * (1.0 - loss) * bias + rng.normal(0, 0.015 * t1_max, shape).astype(np.float32)
                mri = np.roll(mri, tuple(int(s) for s in rng.integers(-1, 2, 3)), axis=(0, 1, 2))
                mri = np.clip(mri / t1_max * 1000.0, 0, 1500).astype(np.int16)

                # PET: hypometabolism in posterior cingulate/precuneus and temporo-parietal cortex
                hypo = np.clip(0.4 * sev * pcc + 0.35 * sev * tp + 0.15 * sev * mtl, 0, 0.8)
                pet = pet_base * (1.0 - hypo) * rng.uniform(0.9, 1.1)
                pet = _smooth(pet, sigma_pet) + rng.normal(0, 0.01, shape).astype(np.float32)
                pet = np.clip(pet * 10000.0, 0, 32000).astype(np.int16)

                nib.save(nib.Nifti1Image(mri, affine), os.path.join(tmp, "mri", f"{sid}.nii.gz"))
                nib.save(nib.Nifti1Image(pet, affine), os.path.join(tmp, "pet", f"{sid}.nii.gz"))

                p = maf.copy()
                p[risk] = np.clip(p[risk] + risk_effect * _SEVERITY[c], 0.01, 0.95)
                g = rng.binomial(2, p).astype(np.float32)
                g[rng.random(n_snps) < missing_rate * 0.25] = np.nan
                dosages.append(g)

                sex = "F" if rng.random() < 0.5 else "M"
                sexes.append(2 if sex == "F" else 1)
                row = {"subject_id": sid, "mri": f"mri/{sid}.nii.gz", "pet": f"pet/{sid}.nii.gz"}
                row["snp"] = "genotypes/cohort.bed"
                for name, (cn, mci, ad, (lo, hi)) in _CLINICAL.items():
                    mu, sd = (cn, mci, ad)[c]
                    v = float(np.clip(rng.normal(mu, sd), lo, hi))
                    row[name] = "" if rng.random() < missing_rate else (f"{v:.1f}" if name == "age" else f"{v:.0f}")
                    if name == "cdr_sb" and row[name]:
                        row[name] = f"{round(v * 2) / 2:.1f}"
                apoe4 = int(rng.binomial(2, _APOE4_FREQUENCY[c]))
                row["apoe4"] = "" if rng.random() < missing_rate else str(apoe4)
                row["sex"] = sex
                row["label"] = _CLASSES[c]
                rows.append(row)

        ids = [r["subject_id"] for r in rows]
        write_plink_bed(
            os.path.join(tmp, "genotypes", "cohort.bed"),
            np.stack(dosages),
            ids,
            snp_ids=[f"rs{9000000 + j}" for j in range(n_snps)],
            sexes=sexes,
        )
        columns = ["subject_id", "mri", "pet", "snp", *DEMO_CLINICAL_NUMERIC[:1], "sex", *DEMO_CLINICAL_NUMERIC[1:]]
        with open(os.path.join(tmp, "manifest.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns + ["label"])
            w.writeheader()
            w.writerows(rows)
        with open(os.path.join(tmp, _SETTINGS_FILE), "w") as f:
            json.dump(_settings(settings), f)
        with open(os.path.join(tmp, "README.txt"), "w") as f:
            f.write(
                "Synthetic CN/MCI/AD multi-omic demo cohort (not patient data).\n"
                f"{len(rows)} subjects, seed {seed}, {n_snps} SNPs ({n_risk_loci} risk loci: "
                f"{', '.join(str(int(r)) for r in risk[:10])}{' ...' if n_risk_loci > 10 else ''}), "
                f"{resolution} mm volumes.\n"
                "Images are derived from the MNI152 ICBM 2009 template shipped with nilearn: Copyright (C) 1993-2009 "
                "Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill University.\n"
            )
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty, checked above
        os.replace(tmp, out_dir)  # atomic: an interrupted run never leaves a half-written cohort
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(out_dir, "manifest.csv")


def _settings(demo_kwargs: dict) -> dict:
    kw = {
        "format": _FORMAT,
        "n_per_class": [20, 20, 20],
        "n_snps": 15000,
        "n_risk_loci": 30,
        "resolution": 2,
        "missing_rate": 0.02,
        "seed": 0,
    }
    kw.update({k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in demo_kwargs.items()})
    return kw


def _writer_kwargs(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "format"}


def prepare_dataset(dataset_dir: str, default_dir: str | None = None, **demo_kwargs) -> str:
    """
    Return ``dataset_dir``, first writing the synthetic demo cohort there when it is the default folder
    (``default_dir``, or any folder when ``default_dir`` is None) and is missing or empty, or holds a demo cohort
    written with other settings (e.g. another ``n_snps``). A user folder is never written; reading it later fails
    with a clear message when it is missing, empty or malformed. Under torch.distributed rank 0 writes, the others
    wait.
    """
    is_default = default_dir is None or os.path.abspath(dataset_dir) == os.path.abspath(default_dir)
    if not is_default:
        return dataset_dir
    settings = _settings(demo_kwargs)
    marker = os.path.join(dataset_dir, _SETTINGS_FILE)
    stale = False
    if os.path.isfile(marker):
        try:
            with open(marker) as f:
                stale = json.load(f) != settings
        except (OSError, ValueError):  # our own marker, unreadable: rewrite the demo cohort
            stale = True
    if not (not os.path.isdir(dataset_dir) or not os.listdir(dataset_dir) or stale):
        return dataset_dir
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    if not distributed or dist.get_rank() == 0:
        if stale:
            shutil.rmtree(dataset_dir)  # only a folder holding our own marker file is removed
        write_demo_cohort(dataset_dir, **_writer_kwargs(settings))
    if distributed:
        dist.barrier()
    return dataset_dir
