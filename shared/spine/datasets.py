# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The public spine CT datasets as users download them, read into image/label items with their release splits.

VerSe'19 / VerSe'20 (BIDS-like, as released)::

    <root>/[dataset-verse19training/ | dataset-verse20training/dataset-01training/ | 01_training/ ...]
        rawdata/sub-<id>/sub-<id>[_<entity>-<value>...]_ct.nii.gz
        derivatives/sub-<id>/sub-<id>[_<entity>-<value>...]_seg-vert_msk.nii.gz

    The name of the folder that holds ``rawdata/`` (or of one above it) tells the release split: ``...train...`` is
    training, ``...valid...`` validation, ``...test...`` test. Label ids: 1-24 C1..L5, 25 L6, 28 T13 (26 sacrum and
    27 coccyx are VerSe ids for structures the masks do not label).

TotalSegmentator (v1 / v2 dataset, one binary mask per structure)::

    <root>/meta.csv                                   (optional: ``image_id;...;split`` with train / val / test)
    <root>/s0000/ct.nii.gz
    <root>/s0000/segmentations/vertebrae_C1.nii.gz ... vertebrae_L5.nii.gz, vertebrae_S1.nii.gz

    The vertebra masks of a case are merged into one VerSe-numbered label map (S1 -> 26, the VerSe sacrum id),
    written once, atomically, next to the case (or into ``cache_dir``) under a name that carries a fingerprint of
    the source files: a changed mask or CT gives a new fingerprint and a rebuilt map; an unchanged one is reused.

Every item is ``{"image", "label", "subject_id", "case", "split"}``; ``split`` is ``"training"``, ``"validation"``,
``"test"`` or ``None`` (no release split). ``subject_id`` groups the scans of one patient for splitting.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from shared.atomic import atomic_write
from shared.errors import InputError, MissingInputError
from shared.inputs import check_folder

__all__ = [
    "VERSE_IDS",
    "verse_items",
    "totalsegmentator_items",
    "merge_totalsegmentator_vertebrae",
    "vertebra_label_map",
]

logger = logging.getLogger(__name__)

# VerSe label ids by vertebra name
VERSE_IDS: dict[str, int] = {
    **{f"C{i}": i for i in range(1, 8)},
    **{f"T{i}": 7 + i for i in range(1, 13)},
    **{f"L{i}": 19 + i for i in range(1, 7)},
    "S1": 26,
    "T13": 28,
}
SPLIT_WORDS = (("train", "training"), ("valid", "validation"), ("test", "test"))
VERSE_LAYOUT = (
    "expected VerSe as released: <dataset_dir>/[<split folder>/]rawdata/sub-*/*_ct.nii.gz with masks "
    "<dataset_dir>/[<split folder>/]derivatives/sub-*/*_seg-vert_msk.nii.gz"
)
TOTALSEG_LAYOUT = (
    "expected the TotalSegmentator dataset layout: <dataset_dir>/<case>/ct.nii.gz with "
    "<dataset_dir>/<case>/segmentations/vertebrae_<C1..L5, S1>.nii.gz (and optionally <dataset_dir>/meta.csv)"
)
_CT_SUFFIX, _MASK_SUFFIX = "_ct.nii.gz", "_seg-vert_msk.nii.gz"
_MERGE_VERSION = 1  # part of the cache fingerprint: bump when the merge rule changes


def _split_of(parts: tuple[str, ...]) -> str | None:
    """The release split named by the innermost folder name that names one (``19training``, ``01_training``,
    ``dataset-02validation``; the word must not follow a letter, so ``latest/`` names no split)."""
    for part in reversed(parts):
        for word, split in SPLIT_WORDS:
            if re.search(r"(?<![a-z])" + word, part.lower()):
                return split
    return None


