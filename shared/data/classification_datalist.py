"""
Volume-level classification datalists (CSV or JSON: image, label, optional subject_id) and subject-level,
class-stratified cross-validation splits (train / validation / test = 80 / 10 / 10 with five folds).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["load_classification_datalist", "cross_validation_split", "class_weights"]


def _read_records(path: str) -> list[dict[str, Any]]:
    if path.lower().endswith(".csv"):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "image" not in [c.strip() for c in reader.fieldnames]:
                raise ValueError(
                    f"datalist {path}: CSV needs a header with an 'image' column, got {reader.fieldnames}."
                )
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if path.lower().endswith(".json"):
        with open(path) as f:
            try:
                obj = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"datalist {path} is not valid JSON: {e}") from e
        if isinstance(obj, Mapping):
            for k in ("data", "training", "items"):
                if isinstance(obj.get(k), list):
                    obj = obj[k]
                    break
        if not isinstance(obj, list) or not all(isinstance(r, Mapping) for r in obj):
            raise ValueError(
                f"datalist {path}: JSON must be a list of {{'image', 'label', 'subject_id'}} records "
                "(or hold one under 'data' / 'training')."
            )
        return [dict(r) for r in obj]
    raise ValueError(f"datalist {path}: unsupported format; use .csv or .json.")


def _parse_label(value: Any, class_names: Sequence[str] | None, where: str) -> int:
    n = len(class_names) if class_names else None
    if isinstance(value, bool):
        raise ValueError(f"{where}: label {value!r} is not a class index or name.")
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        idx = int(value)
        if idx < 0 or (n is not None and idx >= n):
            raise ValueError(f"{where}: label {idx} is outside 0..{(n or 1) - 1} (classes {list(class_names or [])}).")
        return idx
    if isinstance(value, float) and value.is_integer():
        return _parse_label(int(value), class_names, where)
    if isinstance(value, str) and value.strip():
        if not class_names:
            raise ValueError(f"{where}: label {value!r} is a name but no class table ('class_names') was given.")
        if value.strip() not in class_names:
            raise ValueError(f"{where}: unknown label {value!r}; known classes: {list(class_names)}.")
        return list(class_names).index(value.strip())
    raise ValueError(f"{where}: missing or empty label.")


def load_classification_datalist(
    path: str,
    class_names: Sequence[str] | None = None,
    base_dir: str | None = None,
    require_labels: bool = True,
    check_files: bool = True,
) -> list[dict[str, Any]]:
    """
    Read a datalist into ``[{"image": abs path, "label": int, "subject_id": str}, ...]``.

    Args:
        path: ``.csv`` (header ``image,label[,subject_id]``) or ``.json`` (list of records).
        class_names: the class table; labels may then be names or indices; without it labels must be indices.
        base_dir: folder relative image paths start from (default: the datalist's folder).
        require_labels: labels are required (training, evaluation); inference lists may omit them.
        check_files: every image must exist.

    ``subject_id`` defaults to the image file name, so scans without one are their own subject.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"datalist not found: {path}")
    base = base_dir or os.path.dirname(os.path.abspath(path))
    records = _read_records(path)
    if not records:
        raise ValueError(f"datalist {path} has no entries.")
    out = []
    for i, r in enumerate(records):
        where = f"datalist {path}, entry {i + 1}"
        image = r.get("image")
        if not image or not isinstance(image, str):
            raise ValueError(f"{where}: missing 'image' path.")
        full = image if os.path.isabs(image) else os.path.join(base, image)
        if check_files and not os.path.exists(full):
            raise FileNotFoundError(f"{where}: image not found: {full}")
        item: dict[str, Any] = {"image": full}
        label = r.get("label")
        if label is not None and label != "":
            item["label"] = _parse_label(label, class_names, where)
        elif require_labels:
            raise ValueError(f"{where}: missing 'label'.")
        sid = r.get("subject_id")
        item["subject_id"] = str(sid) if sid not in (None, "") else os.path.basename(image)
        out.append(item)
    return out


def cross_validation_split(
    items: Sequence[Mapping[str, Any]],
    num_folds: int = 5,
    fold: int = 0,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """
    Subject-level, class-stratified split for cross-validation round ``fold``.

    Subjects of each class are shuffled (``seed``) and dealt into ``num_folds`` folds. In round ``fold``, that
    fold is halved per class into validation and test, the other folds train: with five folds 80 / 10 / 10.
    All scans of a subject land in the same subset; a subject's class is its most frequent label.

    Returns ``{"train": [...], "validation": [...], "test": [...]}``. Raises ValueError when a class has fewer
    than ``2 * num_folds`` subjects (each fold's validation and test halves then hold every class).
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}.")
    if not 0 <= fold < num_folds:
        raise ValueError(f"fold must be in 0..{num_folds - 1}, got {fold}.")
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        if "label" not in it:
            raise ValueError(f"cross-validation needs labels; entry {it.get('image')} has none.")
        by_subject[str(it.get("subject_id", it["image"]))].append(dict(it))
    subjects_of: dict[int, list[str]] = defaultdict(list)
    for sid, its in sorted(by_subject.items()):
        subjects_of[Counter(int(i["label"]) for i in its).most_common(1)[0][0]].append(sid)
    too_few = {c: len(s) for c, s in subjects_of.items() if len(s) < 2 * num_folds}
    if too_few:
        names = {(class_names[c] if class_names and c < len(class_names) else c): n for c, n in too_few.items()}
        raise ValueError(
            f"too few subjects for {num_folds}-fold cross-validation with validation and test subsets: {names} "
            f"(subjects per class; at least {2 * num_folds} needed). Lower 'num_folds' or add data."
        )
    rng = np.random.default_rng(seed)
    split: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for c in sorted(subjects_of):
        subs = list(subjects_of[c])
        rng.shuffle(subs)
        folds = [subs[k::num_folds] for k in range(num_folds)]
        held = folds[fold]
        split["validation"] += held[0::2]
        split["test"] += held[1::2]
        split["train"] += [s for k, f in enumerate(folds) if k != fold for s in f]
    return {k: [it for s in sorted(v) for it in by_subject[s]] for k, v in split.items()}


def class_weights(items: Sequence[Mapping[str, Any]], num_classes: int) -> list[float]:
    """Inverse-frequency class weights (mean 1) for an imbalanced training list."""
    counts = np.bincount([int(i["label"]) for i in items], minlength=num_classes).astype(float)
    if np.any(counts == 0):
        missing = [c for c in range(num_classes) if counts[c] == 0]
        raise ValueError(f"training list has no example of class(es) {missing}.")
    w = counts.sum() / (num_classes * counts)
    return (w / w.mean()).tolist()
