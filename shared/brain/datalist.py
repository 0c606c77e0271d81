# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Volume-level classification datalists (CSV or JSON: image, label, optional subject_id and split), the full check of
every volume they list, subject-level class-stratified cross-validation splits (training / validation / test =
80 / 10 / 10 with five folds) and the choice of the split an evaluation scores.

Every problem a user can fix raises :class:`~shared.errors.InputError` naming the file (and its line or
entry), what is wrong and what is expected, before any compute.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.errors import InputError, MissingInputError
from shared.inputs import MAX_IMAGE_GIB, check_image_size, check_volume, find_images, read_json
from shared.splits import cross_validation_fold, given_splits, select_split, split_name, subject_classes

__all__ = [
    "load_classification_datalist",
    "inference_datalist",
    "check_image",
    "cross_validation_split",
    "check_cross_validation",
    "evaluation_items",
]

logger = logging.getLogger(__name__)

COLUMNS = "image, label and the optional subject_id and split"
_NIFTI = (".nii", ".nii.gz")
# (path, size, mtime_ns, num_slices, slice_stride) of volumes that passed check_image in this process: cross-validation
# builds one workflow per fold and stage, each reading the same datalist
_CHECKED: set[tuple] = set()


# ----------------------------------------------------------------------------------------------------------------
# reading datalists