def verse_items(dataset_dir: str | os.PathLike) -> list[dict]:
    """Image/label items of a VerSe'19 / VerSe'20 folder (one release split, a whole release, or both releases).

    Scans without a vertebra mask (the releases hold a few) are left out with a warning.

    Raises:
        FileNotFoundError / ValueError: no ``rawdata/`` folder, ``rawdata/`` without ``derivatives/`` beside it,
            or no scan with a mask; each names the path and the layout.
    """
    root = Path(dataset_dir).absolute()
    check_folder(root, "dataset_dir", VERSE_LAYOUT)
    raw_dirs = []
    for folder, subdirs, _ in os.walk(root):
        if "rawdata" in subdirs:
            raw_dirs.append(Path(folder) / "rawdata")
        subdirs[:] = sorted(d for d in subdirs if d not in ("rawdata", "derivatives") and not d.startswith("."))
    if not raw_dirs:
        raise MissingInputError(f"No rawdata/ folder found below {root}; {VERSE_LAYOUT}.")
    items, unlabelled = [], []
    for raw in sorted(raw_dirs):
        derivatives = raw.parent / "derivatives"
        if not derivatives.is_dir():
            raise MissingInputError(f"{raw} has no derivatives/ folder beside it (the vertebra masks); {VERSE_LAYOUT}.")
        split = _split_of(raw.parent.relative_to(root).parts)
        for ct in sorted(raw.glob("sub-*/**/*" + _CT_SUFFIX)):
            rel = ct.relative_to(raw)
            case = ct.name[: -len(_CT_SUFFIX)]
            mask = derivatives / rel.parent / (case + _MASK_SUFFIX)
            if not mask.is_file():
                unlabelled.append(str(ct))
                continue
            item = {"image": str(ct), "label": str(mask), "subject_id": rel.parts[0], "case": case, "split": split}
            items.append(item)
    if unlabelled:
        logger.warning(f"VerSe: {len(unlabelled)} scan(s) without a vertebra mask left out, e.g. {unlabelled[:3]}.")
    if not items:
        raise InputError(f"No VerSe scan with a vertebra mask found below {root}; {VERSE_LAYOUT}.")
    return items


