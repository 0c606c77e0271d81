# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Subject-level splits, one way for every bundle.

Items are dicts with a ``subject_id`` (all items of a subject land in one split) and, to stratify, a ``label``
(a subject's class is its most frequent label). Splits are named :data:`SPLITS`; :func:`split_name` reads the words
users write in a datalist's ``split`` column.

- :func:`split_subjects`: seeded training / validation / test split by fractions, stratified when asked.
- :func:`cross_validation_fold`: round ``fold`` of seeded (stratified) subject folds; the held-out fold is halved into
  validation and test. Both draw from :func:`shuffled_subjects`, so a seed means the same shuffle for either.
- :func:`given_splits`: the splits a datalist's ``split`` column fixes, checked for subjects in two splits;
  :func:`assign_splits`: those when the items give them, else :func:`split_subjects`.
- :func:`select_split`: the split an evaluation scores; :func:`class_weights`: class balance of a training list.

The shuffle is a seeded permutation written here rather than scikit-learn's ``GroupShuffleSplit`` /
``StratifiedGroupKFold``: neither splits by fractions with groups and strata at once, neither guarantees a subject
in every split asked for on a small cohort (which the bundles' checks rely on), and either would redraw the splits
behind every published figure of the collection.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.errors import InputError

__all__ = [
    "SPLITS",
    "split_name",
    "subject_classes",
    "shuffled_subjects",
    "split_subjects",
    "cross_validation_fold",
    "given_splits",
    "assign_splits",
    "select_split",
    "class_weights",
]

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "test")
_WORDS = {"training": "training", "train": "training", "validation": "validation", "val": "validation"}
_WORDS.update({"valid": "validation", "test": "test", "testing": "test"})

Items = Sequence[Mapping[str, Any]]


def split_name(value: Any, where: str) -> str:
    """The split a datalist's ``split`` value names (``train`` / ``training``, ``val`` / ``validation``, ``test`` /
    ``testing``, any case)."""
    word = str(value).strip().lower()
    if word not in _WORDS:
        raise InputError(
            f"{where}: split {value!r} is not one of training, validation or test (or give no split at all to let "
            "the bundle draw the splits)."
        )
    return _WORDS[word]


def _by_subject(items: Items) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(str(item["subject_id"]), []).append(dict(item))
    return groups


def subject_classes(items: Items) -> dict[str, int]:
    """Each subject's class: its most frequent label (on a tie, the lowest)."""
    labels: dict[str, list[int]] = {}
    for item in items:
        labels.setdefault(str(item["subject_id"]), []).append(int(item["label"]))
    return {sid: Counter(sorted(ls)).most_common(1)[0][0] for sid, ls in labels.items()}


def shuffled_subjects(
    groups: Mapping[str, Sequence[Mapping[str, Any]]], seed: int, stratify: bool = False
) -> dict[int | None, list[str]]:
    """Subject ids shuffled by ``seed``: one list (key ``None``), or one per class with ``stratify`` (classes in
    order, one generator across them). The result depends on the ids, labels and seed only, not on item order."""
    rng = random.Random(seed)
    if not stratify:
        subjects = sorted(groups)
        rng.shuffle(subjects)
        return {None: subjects}
    strata: dict[int | None, list[str]] = {}
    classes = subject_classes([item for sid in groups for item in groups[sid]])
    for sid in sorted(groups):
        strata.setdefault(classes[sid], []).append(sid)
    for c in sorted(strata):
        rng.shuffle(strata[c])
    return dict(sorted(strata.items()))


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise InputError(
            f"config ids val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must each be in [0, 1) "
            "and sum below 1."
        )


def split_subjects(
    items: Items, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, stratify: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """
    Seeded ``{"training", "validation", "test"}`` split with every subject in exactly one split.

    Per stratum (all subjects, or each class with ``stratify``) of ``n`` subjects, validation gets
    ``round(n * val_fraction)`` and test ``round(n * test_fraction)``, each at least one when asked for while training
    keeps one: 2 subjects give training + validation, 3 one of each. Items keep the order of the shuffle.

    Raises:
        InputError: fractions outside [0, 1) or summing to 1 or more.
    """
    _check_fractions(val_fraction, test_fraction)
    groups = _by_subject(items)
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for subjects in shuffled_subjects(groups, seed, stratify).values():
        n = len(subjects)
        n_val = min(max(1, round(n * val_fraction)), n - 1) if val_fraction > 0 and n >= 2 else 0
        n_test = min(max(1, round(n * test_fraction)), n - 1 - n_val) if test_fraction > 0 and n >= 3 else 0
        parts = {
            "validation": subjects[:n_val],
            "test": subjects[n_val : n_val + n_test],
            "training": subjects[n_val + n_test :],
        }
        for name, part in parts.items():
            out[name] += [item for sid in part for item in groups[sid]]
    return out


def cross_validation_fold(
    items: Items, num_folds: int = 5, fold: int = 0, seed: int = 0, stratify: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """
    Round ``fold`` of ``num_folds``-fold subject-level cross-validation.

    The subjects of each stratum (:func:`shuffled_subjects`) are dealt into ``num_folds`` folds; in round ``fold``
    that fold is halved (per stratum) into validation and test and the others train: with five folds 80 / 10 / 10.
    Items are ordered by subject id.

    Raises:
        InputError: ``num_folds`` below 2 or ``fold`` outside ``0..num_folds - 1``.
    """
    if not isinstance(num_folds, int) or num_folds < 2:
        raise InputError(f"config id 'num_folds' is {num_folds!r}: expected an integer >= 2.")
    if not isinstance(fold, int) or not 0 <= fold < num_folds:
        raise InputError(f"config id 'fold' is {fold!r}: expected one of 0..{num_folds - 1} (num_folds {num_folds}).")
    groups = _by_subject(items)
    chosen: dict[str, list[str]] = {s: [] for s in SPLITS}
    for subjects in shuffled_subjects(groups, seed, stratify).values():
        folds = [subjects[k::num_folds] for k in range(num_folds)]
        chosen["validation"] += folds[fold][0::2]
        chosen["test"] += folds[fold][1::2]
        chosen["training"] += [s for k, f in enumerate(folds) if k != fold for s in f]
    return {name: [item for sid in sorted(sids) for item in groups[sid]] for name, sids in chosen.items()}


def given_splits(items: Items, source: str) -> dict[str, list[dict[str, Any]]]:
    """The splits the items' ``split`` values fix (:data:`SPLITS` names); a subject in two splits is refused, as its
    scans would leak between model fitting and scoring."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    first: dict[str, str] = {}
    for item in items:
        sid, split = str(item["subject_id"]), item["split"]
        other = first.setdefault(sid, split)
        if other != split:
            raise InputError(
                f"{source} puts subject {sid!r} in both the {other} and the {split} split: all scans of a subject "
                "belong to one split, or they leak between model fitting and scoring."
            )
        out[split].append(dict(item))
    return out


def class_weights(items: Sequence[Mapping[str, Any]], num_classes: int) -> list[float]:
    """Inverse-frequency class weights (mean 1) for an imbalanced training list."""
    counts = np.bincount([int(i["label"]) for i in items], minlength=num_classes).astype(float)
    if np.any(counts == 0):
        missing = [c for c in range(num_classes) if counts[c] == 0]
        raise ValueError(f"training list has no example of class(es) {missing}.")
    w = counts.sum() / (num_classes * counts)
    return (w / w.mean()).tolist()


def assign_splits(
    items: Items,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = False,
    source: str = "The datalist",
) -> dict[str, list[dict[str, Any]]]:
    """The splits the items' ``split`` values fix (:func:`given_splits`) when they give them, else drawn
    (:func:`split_subjects`)."""
    if any("split" in item for item in items):
        return given_splits(items, source)
    return split_subjects(items, val_fraction, test_fraction, seed, stratify)


def select_split(
    datalists: Mapping[str, Sequence[Mapping[str, Any]]],
    split: str = "test",
    source: str = "The dataset",
    how: str | None = None,
) -> list[dict[str, Any]]:
    """The items an evaluation scores: ``datalists[split]``, ``test`` by default. ``validation`` must be asked for
    knowingly (it chose ``model.pt``, so its scores are optimistic); an empty split stops the evaluation, saying how
    to give one (``how``, when a bundle draws its splits its own way)."""
    if split not in ("test", "validation"):
        raise InputError(
            f"config id 'eval_split' is {split!r}: expected 'test' (the held-out subjects) or 'validation'."
        )
    items = [dict(item) for item in datalists.get(split) or []]
    if not items:
        how = how or (
            "Give a test split: test_fraction > 0 when the bundle draws the splits (with enough subjects, see the "
            "card), or the test subjects marked in the data (a 'split' column, a decathlon 'testing' list with "
            "labels, a release's test folder), at training and at evaluation alike."
        )
        raise InputError(
            f"{source} has no {split} cases, so there is nothing to evaluate. {how} Or evaluate the validation split "
            "knowingly with --eval_split validation: it chose model.pt, so its scores are optimistic."
        )
    if split == "validation":
        logger.warning("evaluating the validation split: it chose model.pt, so its scores are optimistic")
    return items