def _read_csv(path: str, required: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """``[("line N", row), ...]`` of a CSV file with a header; ragged rows and unclosed quotes name their line."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, restkey="\0extra", strict=True)
            header = [(h or "").strip() for h in (reader.fieldnames or [])]
            if not any(header):
                raise InputError(f"The datalist {path} is empty: expected a header line with the columns {COLUMNS}.")
            reader.fieldnames = header
            twice = sorted(h for h, n in Counter(header).items() if n > 1)
            if twice:
                raise InputError(f"The datalist {path} names the column(s) {twice} twice in its header.")
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(
                    f"The datalist {path} has no {' / '.join(repr(c) for c in missing)} column (header: "
                    f"{','.join(header)}): expected the columns {COLUMNS}."
                )
            for row in reader:
                extra, short = row.pop("\0extra", []), sum(v is None for v in row.values())
                if extra or short:
                    n = len(header) + len(extra) - short
                    raise InputError(
                        f"The datalist {path}, line {reader.line_num}, has {n} field{'s' * (n != 1)} but the header "
                        f"has {len(header)} ({','.join(header)}): quote values that hold a comma."
                    )
                rows.append((f"line {reader.line_num}", {k: v.strip() for k, v in row.items()}))
    except csv.Error as e:
        raise InputError(f"The datalist {path} is not valid CSV: {e} (line {reader.line_num}).") from e
    except UnicodeDecodeError as e:
        raise InputError(f"The datalist {path} is not a text (UTF-8) file: {e.reason} at byte {e.start}.") from e
    return rows


def _read_json_records(path: str, required: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    obj = read_json(path)
    if isinstance(obj, Mapping):
        for k in ("data", "training", "items"):
            if isinstance(obj.get(k), list):
                obj = obj[k]
                break
    if not isinstance(obj, list):
        raise InputError(
            f"The datalist {path} holds a JSON {type(obj).__name__}: expected a list of records with the fields "
            f"{COLUMNS} (or such a list under 'data' / 'training')."
        )
    out = []
    for i, r in enumerate(obj):
        where = f"entry {i + 1}"
        if not isinstance(r, Mapping):
            raise InputError(f"The datalist {path}, {where}, is a {type(r).__name__}: expected a record {{{COLUMNS}}}.")
        missing = [c for c in required if c not in r]
        if missing:
            raise InputError(f"The datalist {path}, {where}, has no {' / '.join(missing)} field: expected {COLUMNS}.")
        out.append((where, dict(r)))
    return out


def _parse_label(value: Any, class_names: Sequence[str] | None, where: str) -> int:
    names = list(class_names or [])
    known = f"known classes: {names} (indices 0..{len(names) - 1})" if names else "labels are class indices"
    if isinstance(value, str):
        text = value.strip()
        value = float(text) if text.lstrip("+-").replace(".", "", 1).isdigit() else text
    if isinstance(value, bool) or value is None or value == "":
        raise InputError(f"{where}: missing or invalid label {value!r}; {known}.")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not float(value).is_integer():
            raise InputError(f"{where}: label {value!r} is not an integer class index; {known}.")
        idx = int(value)
        if idx < 0 or (names and idx >= len(names)):
            raise InputError(f"{where}: label {idx} is outside the configured classes; {known}.")
        return idx
    if not isinstance(value, str):
        raise InputError(f"{where}: label {value!r} is not a class name or index; {known}.")
    if not names:
        raise InputError(f"{where}: label {value!r} is a name but no class table ('class_names') was given.")
    if value not in names:
        raise InputError(f"{where}: unknown label {value!r}; {known}. Set --class_names to your classes.")
    return names.index(value)


def _check_class_names(class_names: Sequence[str] | None) -> None:
    if class_names is None:
        return
    names = list(class_names) if isinstance(class_names, Sequence) and not isinstance(class_names, str) else None
    if not names or len(names) < 2 or not all(isinstance(c, str) and c.strip() for c in names):
        raise InputError(
            f"config id 'class_names' is {class_names!r}: expected a list of at least two class names, "
            "e.g. --class_names \"['HC','AD']\"."
        )
    if len(set(names)) != len(names):
        raise InputError(f"config id 'class_names' is {names}: a class name is given twice.")


def load_classification_datalist(
    path: str,
    class_names: Sequence[str] | None = None,
    base_dir: str | None = None,
    require_labels: bool = True,
    check_files: bool = True,
    num_slices: int | None = None,
    slice_stride: int = 1,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> list[dict[str, Any]]:
    """
    Read a datalist into ``[{"image": abs path, "label": int, "subject_id": str[, "split": str]}, ...]``.

    Args:
        path: ``.csv`` (a header ``image,label[,subject_id][,split]``, one line per scan) or ``.json`` (a list of
            records, or one under ``data`` / ``training``).
        class_names: the class table; labels may then be names or indices; without it labels must be indices.
        base_dir: folder relative image paths start from (default: the datalist's folder).
        require_labels: labels are required (training, evaluation); inference lists may omit them.
        check_files: check every image in full (:func:`check_image`) with ``num_slices`` / ``slice_stride``.
        num_slices, slice_stride: the slicing the volumes must allow (see :func:`check_image`).
        max_image_gib: the most memory one volume may take once decoded (see :func:`check_image`).

    ``subject_id`` defaults to the image file name, so scans without one are their own subject. ``split``
    (``train`` / ``validation`` / ``test``) fixes each scan's subset instead of the cross-validation folds; either
    every scan gives one or none does.
    """
    path = os.fspath(path)
    _check_class_names(class_names)
    if not os.path.isfile(path):
        raise MissingInputError(f"The datalist {path} does not exist: expected a CSV or JSON file with {COLUMNS}.")
    required = ("image", "label") if require_labels else ("image",)
    lower = path.lower()
    if lower.endswith(".csv"):
        records = _read_csv(path, required)
    elif lower.endswith(".json"):
        records = _read_json_records(path, required)
    else:
        raise InputError(f"The datalist {path} is neither .csv nor .json: expected a CSV or JSON file with {COLUMNS}.")
    if not records:
        raise InputError(f"The datalist {path} lists no scans: expected one line (record) per scan with {COLUMNS}.")
    base = base_dir or os.path.dirname(os.path.abspath(path))
    out, seen = [], {}
    for where, r in records:
        where = f"The datalist {path}, {where}"
        image = r.get("image")
        if not image or not isinstance(image, str):
            raise InputError(f"{where}: no 'image' path.")
        full = os.path.normpath(image if os.path.isabs(image) else os.path.join(base, image))
        if full in seen:
            raise InputError(f"{where}: image {full} is already listed ({seen[full]}); list each scan once.")
        seen[full] = where.rsplit(", ", 1)[-1]
        if check_files and not os.path.exists(full):
            raise MissingInputError(f"{where}: image {full} does not exist.")
        item: dict[str, Any] = {"image": full}
        label = r.get("label")
        if label not in (None, ""):
            item["label"] = _parse_label(label, class_names, where)
        elif require_labels:
            raise InputError(f"{where}: no label; expected a class name from 'class_names' or a class index.")
        sid = r.get("subject_id")
        item["subject_id"] = str(sid).strip() if sid not in (None, "") else os.path.basename(image)
        if str(r.get("split") or "").strip():
            item["split"] = split_name(r["split"], where)
        out.append(item)
    given = [i for i in out if "split" in i]
    if given and len(given) != len(out):
        first = next(where for (where, _), i in zip(records, out) if "split" not in i)
        raise InputError(
            f"The datalist {path}, {first}: no split, while other scans give one: give every scan its split "
            "(train, validation or test), or none to let the bundle draw cross-validation folds."
        )
    if check_files:
        for (where, _), item in zip(records, out):
            where = f"datalist {os.path.basename(path)}, {where}"
            check_image(item["image"], where, num_slices, slice_stride, max_image_gib)
    return out


def inference_datalist(
    input_path: str,
    class_names: Sequence[str] | None = None,
    num_slices: int | None = None,
    slice_stride: int = 1,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> list[dict[str, Any]]:
    """
    The volumes to classify, each checked in full (:func:`check_image`): ``input_path`` is a CSV / JSON datalist
    (labels optional), an image file, a DICOM series folder or a folder of images (see
    :func:`shared.inputs.find_images`).
    """
    if str(input_path).lower().endswith((".csv", ".json")):
        return load_classification_datalist(
            input_path,
            class_names,
            require_labels=False,
            num_slices=num_slices,
            slice_stride=slice_stride,
            max_image_gib=max_image_gib,
        )
    items = [{"image": image} for image in find_images(input_path)]
    for item in items:
        check_image(item["image"], "", num_slices, slice_stride, max_image_gib)
    return items


# ----------------------------------------------------------------------------------------------------------------
# checking volumes


def _axial_axis(affine: np.ndarray, ndim: int) -> int:
    """The stored axis that runs inferior-superior (the slice axis after RAS reorientation)."""
    import nibabel as nib

    try:
        ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=float)[: ndim + 1, : ndim + 1])
        axes = [i for i in range(len(ornt)) if ornt[i, 0] == 2]
        return axes[0] if axes else 2
    except Exception:  # a degenerate affine: MONAI's Orientation leaves the axes as stored
        return 2


def _read_volume(path: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode the whole file: voxels as stored and the 4 x 4 affine."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise InputError(f"The image {source} is empty (0 bytes): expected a 3D T1 volume (NIfTI).")
    if path.lower().endswith(_NIFTI):
        import nibabel as nib

        try:
            img = nib.load(path)
            if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
                raise ValueError(f"it holds a {type(img).__name__}")
        except Exception as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise InputError(
                f"The image {source} is not a readable NIfTI file ({reason}): expected a 3D T1 volume "
                "(.nii / .nii.gz)."
            ) from e
        try:
            return np.asanyarray(img.dataobj), np.asarray(img.affine)
        except Exception as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise InputError(f"The image {source} is truncated or corrupt ({reason}): its voxels cannot be read") from e
    from monai.transforms import LoadImage

    try:
        img = LoadImage(image_only=True)(path)
    except Exception as e:
        reason = (" ".join(str(e).split()) or type(e).__name__)[:300]
        raise InputError(
            f"The image {source} cannot be read ({reason}): expected a 3D T1 volume (NIfTI, or any format / DICOM "
            "series folder MONAI's LoadImage reads)."
        ) from e
    return np.asarray(img), np.asarray(img.affine)


def check_image(
    path: str,
    where: str = "",
    num_slices: int | None = None,
    slice_stride: int = 1,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> None:
    """
    Check one T1 volume in full before any compute: the file is not empty, is the format its name says (NIfTI for
    ``.nii`` / ``.nii.gz``, else anything MONAI's ``LoadImage`` reads) and decodes completely (not truncated); it is
    one 3D single-channel volume, not a slice or a 2D image; it holds no NaN / Inf (how many, and where the first
    is) and is not constant; and its inferior-superior axis has enough slices for ``num_slices`` central slices every
    ``slice_stride``; before any of that, its header claims no more than ``max_image_gib`` GiB
    (:func:`~shared.inputs.check_image_size`). Raises :class:`InputError` naming the file (and ``where``, e.g.
    the datalist line).
    A volume that passed is not decoded again in this process while the file is unchanged.
    """
    path = os.fspath(path)
    source = f"{path} ({where})" if where else path
    if not os.path.exists(path):
        raise MissingInputError(f"The image {source} does not exist.")
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, num_slices, slice_stride, max_image_gib)
    if key in _CHECKED:
        return
    check_image_size(path, max_image_gib, name=source)
    array, affine = _read_volume(path, source)
    check_volume(array, source, spatial_dims=3, channels=1)
    spatial = array.shape[:3]
    if min(spatial) < 2:
        raise InputError(f"The image {source} has shape {tuple(array.shape)}: a single slice, not a 3D volume.")
    if num_slices:
        from shared.brain.axial_slices import select_slice_indices

        depth = spatial[_axial_axis(affine, 3)]
        try:
            select_slice_indices(depth, int(num_slices), int(slice_stride), f"The image {source}")
        except ValueError as e:
            raise InputError(str(e)) from e
    _CHECKED.add(key)


# ----------------------------------------------------------------------------------------------------------------
# splits


def _check_labels(items: Sequence[Mapping[str, Any]]) -> None:
    for it in items:
        if "label" not in it:
            raise InputError(f"Splitting needs a label for every scan; {it.get('image')} has none.")


def _fixed_split(
    items: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None, source: str
) -> dict[str, list[dict[str, Any]]]:
    out = given_splits(items, f"The datalist {source}")
    for name in ("training", "validation"):
        if not out[name]:
            raise InputError(
                f"The datalist {source} gives no {name} scans in its 'split' column: training needs training scans "
                "to fit and validation scans to choose model.pt; mark them, or drop the column to let the bundle "
                "draw cross-validation folds."
            )
    names = list(class_names or [])
    for name in ("training", "validation"):
        present = {int(i["label"]) for i in out[name]}
        absent = [names[c] if c < len(names) else c for c in range(len(names)) if c not in present]
        if absent:
            logger.warning(f"the {name} split of {source} has no scan of class(es) {absent}")
    logger.info(
        f"splits fixed by {source}: "
        + ", ".join(f"{k} {len(v)} scans / {len({i['subject_id'] for i in v})} subjects" for k, v in out.items())
    )
    return out


def cross_validation_split(
    items: Sequence[Mapping[str, Any]],
    num_folds: int = 5,
    fold: int = 0,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    source: str = "the datalist",
) -> dict[str, list[dict[str, Any]]]:
    """
    The splits of cross-validation round ``fold``: :func:`shared.splits.cross_validation_fold`, subject-level and
    stratified by class (80 / 10 / 10 with five folds), after checking that every class has enough subjects. A
    datalist whose scans give their ``split`` keeps those subsets instead (``num_folds``, ``fold`` and ``seed`` then
    do not apply).

    Returns ``{"training": [...], "validation": [...], "test": [...]}``. Raises :class:`InputError` when a class has
    fewer than ``2 * num_folds`` subjects (each fold's validation and test halves then hold every class), or for a
    ``fold`` outside ``0..num_folds - 1``.
    """
    _check_labels(items)
    if any("split" in it for it in items):
        return _fixed_split(items, class_names, source)
    if isinstance(num_folds, int) and num_folds >= 2:
        per_class = Counter(subject_classes(items).values())
        names = list(class_names or [])
        counts = {(names[c] if c < len(names) else c): per_class.get(c, 0) for c in range(max(len(names), 1))}
        counts.update({(names[c] if c < len(names) else c): n for c, n in per_class.items()})
        too_few = {c: n for c, n in counts.items() if n < 2 * num_folds}
        if too_few:
            raise InputError(
                f"{source} has too few subjects for {num_folds}-fold cross-validation with a validation and a test "
                f"part in every fold: {too_few} (subjects per class; at least {2 * num_folds} needed). Lower "
                "--num_folds, add subjects, or give fixed splits in a 'split' column."
            )
    return cross_validation_fold(items, num_folds, fold, seed, stratify=True)


def check_cross_validation(
    items: Sequence[Mapping[str, Any]],
    num_folds: int,
    class_names: Sequence[str] | None = None,
    source: str = "the datalist",
) -> None:
    """Refuse, before any fold runs, a datalist that cross-validation cannot use: fixed splits or too few subjects."""
    if any("split" in it for it in items):
        raise InputError(
            f"The datalist {source} fixes the splits (column 'split'), so there are no folds to cross-validate: "
            "drop the column to let the bundle draw subject-level folds, or run training and evaluating instead."
        )
    cross_validation_split(items, num_folds, 0, 0, class_names, source)


def evaluation_items(
    split: Mapping[str, Sequence[Mapping[str, Any]]],
    eval_split: str = "test",
    source: str = "the datalist",
    model_split_file: str | None = None,
) -> list[dict[str, Any]]:
    """
    The scans an evaluation scores: the ``test`` split by default. An empty split stops the evaluation, saying how
    to give one; ``eval_split="validation"`` must be asked for (that split chose ``model.pt``, so its scores are
    optimistic). With ``model_split_file`` (written beside ``model.pt`` by
    :class:`~shared.brain.split_record.SplitRecord`), scoring a subject the model was fitted on (or, for the test
    split, selected on) is refused: it happens when the evaluation's fold, seed or datalist differ from training's.
    """
    how = (
        "Mark held-out subjects split=test in its 'split' column, or drop the column to let the bundle draw "
        "cross-validation folds (each holds a test part)."
    )
    items = select_split(split, eval_split, f"The datalist {source}", how)
    if model_split_file and os.path.isfile(model_split_file):
        record = read_json(model_split_file, what="split record")
        subjects = record.get("subjects", {})
        subjects.setdefault("training", subjects.get("train", []))  # records written before the splits' renaming
        used = ["training"] + (["validation"] if eval_split == "test" else [])
        fitted = {str(s) for name in used for s in subjects.get(name, [])}
        overlap = sorted({str(i["subject_id"]) for i in items} & fitted)
        if overlap:
            was = ", ".join(f"{k} {record.get(k)!r}" for k in ("fold", "seed", "num_folds") if k in record)
            raise InputError(
                f"{len(overlap)} of the {eval_split} subjects (e.g. {overlap[0]!r}) were used to train or select "
                f"model.pt ({model_split_file}: {was}, datalist {record.get('datalist')}): its scores would be "
                "optimistic. Evaluate with the fold, seed and datalist the model was trained with."
            )
    elif model_split_file:
        logger.warning(
            f"{model_split_file} not found: cannot check that the {eval_split} subjects were not used to train "
            "model.pt"
        )
    return items