def _read_totalseg_splits(root: Path) -> dict[str, str]:
    """``{case: split}`` from the dataset's ``meta.csv`` (semicolon-separated, maybe with a BOM); ``{}`` without it."""
    meta = root / "meta.csv"
    if not meta.is_file():
        return {}
    names = {"train": "training", "val": "validation", "test": "test"}
    with open(meta, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if rows and not {"image_id", "split"} <= set(rows[0]):
        raise InputError(f"{meta} has no image_id and split columns (found {sorted(rows[0])}); {TOTALSEG_LAYOUT}.")
    splits = {}
    for row in rows:
        split = (row.get("split") or "").strip().lower()
        if split not in names:
            raise InputError(f"{meta}: case {row['image_id']} has split {split!r}, expected train, val or test.")
        splits[row["image_id"].strip()] = names[split]
    return splits


def totalsegmentator_items(dataset_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """Image/label items of a TotalSegmentator dataset folder; the label is the merged vertebra map of
    :py:func:`vertebra_label_map` (built on first use, then reused). Splits come from ``meta.csv`` when present.

    Raises:
        FileNotFoundError / ValueError: no case folder, a case without ``segmentations/`` or vertebra masks, masks
            off the CT's grid, or an unwritable cache; each names the path.
    """
    root = Path(dataset_dir).absolute()
    check_folder(root, "dataset_dir", TOTALSEG_LAYOUT)
    cases = sorted(p for p in root.iterdir() if p.is_dir() and (p / "ct.nii.gz").is_file())
    if not cases:
        raise MissingInputError(f"No case folder with a ct.nii.gz found in {root}; {TOTALSEG_LAYOUT}.")
    splits = _read_totalseg_splits(root)
    items = []
    for i, case in enumerate(cases):
        label = vertebra_label_map(case, cache_dir)
        items.append(
            {
                "image": str(case / "ct.nii.gz"),
                "label": str(label),
                "subject_id": case.name,
                "case": case.name,
                "split": splits.get(case.name),
            }
        )
        if (i + 1) % 100 == 0:
            logger.info(f"TotalSegmentator: {i + 1}/{len(cases)} vertebra label maps ready.")
    return items


def _vertebra_masks(case_dir: Path) -> list[tuple[int, Path]]:
    seg_dir = case_dir / "segmentations"
    if not seg_dir.is_dir():
        raise MissingInputError(f"{case_dir} has no segmentations/ folder; {TOTALSEG_LAYOUT}.")
    masks = []
    for path in sorted(seg_dir.glob("vertebrae_*.nii.gz")):
        name = path.name[len("vertebrae_") : -len(".nii.gz")]
        if name not in VERSE_IDS:
            raise InputError(f"{path}: unknown vertebra {name!r}; expected one of {sorted(VERSE_IDS)}.")
        masks.append((VERSE_IDS[name], path))
    if not masks:
        raise MissingInputError(f"{seg_dir} holds no vertebrae_*.nii.gz masks; {TOTALSEG_LAYOUT}.")
    return sorted(masks)


def merge_totalsegmentator_vertebrae(case_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Merge a case's binary ``segmentations/vertebrae_*.nii.gz`` masks into one VerSe-numbered map.

    Returns:
        ``(label, affine)``: ``label`` uint8 ``(X, Y, Z)`` on the CT's grid (where masks overlap, the higher id,
        i.e. the more caudal vertebra, wins); ``affine`` the CT's.
    """
    import nibabel as nib

    case_dir = Path(case_dir)
    ct = nib.load(str(case_dir / "ct.nii.gz"))
    shape, affine = tuple(ct.shape[:3]), ct.affine
    label = np.zeros(shape, np.uint8)
    for verse_id, path in _vertebra_masks(case_dir):
        mask = nib.load(str(path))
        if tuple(mask.shape[:3]) != shape or not np.allclose(mask.affine, affine, atol=1e-3):
            raise InputError(
                f"{path} is not on the grid of {case_dir / 'ct.nii.gz'}: shape {tuple(mask.shape)} vs {shape}, "
                f"affine\n{np.round(mask.affine, 4)}\nvs\n{np.round(affine, 4)}"
            )
        label[np.asanyarray(mask.dataobj).reshape(shape) > 0] = verse_id
    return label, affine


def _fingerprint(case_dir: Path) -> str:
    sources = [case_dir / "ct.nii.gz"] + [p for _, p in _vertebra_masks(case_dir)]
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in sources]
    return hashlib.sha1(json.dumps([_MERGE_VERSION, stats]).encode()).hexdigest()[:16]


def vertebra_label_map(case_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the case's merged VerSe-numbered vertebra map, building it when no map of the current sources exists.

    The map is ``<case_dir>/vertebrae_verse.<fingerprint>.nii.gz`` (or, with ``cache_dir``,
    ``<cache_dir>/<case>_<path hash>_vertebrae_verse.<fingerprint>.nii.gz``), written to a temporary file and renamed
    into place, so a reader never sees half a file and concurrent writers (e.g. DDP ranks) are harmless. Maps of
    older sources are removed.
    """
    import nibabel as nib

    case_dir = Path(case_dir).absolute()
    folder = case_dir if cache_dir is None else Path(cache_dir).absolute()
    # in a shared cache folder, the case's path keeps cases of two datasets with the same case name apart
    where = hashlib.sha1(str(case_dir).encode()).hexdigest()[:8]
    prefix = "vertebrae_verse." if cache_dir is None else f"{case_dir.name}_{where}_vertebrae_verse."
    target = folder / f"{prefix}{_fingerprint(case_dir)}.nii.gz"
    if target.is_file():
        return target
    label, affine = merge_totalsegmentator_vertebrae(case_dir)
    image = nib.Nifti1Image(label, affine)
    image.set_qform(affine, code=1)
    try:
        with atomic_write(target, "wb") as f:
            f.write(gzip.compress(image.to_bytes(), compresslevel=6))
    except OSError as e:
        raise InputError(
            f"Cannot write the merged vertebra map of {case_dir} into {folder} ({e}): set label_cache_dir to a "
            "writable folder."
        ) from e
    stale = re.compile(re.escape(prefix) + r"[0-9a-f]{16}\.nii\.gz")
    for old in folder.iterdir():
        if old != target and stale.fullmatch(old.name):
            old.unlink(missing_ok=True)
    return target
