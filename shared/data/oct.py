"""Datalists for OCT volume classification (glaucoma vs non-glaucoma).

Layouts:

- class folders: ``dataset_dir/non_glaucoma/*`` and ``dataset_dir/glaucoma/*`` holding ``.npy`` or NIfTI volumes;
  the patient id is the file stem up to the first ``patient_sep`` (``P0003_OD.npy`` -> ``P0003``);
- a datalist: CSV with columns ``image,label[,patient_id]`` or JSON (a list, or ``{"data": [...]}``) of dicts with
  those keys; relative image paths are resolved against the datalist's folder. Labels are 0/1 or the class names.

Splits are made by patient (no patient in two splits), seeded, and stratified by class as far as patients allow.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence

import numpy as np

__all__ = [
    "VOLUME_EXTENSIONS",
    "find_oct_items",
    "check_volume_header",
    "split_by_patient",
    "undersample_majority",
    "oct_datalists",
    "oct_inference_list",
]

VOLUME_EXTENSIONS = (".npy", ".nii", ".nii.gz")
DEFAULT_CLASSES = ("non_glaucoma", "glaucoma")


def _is_volume(name: str) -> bool:
    return name.lower().endswith(VOLUME_EXTENSIONS) and not name.startswith(".")


def _stem(name: str) -> str:
    for ext in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _parse_label(value, classes: Sequence[str], where: str) -> int:
    text = str(value).strip()
    if text in classes:
        return list(classes).index(text)
    try:
        label = int(float(text))
    except ValueError:
        label = -1
    if label not in range(len(classes)):
        raise ValueError(f"{where}: label {value!r} is neither one of {list(range(len(classes)))} nor {list(classes)}.")
    return label


def _read_datalist(path: str, classes: Sequence[str]) -> list[dict]:
    base = os.path.dirname(os.path.abspath(path))
    if path.lower().endswith(".csv"):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    elif path.lower().endswith(".json"):
        with open(path) as f:
            try:
                content = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"datalist {path} is not valid JSON: {e}") from e
        rows = content.get("data") if isinstance(content, dict) else content
        if not isinstance(rows, list):
            raise ValueError(f"datalist {path} must be a list of records or {{'data': [...]}}.")
    else:
        raise ValueError(f"datalist {path} must be a .csv or .json file.")
    if not rows:
        raise ValueError(f"datalist {path} has no records.")
    items = []
    for i, row in enumerate(rows):
        where = f"datalist {path}, record {i}"
        if not isinstance(row, dict) or not row.get("image") or row.get("label") in (None, ""):
            raise ValueError(f"{where}: needs non-empty 'image' and 'label' fields, got {row!r}.")
        image = str(row["image"])
        image = image if os.path.isabs(image) else os.path.join(base, image)
        if not os.path.isfile(image):
            raise FileNotFoundError(f"{where}: image file not found: {image}")
        pid = row.get("patient_id")
        pid = str(pid) if pid not in (None, "") else _stem(os.path.basename(image))
        items.append({"image": image, "label": _parse_label(row["label"], classes, where), "patient_id": pid})
    return items


def _read_class_folders(dataset_dir: str, classes: Sequence[str], patient_sep: str | None) -> list[dict]:
    items = []
    for label, name in enumerate(classes):
        folder = os.path.join(dataset_dir, name)
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"class folder missing: {folder} (class-folder layout needs {', '.join(c + '/' for c in classes)} "
                f"in {dataset_dir}, or pass a CSV/JSON datalist)."
            )
        files = sorted(f for f in os.listdir(folder) if _is_volume(f))
        if not files:
            raise ValueError(f"class folder {folder} holds no volumes ({', '.join(VOLUME_EXTENSIONS)}).")
        for f in files:
            stem = _stem(f)
            pid = stem.split(patient_sep)[0] if patient_sep else stem
            items.append({"image": os.path.join(folder, f), "label": label, "patient_id": pid})
    return items


def check_volume_header(path: str) -> tuple[int, ...]:
    """Shape of a volume from its header (``.npy`` memory-map or NIfTI header); errors for rank != 3 or empty.

    A trailing or leading singleton axis (``(1, S, A, L)``, ``(S, A, L, 1)``) is accepted.
    """
    try:
        if path.lower().endswith(".npy"):
            shape = tuple(np.load(path, mmap_mode="r").shape)
        else:
            import nibabel as nib

            shape = tuple(nib.load(path).header.get_data_shape())
    except Exception as e:  # unreadable file: say which
        raise ValueError(f"cannot read volume {path}: {e}") from e
    core = tuple(s for s in shape if s != 1) if len(shape) == 4 else shape
    if len(shape) == 4 and len(core) == 3:
        shape = core
    if len(shape) != 3:
        raise ValueError(f"volume {path} has shape {shape}: expected a 3D OCT volume (B-scans, depth, lateral).")
    if min(shape) == 0:
        raise ValueError(f"volume {path} is empty (shape {shape}).")
    return shape


def find_oct_items(
    dataset_dir: str,
    datalist: str | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    patient_sep: str | None = "_",
    check_headers: bool = True,
) -> list[dict]:
    """Records ``{"image", "label", "patient_id"}`` from a datalist file or from class folders in ``dataset_dir``."""
    if datalist:
        path = datalist if os.path.isabs(datalist) else os.path.join(dataset_dir, datalist)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"datalist not found: {path}")
        items = _read_datalist(path, classes)
    else:
        if not os.path.isdir(dataset_dir):
            raise FileNotFoundError(
                f"dataset_dir not found: {dataset_dir} (expected class folders {list(classes)} or a CSV/JSON datalist)."
            )
        if not os.listdir(dataset_dir):
            raise ValueError(f"dataset_dir is empty: {dataset_dir} (expected class folders {list(classes)}).")
        items = _read_class_folders(dataset_dir, classes, patient_sep)
    if check_headers:
        for item in items:
            check_volume_header(item["image"])
    return items


def split_by_patient(
    items: Sequence[dict], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> tuple[list[dict], list[dict], list[dict]]:
    """Seeded train/validation/test split with every patient in exactly one split.

    Patients are grouped by their majority label and each group is split by the fractions, so every split gets
    both classes when each class has at least three patients.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must sum below 1.")
    patients: dict[str, list[dict]] = {}
    for item in items:
        patients.setdefault(str(item["patient_id"]), []).append(item)
    rng = np.random.default_rng(seed)
    splits: tuple[list[dict], list[dict], list[dict]] = ([], [], [])
    by_label: dict[int, list[str]] = {}
    for pid, recs in sorted(patients.items()):
        labels = [int(r["label"]) for r in recs]
        by_label.setdefault(max(set(labels), key=labels.count), []).append(pid)
    for _, pids in sorted(by_label.items()):
        pids = list(rng.permutation(pids))
        n = len(pids)
        n_test = int(round(n * test_fraction)) if test_fraction > 0 else 0
        n_val = int(round(n * val_fraction)) if val_fraction > 0 else 0
        if n >= 3:  # keep at least one patient per non-empty split
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        n_val = min(n_val, max(n - n_test - 1, 0))
        for k, pid in enumerate(pids):
            target = 2 if k < n_test else 1 if k < n_test + n_val else 0
            splits[target].extend(patients[pid])
    return splits


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


