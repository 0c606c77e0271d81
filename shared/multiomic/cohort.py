# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ad_multiomic_classification's datalist: the manifest read and checked (every row, every file the run uses), split
by subject and stratified by class, and the split an evaluation scores."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import InputError, MissingInputError
from shared.inputs import MAX_IMAGE_GIB, check_folder
from shared.multiomic.manifest import CLASS_NAMES, check_image_file, read_manifest, row_of
from shared.multiomic.preprocessing import ClinicalPreprocessor, FeaturePreprocessor, check_encodable
from shared.multiomic.snps import read_snp
from shared.splits import assign_splits

__all__ = ["validate_records", "check_unseen", "load_cohort", "cohort_datalist"]


logger = logging.getLogger(__name__)


def validate_records(
    records: Sequence[Mapping[str, Any]],
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    snp_features: int | None = None,
    clinical: ClinicalPreprocessor | None = None,
    manifest: str | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> None:
    """Check every subject before any compute: each image decoded in full (:func:`check_image_file`), the SNP vector
    (length, codes), the clinical values (numbers, ranges). The first problem is one :class:`InputError` naming the
    manifest line, the subject and the file or column."""
    for rec in records:
        where = row_of(rec, manifest)
        for m in ("mri", "pet"):
            if m in modalities:
                check_image_file(rec[m], where, what=m.upper(), max_image_gib=max_image_gib)
        if "snp" in modalities:
            read_snp(rec["snp"], rec["subject_id"], snp_features)
        if "clinical" in modalities and clinical is not None:
            clinical.parse(rec["clinical_raw"], where + ": ")


def check_unseen(
    items: Sequence[Mapping[str, Any]], split: str, preprocessing: FeaturePreprocessor
) -> list[dict[str, Any]]:
    """The evaluated subjects (:func:`shared.splits.select_split`), checked against the model's fitted
    ``preprocessing``: a subject it was trained on (or, for ``test``, selected with) stops the evaluation, as its
    splits were not the model's, and every subject must be encodable."""
    used = set(preprocessing.subjects["training"])
    if split == "test":
        used |= set(preprocessing.subjects["validation"])
    seen = sorted(str(r["subject_id"]) for r in items if str(r["subject_id"]) in used)
    if seen:
        raise InputError(
            f"{len(seen)} of the {len(items)} {split} subjects (e.g. {seen[:3]}) were used to train or select the "
            f"model (listed in {preprocessing.path or 'its fitted preprocessing'}): evaluate with the manifest, "
            "seed, val_fraction and test_fraction (or split column) the model was trained with."
        )
    check_encodable(items, preprocessing)
    return [dict(r) for r in items]


def load_cohort(
    dataset_dir: str,
    manifest: str = "manifest.csv",
    clinical_columns: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    require_label: bool = True,
) -> list[dict[str, Any]]:
    """Read ``<dataset_dir>/<manifest>`` with a clear error when the folder is missing, empty or lacks it."""
    layout = "expected <dataset_dir>/" + manifest + " with columns subject_id, mri, pet, snp, <clinical>, label"
    check_folder(dataset_dir, "dataset_dir", layout)
    if not os.listdir(dataset_dir):
        raise MissingInputError(f"dataset_dir '{dataset_dir}' is empty ({layout}).")
    path = manifest if os.path.isabs(manifest) else os.path.join(dataset_dir, manifest)
    if not os.path.isfile(path):
        raise MissingInputError(f"dataset_dir '{dataset_dir}' has no manifest '{path}' ({layout}).")
    return read_manifest(path, clinical_columns, modalities, class_names, require_label)


def cohort_datalist(
    dataset_dir: str,
    manifest: str = "manifest.csv",
    clinical_numeric: Sequence[str] = (),
    clinical_categorical: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    snp_features: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    require_label: bool = True,
    demo_dir: str | None = None,
    demo_kwargs: Mapping[str, Any] | None = None,
    clinical_ranges: Mapping[str, Sequence[float]] | None = None,
    check_splits: Sequence[str] | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> dict[str, list[dict[str, Any]]]:
    """
    A bundle's datalist: write the synthetic demo cohort when ``dataset_dir`` is the (empty) ``demo_dir``, read and
    check the manifest (every row, every file present) and split by subject, then decode and check the files of the
    subjects a run uses (``check_splits``; all when None) before any compute.

    Returns:
        ``{"training", "validation", "test", "all"}`` lists of records (``all`` in manifest order). Without
        ``require_label`` (inference) every subject is in ``all`` and the splits are empty.

    Raises:
        InputError: any problem with the manifest or a subject's files (naming the line, subject and file), and an
            empty training or validation split.
    """
    unknown = [m for m in modalities if m not in ("mri", "pet", "snp", "clinical")]
    if unknown or not modalities:
        raise InputError(
            f"config id 'modalities' is {list(modalities)}: expected a non-empty subset of "
            "['mri', 'pet', 'snp', 'clinical']."
        )
    if demo_dir is not None:
        from shared.multiomic.phantom import prepare_dataset

        prepare_dataset(dataset_dir, demo_dir, **dict(demo_kwargs or {}))
    columns = list(clinical_numeric) + list(clinical_categorical)
    records = load_cohort(dataset_dir, manifest, columns, modalities, class_names, require_label)
    path = manifest if os.path.isabs(manifest) else os.path.join(dataset_dir, manifest)
    clinical = ClinicalPreprocessor(clinical_numeric, clinical_categorical, clinical_ranges)
    if "clinical" in modalities:  # every row, used by this run or not: a typo anywhere is a typo to fix now
        for rec in records:
            clinical.parse(rec["clinical_raw"], row_of(rec, path) + ": ")
    if not require_label:
        validate_records(records, modalities, snp_features, clinical, path, max_image_gib)
        return {"training": [], "validation": [], "test": [], "all": records}
    out = assign_splits(records, val_fraction, test_fraction, seed, stratify=True, source=f"The manifest {path}")
    how = "a manifest 'split' column" if any("split" in r for r in records) else "val_fraction / test_fraction"
    used = list(check_splits) if check_splits is not None else list(out)
    for name in ("training", "validation"):
        if name in used and not out[name]:
            raise InputError(
                f"The {name} split of {path} is empty ({len(records)} subjects, split by {how}): training needs "
                "subjects in both training and validation (with drawn splits, at least 2 subjects per class)."
            )
    checked = {r["subject_id"] for name in used for r in out.get(name, [])}
    checked_records = [r for r in records if r["subject_id"] in checked]
    validate_records(checked_records, modalities, snp_features, clinical, path, max_image_gib)
    sizes = ", ".join(f"{len(out[k])} {k}" for k in ("training", "validation", "test"))
    logger.info(f"{path}: {len(records)} subjects, split by {how}: {sizes}; {len(checked)} checked")
    if not out["test"] and "test" not in used:
        logger.warning("no test split: evaluation will need one (see test_fraction or the manifest's split column)")
    out["all"] = records
    return out
