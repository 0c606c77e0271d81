# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Datalists for OCT volume classification (glaucoma vs non-glaucoma), and the checks every volume passes first.

Layouts:

- class folders: ``dataset_dir/non_glaucoma/*`` and ``dataset_dir/glaucoma/*`` holding ``.npy`` or NIfTI volumes;
  the patient id is the file stem up to the first ``patient_sep`` (``P0003_OD.npy`` -> ``P0003``);
- a datalist: CSV with columns ``image,label[,patient_id][,split]`` or JSON (a list, or ``{"data": [...]}``) of
  records with those keys; relative image paths are resolved against the datalist's folder. Labels are class
  indices or class names. Without ``patient_id`` the patient is found from the file name as for class folders.
  ``split`` (``training`` / ``validation`` / ``test``) fixes the splits; without it they are drawn.

Items carry the patient as ``subject_id``. Drawn splits are by patient (no patient in two splits), seeded and
stratified by class (:func:`shared.splits.split_subjects`).
Every volume a workflow uses is decoded in full and checked (:func:`read_oct_volume`) before any compute; each
problem is one :class:`~shared.errors.InputError` naming the file (and datalist line) and what is expected.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence

import numpy as np

from shared.errors import InputError, MissingInputError
from shared.inputs import (
    MAX_IMAGE_GIB,
    check_folder,
    check_image_size,
    check_volume,
    first_line,
    gzip_broken,
    read_json,
)
from shared.splits import SPLITS, assign_splits, split_name

__all__ = [
    "VOLUME_EXTENSIONS",
    "read_oct_volume",
    "find_oct_items",
    "datalist_path",
    "undersample_majority",
    "oct_datalists",
    "oct_inference_list",
]

logger = logging.getLogger(__name__)

VOLUME_EXTENSIONS = (".npy", ".nii", ".nii.gz")
DEFAULT_CLASSES = ("non_glaucoma", "glaucoma")
BALANCE = ("undersample", "undersample_all", "weighted", "off")
DEMO_SEED = 0  # the demo data is one fixed synthetic set; the config's seed only draws splits and initial weights


def _is_volume(name: str) -> bool:
    return name.lower().endswith(VOLUME_EXTENSIONS) and not name.startswith(".")


def _stem(name: str) -> str:
    for ext in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _patient_id(image: str, patient_sep: str | None) -> str:
    stem = _stem(os.path.basename(image))
    return stem.split(patient_sep)[0] if patient_sep else stem


# --- one volume ------------------------------------------------------------------------------------------------------


def _read_npy(path: str, what: str, size: int) -> np.ndarray:
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
        except ValueError:
            raise InputError(
                f"The {what} {path} is not a NumPy .npy file (it does not start with the .npy header): save it with "
                "numpy.save, or name it after its real format (.nii, .nii.gz)."
            ) from None
        try:
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
        except ValueError as e:
            raise InputError(f"The {what} {path} has a corrupt .npy header ({first_line(e)}).") from e
        offset = f.tell()
    if dtype.hasobject:
        raise InputError(f"The {what} {path} holds Python objects, not voxels: expected a numeric array.")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if size < expected:
        raise InputError(
            f"The {what} {path} is truncated: {size} bytes, but its header declares {shape} {dtype} ({expected} "
            "bytes). Copy or export it again."
        )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # anything else numpy refuses: say which file
        raise InputError(f"The {what} {path} cannot be read as a .npy array ({first_line(e)}).") from e


def _read_nifti(path: str, what: str) -> np.ndarray:
    import nibabel as nib

    gz = path.lower().endswith(".gz")
    if gz:
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                raise InputError(
                    f"The {what} {path} is not gzip-compressed although its name ends in .gz: expected a compressed "
                    "NIfTI image (.nii.gz), or an uncompressed one named .nii."
                )
    try:
        img = nib.load(path)
        return np.asanyarray(img.dataobj)
    except Exception as e:
        if gz and gzip_broken(path):
            reason = "its gzip stream ends early or is corrupt"
        elif "img" in locals():
            reason = f"its header reads but its voxels do not ({first_line(e)})"
        else:
            raise InputError(f"The {what} {path} is not a NIfTI image ({first_line(e)}).") from e
        raise InputError(f"The {what} {path} is truncated or corrupt: {reason}. Copy or export it again.") from e


def read_oct_volume(path: str, what: str = "OCT volume", max_image_gib: float = MAX_IMAGE_GIB) -> np.ndarray:
    """Decode every voxel of a ``.npy`` or NIfTI OCT volume and check it.

    Tells apart a missing file, a zero-byte file, a file that is not the format its name says, a truncated file, a
    volume of the wrong rank or channel count (a stored singleton axis, ``(1, S, A, L)`` or ``(S, A, L, 1)``, is
    accepted), non-finite voxels (how many, and the first index) and a constant volume. Before decoding, the header
    must claim no more than ``max_image_gib`` GiB (:func:`~shared.inputs.check_image_size`).

    Returns:
        the voxels as stored, ``(S, A, L)``.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise MissingInputError(f"The {what} {path} does not exist.")
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"The {what} {path} is empty (0 bytes): was its copy or export interrupted?")
    check_image_size(path, max_image_gib, what)
    name = os.path.basename(path).lower()
    if name.endswith(".npy"):
        array = _read_npy(path, what, size)
    elif name.endswith((".nii", ".nii.gz")):
        array = _read_nifti(path, what)
    else:
        raise InputError(f"The {what} {path} is not a volume file: expected {', '.join(VOLUME_EXTENSIONS)}.")
    if array.ndim == 4 and array.shape[0] == 1:  # stored (1, S, A, L)
        array = array[0]
    check_volume(array, path, spatial_dims=3, channels=1, what=what)
    return array.reshape(array.shape[:3])


# --- datalists -------------------------------------------------------------------------------------------------------


def _parse_label(value, classes: Sequence[str], where: str) -> int:
    expected = f"expected a class index {list(range(len(classes)))} or name {list(classes)}"
    if isinstance(value, str):
        text = value.strip()
        if text in classes:
            return list(classes).index(text)
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"{where}: label {text!r} is not one of the classes: {expected}.") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{where}: label {value!r} is not a class: {expected}.")
    if float(value) != int(value):
        raise InputError(f"{where}: label {value!r} is not an integer: {expected}.")
    if int(value) not in range(len(classes)):
        raise InputError(f"{where}: label {int(value)} is outside the configured classes: {expected}.")
    return int(value)


def _csv_rows(path: str) -> list[tuple[str, dict]]:
    """``(where, record)`` per data line of a CSV datalist, with clear errors for its structure."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise InputError(f"The datalist {path} is empty: expected a header line image,label[,patient_id].")
            header = [(h or "").strip() for h in reader.fieldnames]
            reader.fieldnames = header
            missing = [c for c in ("image", "label") if c not in header]
            if missing:
                raise InputError(
                    f"The datalist {path} lacks column(s) {missing} (its header, line 1, is {header}): expected "
                    "image,label[,patient_id][,split]."
                )
            rows = []
            for row in reader:
                where = f"The datalist {path}, line {reader.line_num}"
                if None in row or any(v is None for v in row.values()):
                    n = len(header) + len(row[None]) if None in row else sum(v is not None for v in row.values())
                    raise InputError(f"{where} has {n} fields, the header has {len(header)}.")
                rows.append((where, {k: v.strip() for k, v in row.items()}))
    except UnicodeDecodeError as e:
        raise InputError(f"The datalist {path} is not a UTF-8 text file: {e.reason} at byte {e.start}.") from e
    except csv.Error as e:
        raise InputError(f"The datalist {path} is not valid CSV: {e}.") from e
    return rows


def _json_rows(path: str) -> list[tuple[str, dict]]:
    content = read_json(path)
    rows = content.get("data") if isinstance(content, dict) else content
    if not isinstance(rows, list):
        raise InputError(f'The datalist {path} must hold a list of records, or {{"data": [...]}}.')
    out = []
    for i, row in enumerate(rows):
        where = f"The datalist {path}, record {i}"
        if not isinstance(row, dict):
            raise InputError(f"{where} is {row!r}: expected an object with 'image' and 'label'.")
        out.append((where, row))
    return out


def datalist_path(dataset_dir: str, datalist: str) -> str:
    """A datalist file as given, or relative to ``dataset_dir``."""
    return datalist if os.path.isabs(datalist) else os.path.join(dataset_dir, datalist)


def _read_datalist(path: str, classes: Sequence[str], patient_sep: str | None) -> list[dict]:
    if not os.path.isfile(path):
        raise MissingInputError(f"The datalist {path} does not exist (config id datalist_file).")
    if path.lower().endswith(".csv"):
        rows = _csv_rows(path)
    elif path.lower().endswith(".json"):
        rows = _json_rows(path)
    else:
        raise InputError(f"The datalist {path} must be a .csv or .json file (config id datalist_file).")
    if not rows:
        raise InputError(f"The datalist {path} has no records.")
    base = os.path.dirname(os.path.abspath(path))
    items, seen = [], {}
    for where, row in rows:
        for key in ("image", "label"):
            if row.get(key) in (None, ""):
                raise InputError(f"{where}: '{key}' is missing or empty.")
        image = str(row["image"])
        image = os.path.normpath(image if os.path.isabs(image) else os.path.join(base, image))
        if image in seen:
            raise InputError(f"{where}: image {image} is listed twice ({seen[image]} lists it too).")
        seen[image] = where.rsplit(", ", 1)[-1]
        if not os.path.isfile(image):
            raise MissingInputError(f"{where}: image {image} does not exist.")
        pid = row.get("patient_id", row.get("subject_id"))
        item = {"image": image, "label": _parse_label(row["label"], classes, where)}
        item["subject_id"] = str(pid) if pid not in (None, "") else _patient_id(image, patient_sep)
        if row.get("split") not in (None, ""):
            item["split"] = split_name(row["split"], where)
        item["where"] = where
        items.append(item)
    with_split = [i for i in items if "split" in i]
    if with_split and len(with_split) < len(items):
        first = next(i for i in items if "split" not in i)
        raise InputError(f"{first['where']} has no split while others have one: give every record a split, or none.")
    return items


def _read_class_folders(dataset_dir: str, classes: Sequence[str], patient_sep: str | None) -> list[dict]:
    layout = f"class folders {', '.join(c + '/' for c in classes)} in {dataset_dir}, or a CSV/JSON datalist_file"
    check_folder(dataset_dir, "dataset_dir", f"expected {layout}")
    if not os.listdir(dataset_dir):
        raise InputError(f"dataset_dir {dataset_dir} is empty: expected {layout}.")
    others = sorted(
        d
        for d in os.listdir(dataset_dir)
        if d not in classes and os.path.isdir(os.path.join(dataset_dir, d)) and not d.startswith(".")
        if any(_is_volume(f) for f in os.listdir(os.path.join(dataset_dir, d)))
    )
    if others:
        raise InputError(
            f"dataset_dir {dataset_dir} holds volumes in folder(s) {others}, which are not configured classes "
            f"{list(classes)}: move them out, or set class_names."
        )
    items = []
    for label, name in enumerate(classes):
        folder = os.path.join(dataset_dir, name)
        if not os.path.isdir(folder):
            raise MissingInputError(f"The class folder {folder} does not exist: expected {layout}.")
        names = sorted(f for f in os.listdir(folder) if not f.startswith("."))
        files = [f for f in names if _is_volume(f)]
        if not files:
            raise InputError(f"The class folder {folder} holds no volumes ({', '.join(VOLUME_EXTENSIONS)}).")
        if len(files) < len(names):
            skipped = [f for f in names if f not in files]
            logger.warning(f"{folder}: {len(skipped)} entries that are not volumes are ignored, e.g. {skipped[:3]}")
        for f in files:
            path = os.path.join(folder, f)
            items.append({"image": path, "label": label, "subject_id": _patient_id(f, patient_sep), "where": path})
    return items


def find_oct_items(
    dataset_dir: str,
    datalist: str | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    patient_sep: str | None = "_",
    check: bool = True,
) -> list[dict]:
    """Records ``{"image", "label", "subject_id"[, "split"]}`` (``subject_id``: the patient) from a datalist file
    or from class folders in ``dataset_dir``; with ``check``, every volume is decoded and checked
    (:func:`read_oct_volume`)."""
    items = _find(dataset_dir, datalist, classes, patient_sep)
    if check:
        for item in items:
            _check_item(item)
    return [_public(i) for i in items]


def _find(dataset_dir: str, datalist: str | None, classes: Sequence[str], patient_sep: str | None) -> list[dict]:
    """Records with a ``where`` (datalist line or file) for messages."""
    if datalist:
        return _read_datalist(datalist_path(dataset_dir, datalist), classes, patient_sep)
    return _read_class_folders(dataset_dir, classes, patient_sep)


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("where", "split")}


def _check_item(item: dict, max_image_gib: float = MAX_IMAGE_GIB) -> None:
    try:
        read_oct_volume(item["image"], max_image_gib=max_image_gib)
    except InputError as e:
        if item["where"] != item["image"]:  # a datalist record: say which line too
            raise InputError(f"{e} ({item['where'].removeprefix('The ')})") from e
        raise


def undersample_majority(items: Sequence[dict], seed: int = 0) -> list[dict]:
    """Random undersampling of every class to the size of the smallest (seeded)."""
    by_label: dict[int, list[dict]] = {}
    for item in items:
        by_label.setdefault(int(item["label"]), []).append(item)
    n = min(len(v) for v in by_label.values())
    rng = np.random.default_rng(seed)
    out = []
    for _, recs in sorted(by_label.items()):
        keep = sorted(rng.choice(len(recs), size=n, replace=False))
        out.extend(recs[i] for i in keep)
    return out


def _check_classes(items: Sequence[dict], name: str, source: str, classes: Sequence[str]) -> None:
    present = sorted({int(i["label"]) for i in items})
    if len(present) < len(classes):
        raise InputError(
            f"The {name} of {source} holds only class(es) {[classes[p] for p in present]}: a classifier needs every "
            f"class {list(classes)} in its training data."
        )


def _prepare_demo(dataset_dir: str, num_patients: int, shape: Sequence[int], strict: bool) -> None:
    """Write the synthetic demo set when its folder is absent or empty (under torch.distributed, rank 0 writes while
    the others wait). With ``strict``, a demo written earlier with other settings is an error, not silently reused."""
    import torch.distributed as dist

    from shared.oct.phantom import phantom_settings, write_oct_phantom_dataset

    if not os.path.isdir(dataset_dir) or not os.listdir(dataset_dir):
        distributed = dist.is_available() and dist.is_initialized()
        if not distributed or dist.get_rank() == 0:
            logger.info(f"writing the synthetic OCT demo set ({num_patients} patients, {list(shape)}) to {dataset_dir}")
            write_oct_phantom_dataset(dataset_dir, num_patients=num_patients, shape=tuple(shape), seed=DEMO_SEED)
        if distributed:
            dist.barrier()
        return
    found = phantom_settings(dataset_dir)
    wanted = {"num_patients": int(num_patients), "shape": [int(s) for s in shape]}
    if strict and found is not None and {k: found.get(k) for k in wanted} != wanted:
        raise InputError(
            f"The demo folder {dataset_dir} holds a synthetic set written with demo_patients="
            f"{found.get('num_patients')}, demo_shape={found.get('shape')}, but this run asks for demo_patients="
            f"{wanted['num_patients']}, demo_shape={wanted['shape']}: delete that folder to write a new set, or pass "
            "--demo_dataset_dir <another folder>."
        )


def oct_datalists(
    dataset_dir: str,
    datalist: str | None = None,
    demo_dir: str | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    balance: str = "undersample",
    patient_sep: str | None = "_",
    demo_patients: int = 24,
    demo_shape: Sequence[int] = (64, 96, 56),
    check_splits: Sequence[str] = ("training", "validation"),
    max_image_gib: float = MAX_IMAGE_GIB,
    validation_needs_every_class: bool = False,
) -> dict[str, list[dict]]:
    """Train/validation/test datalists for a bundle, every volume of ``check_splits`` decoded and checked.

    When ``dataset_dir`` is the bundle's default demo folder (``demo_dir``) and holds nothing yet, a synthetic
    dataset is written there first (:func:`shared.oct.phantom.write_oct_phantom_dataset`); any other folder
    that is missing, empty or malformed is an error naming it.

    Args:
        balance: ``"undersample"`` (majority class randomly undersampled in the training split),
            ``"undersample_all"`` (undersampled in the whole dataset before it is split, as the authors' code does:
            validation and test then hold both classes equally), ``"off"`` or
            ``"weighted"`` (training split left as is; the loss takes
            :func:`shared.splits.class_weights`).
        check_splits: the splits the workflow uses (training: ``training`` and ``validation``; evaluation: the
            evaluated split). Their volumes are checked, and an empty validation split or a training split without
            every class stops the run.
        max_image_gib: the most memory one volume may take once decoded (:func:`read_oct_volume`).
        validation_needs_every_class: stop when the validation split lacks a class (model selection on AUROC or
            balanced accuracy needs both); otherwise that is a warning.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...], "all": [...]}``.
    """
    if balance not in BALANCE:
        raise InputError(f"config id 'balance' is {balance!r}: expected one of {list(BALANCE)}.")
    is_demo = demo_dir is not None and os.path.abspath(dataset_dir) == os.path.abspath(demo_dir)
    if is_demo and not datalist:
        _prepare_demo(dataset_dir, demo_patients, demo_shape, strict=True)
    items = _find(dataset_dir, datalist, classes, patient_sep)
    source = datalist_path(dataset_dir, datalist) if datalist else dataset_dir
    _check_classes(items, "whole dataset", source, classes)
    if balance == "undersample_all":
        items = undersample_majority(items, seed)
    given = "split" in items[0]
    drawn = assign_splits(items, val_fraction, test_fraction, seed, stratify=True, source=f"The datalist {source}")
    train, val, test = (drawn[s] for s in SPLITS)
    how = "by its 'split' column" if given else f"by patient with val_fraction {val_fraction}, seed {seed}"
    if "validation" in check_splits and not val:
        n = len({i["subject_id"] for i in items})
        raise InputError(
            f"The validation split of {source} is empty ({n} patients, split {how}): model selection needs "
            "validation cases. Raise val_fraction, add patients (at least 3 per class), or give validation records."
        )
    if "training" in check_splits:
        _check_classes(train, "training split", source, classes)
        if len({int(i["label"]) for i in val}) < len(classes):
            if validation_needs_every_class:
                raise InputError(
                    f"The validation split of {source} lacks a class: model selection on validation AUROC or "
                    "balanced accuracy needs both. Raise val_fraction, add patients, or select on the loss "
                    "(--selection_metric loss)."
                )
            logger.warning(f"the validation split of {source} lacks a class: its AUROC and threshold are undefined")
    if balance == "undersample":
        train = undersample_majority(train, seed)
    lists = {"training": train, "validation": val, "test": test}
    for split in check_splits:
        for item in lists[split]:
            _check_item(item, max_image_gib)
    logger.info(
        f"{source}: {len(train)} training, {len(val)} validation and {len(test)} test volumes (split {how}); "
        f"checked: {', '.join(check_splits)}"
    )
    return {**{k: [_public(i) for i in v] for k, v in lists.items()}, "all": [_public(i) for i in items]}


def oct_inference_list(
    dataset_dir: str,
    demo_dir: str | None = None,
    demo_patients: int = 4,
    demo_shape: Sequence[int] = (64, 96, 56),
    max_image_gib: float = MAX_IMAGE_GIB,
) -> list[dict]:
    """``[{"image": path}, ...]`` for every volume below ``dataset_dir`` (recursively, sorted), each checked.

    A single volume file is accepted too. The bundle's default demo folder is filled with synthetic volumes when
    empty (a demo set training wrote there is used as it is); any other missing or volume-less path is an error
    naming it.
    """
    is_demo = demo_dir is not None and os.path.abspath(dataset_dir) == os.path.abspath(demo_dir)
    if is_demo:
        _prepare_demo(dataset_dir, demo_patients, demo_shape, strict=False)
    if os.path.isfile(dataset_dir):
        read_oct_volume(dataset_dir, max_image_gib=max_image_gib)
        return [{"image": dataset_dir}]
    if not os.path.isdir(dataset_dir):
        raise MissingInputError(
            f"The inference input {dataset_dir} does not exist (config id dataset_dir): expected a volume file or a "
            "folder of volumes."
        )
    files = []
    for root, dirs, names in os.walk(dataset_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # e.g. a demo set being written
        files += [os.path.join(root, f) for f in names if _is_volume(f)]
    files.sort()
    if not files:
        raise InputError(
            f"No volumes ({', '.join(VOLUME_EXTENSIONS)}) found below {dataset_dir} (config id dataset_dir)."
        )
    for f in files:
        read_oct_volume(f, max_image_gib=max_image_gib)
    return [{"image": f} for f in files]