def _check_classes(items: Sequence[dict], name: str, source: str, num_classes: int) -> None:
    present = sorted({int(i["label"]) for i in items})
    if len(present) < num_classes:
        raise ValueError(
            f"the {name} split of {source} holds only class(es) {present}: a classifier needs every class "
            f"({list(range(num_classes))}) in its training data."
        )


def _write_demo_once(dataset_dir: str, num_patients: int, shape: tuple, seed: int) -> None:
    """Write the synthetic demo set; under torch.distributed, rank 0 writes while the others wait."""
    import torch.distributed as dist

    from shared.data.oct_phantom import write_oct_phantom_dataset

    distributed = dist.is_available() and dist.is_initialized()
    if not distributed or dist.get_rank() == 0:
        write_oct_phantom_dataset(dataset_dir, num_patients=num_patients, shape=shape, seed=seed)
    if distributed:
        dist.barrier()


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
) -> dict[str, list[dict]]:
    """Train/validation/test datalists for a bundle.

    When ``dataset_dir`` is the bundle's default demo folder (``demo_dir``) and holds nothing yet, a synthetic
    dataset is written there first (:func:`shared.data.oct_phantom.write_oct_phantom_dataset`); any other folder
    that is missing, empty or malformed is an error naming it.

    Args:
        balance: ``"undersample"`` (majority class randomly undersampled in the training split), ``"off"`` or
            ``"weighted"`` (training split left as is; the loss takes
            :func:`shared.data.classification_datalist.class_weights`).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...], "all": [...]}``.
    """
    if balance not in ("off", "undersample", "weighted"):
        raise ValueError(f"balance must be 'off', 'undersample' or 'weighted', got {balance!r}.")
    is_demo = demo_dir is not None and os.path.abspath(dataset_dir) == os.path.abspath(demo_dir)
    if is_demo and not datalist and (not os.path.isdir(dataset_dir) or not os.listdir(dataset_dir)):
        _write_demo_once(dataset_dir, demo_patients, tuple(demo_shape), seed)
    items = find_oct_items(dataset_dir, datalist, classes, patient_sep)
    source = datalist or dataset_dir
    _check_classes(items, "whole dataset", source, len(classes))
    train, val, test = split_by_patient(items, val_fraction, test_fraction, seed)
    _check_classes(train, "training", source, len(classes))
    if balance == "undersample":
        train = undersample_majority(train, seed)
    return {"training": train, "validation": val, "test": test, "all": list(items)}


def oct_inference_list(
    dataset_dir: str, demo_dir: str | None = None, demo_patients: int = 4, demo_shape: Sequence[int] = (64, 96, 56)
) -> list[dict]:
    """``[{"image": path}, ...]`` for every volume below ``dataset_dir`` (recursively, sorted).

    A single volume file is accepted too. The bundle's default demo folder is filled with synthetic volumes when
    empty; any other missing or volume-less path is an error naming it.
    """
    is_demo = demo_dir is not None and os.path.abspath(dataset_dir) == os.path.abspath(demo_dir)
    if is_demo and (not os.path.isdir(dataset_dir) or not os.listdir(dataset_dir)):
        _write_demo_once(dataset_dir, demo_patients, tuple(demo_shape), 0)
    if os.path.isfile(dataset_dir) and _is_volume(os.path.basename(dataset_dir)):
        check_volume_header(dataset_dir)
        return [{"image": dataset_dir}]
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"inference input not found: {dataset_dir} (a volume file or a folder of volumes).")
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(dataset_dir) for f in names if _is_volume(f))
    if not files:
        raise ValueError(f"no volumes ({', '.join(VOLUME_EXTENSIONS)}) found below {dataset_dir}.")
    for f in files:
        check_volume_header(f)
    return [{"image": f} for f in files]
