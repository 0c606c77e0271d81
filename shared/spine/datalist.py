# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Image/label datalists for segmentation bundles: discovery, train/validation/test splits and checks that fail
before training.

``dataset_format`` selects how ``dataset_dir`` is read:

- ``"default"``: a datalist JSON in MONAI's decathlon format (``{"training": [{"image": ..., "label": ...}, ...],
  "validation": [...], "testing": [...]}``, paths relative to the dataset folder) or the layout::

      <dataset_dir>/images/<case>.nii.gz    (or imagesTr/)
      <dataset_dir>/labels/<case>.nii.gz    (or labelsTr/; same file name as its image)

- ``"verse"``: VerSe'19 / VerSe'20 as released, ``"totalsegmentator"``: the TotalSegmentator dataset (see
  :py:mod:`shared.spine.datasets`).

Splits are by subject (all scans of a patient in one split). Splits the source gives are kept (a datalist's
``validation`` and labelled ``testing`` lists, VerSe's release folders, TotalSegmentator's ``meta.csv``). A source that
gives none is split into training / validation / test by ``val_fraction`` / ``test_fraction`` with ``seed``; one that
gives a test split but no validation split has its validation drawn from training; a test split is never invented
for a source that gives a validation split: evaluating then needs ``eval_split`` (see
:func:`shared.splits.select_split`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import load_decathlon_datalist

from shared.errors import InputError, MissingInputError
from shared.inputs import (
    IMAGE_SUFFIXES,
    MAX_IMAGE_GIB,
    NIFTI_SUFFIXES,
    check_folder,
    check_label_values,
    check_volume,
    find_images,
    is_image,
    read_json,
    read_volume,
)
from shared.splits import SPLITS, given_splits, split_subjects

__all__ = [
    "segmentation_datalist",
    "check_segmentation_pairs",
    "check_label_mapping",
    "check_modality",
    "image_datalist",
    "DATASET_FORMATS",
    "MODALITIES",
]

logger = logging.getLogger(__name__)

DATASET_FORMATS = ("default", "verse", "totalsegmentator")
MODALITIES = ("ct", "mri")
# below any MRI magnitude value; a CT's air (-1000 HU) and the outside of its field of view (-1024 or lower) lie there
HU_AIR = -500.0
LAYOUT = (
    "expected <dataset_dir>/images/*.nii.gz with labels of the same file names in <dataset_dir>/labels/ "
    "(or imagesTr/ and labelsTr/), or a decathlon-format datalist JSON passed as --datalist_file; "
    "VerSe and TotalSegmentator folders need --dataset_format verse / totalsegmentator"
)


def _case_name(path: str | os.PathLike) -> str:
    """The file name without its image extension(s)."""
    name = Path(path).name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _with_ids(item: dict) -> dict:
    """An item with its ``case`` (output name) and ``subject_id`` (split group); a datalist may give either (the
    subject as ``subject_id`` or ``subject``)."""
    case = str(item.get("case") or _case_name(item["image"]))
    subject = str(item.get("subject_id") or item.get("subject") or case)
    return {**{k: v for k, v in item.items() if k != "subject"}, "case": case, "subject_id": subject}


def _discover_pairs(root: Path) -> list[dict]:
    for image_dir, label_dir in (("images", "labels"), ("imagesTr", "labelsTr")):
        if (root / image_dir).is_dir():
            images = sorted(p for p in (root / image_dir).iterdir() if is_image(p))
            missing = [p.name for p in images if not (root / label_dir / p.name).is_file()]
            if missing:
                raise MissingInputError(
                    f"{root / label_dir}: no label for {len(missing)} image(s), e.g. {missing[:3]}; {LAYOUT}."
                )
            return [_with_ids({"image": str(p), "label": str(root / label_dir / p.name)}) for p in images]
    return []


def _complete_splits(
    given: dict[str, list[dict]], unsplit: list[dict], val_fraction: float, test_fraction: float, seed: int, source
) -> dict[str, list[dict]]:
    """Keep the splits a source gives, draw the missing ones (see the module docstring)."""
    try:
        return _draw_splits(given, unsplit, val_fraction, test_fraction, seed, source)
    except ValueError as e:
        raise InputError(f"{source}: {e}") from None


def _draw_splits(given, unsplit, val_fraction, test_fraction, seed, source) -> dict[str, list[dict]]:
    if not given.get("validation") and not given.get("test"):
        items = given.get("training", []) + unsplit
        n = len({i["subject_id"] for i in items})
        if n < 2:
            raise InputError(f"{n} subject(s): at least 2 are needed to train and validate; {LAYOUT}.")
        return split_subjects(items, val_fraction, test_fraction, seed)
    if unsplit:
        logger.warning(
            f"{source}: {len(unsplit)} case(s) outside the release splits left out, "
            f"e.g. {[i['image'] for i in unsplit[:3]]}."
        )
    if not given.get("training"):
        raise InputError(f"it gives {', '.join(s for s in SPLITS if given.get(s))} cases but no training cases.")
    out = given_splits([{**i, "split": s} for s in SPLITS for i in given.get(s, [])], "it")
    out = {s: [{k: v for k, v in i.items() if k != "split"} for i in out[s]] for s in SPLITS}
    if not out["validation"]:
        drawn = split_subjects(out["training"], val_fraction, 0.0, seed)
        out["training"], out["validation"] = drawn["training"], drawn["validation"]
    return out


def _datalist_entries(spec: dict, key: str, path: str, root: Path) -> list:
    """The checked entries of one list of a decathlon datalist (``testing`` entries may be bare image paths)."""
    entries = spec.get(key, [])
    if not isinstance(entries, list):
        raise InputError(f"Datalist {path}: '{key}' is a {type(entries).__name__}, expected a list of entries.")
    needed = ("image",) if key == "testing" else ("image", "label")
    for i, entry in enumerate(entries):
        if key == "testing" and isinstance(entry, str):
            continue
        missing = [k for k in needed if not isinstance(entry, dict) or not isinstance(entry.get(k), (str, list))]
        if missing:
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise InputError(
                f"Datalist {path}: entry {i} of '{key}' has no {' or '.join(repr(k) for k in missing)} path "
                f'(found {found}); expected entries like {{"image": "images/a.nii.gz", "label": '
                f'"labels/a.nii.gz"}} with paths relative to {root}.'
            )
    return entries


def _read_datalist(datalist: str | os.PathLike, root: Path) -> tuple[dict[str, list[dict]], list[dict]]:
    """Splits of a decathlon datalist; its ``testing`` entries that have a label form the test split."""
    if not Path(datalist).is_file():
        raise MissingInputError(f"Datalist {datalist} does not exist; {LAYOUT}.")
    spec = read_json(datalist)
    if not isinstance(spec, dict):
        raise InputError(
            f"Datalist {datalist} holds a {type(spec).__name__}: expected a JSON object with 'training' (and "
            "optionally 'validation' and 'testing') lists."
        )
    given = {}
    for split, key in (("training", "training"), ("validation", "validation"), ("test", "testing")):
        present = _datalist_entries(spec, key, str(datalist), root)
        given[split] = load_decathlon_datalist(str(datalist), data_list_key=key, base_dir=str(root)) if present else []
    unlabelled = [d for d in given["test"] if "label" not in d]
    if unlabelled:
        logger.warning(
            f"Datalist {datalist}: {len(unlabelled)} 'testing' entries without a label are not part of the test "
            "split (they can only be inferred on)."
        )
    given["test"] = [d for d in given["test"] if "label" in d]
    for split in SPLITS:
        given[split] = [_with_ids(d) for d in given[split]]
    return given, []


def check_label_mapping(label_mapping: Sequence[Sequence[int]], num_classes: int | None = None) -> None:
    """Each entry of ``label_mapping`` is a pair ``[from, to]`` of label values, ``to`` a class index
    ``0..num_classes-1``; raises one error naming the config id ``label_mapping`` otherwise."""
    for i, pair in enumerate(label_mapping or ()):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        ok = ok and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in pair)
        if ok and (num_classes is None or pair[1] < num_classes):
            continue
        classes = f" with to in 0..{num_classes - 1}" if num_classes is not None else ""
        raise InputError(
            f"config id 'label_mapping' entry {i} is {pair!r}: expected a pair [from, to] of label values (0-255)"
            f'{classes}, e.g. --label_mapping "[[25, 24], [26, 0]]".'
        )


def check_modality(
    low: float, high: float, source: str, modality: str, intensity_range: Sequence[float] | None = None
) -> None:
    """Check that an image whose values span ``[low, high]`` fits the configured ``modality`` (one of
    :py:data:`MODALITIES`), in both directions:

    - ``"ct"`` with an HU window (``intensity_range`` starting below 0) needs values below 0: a volume without any
      (an MRI, or a CT stored without its HU rescale) would be squashed into a sliver of the window;
    - ``"mri"`` (per-volume z-scoring) refuses values down to :py:data:`HU_AIR` or below, which only CT air has.

    Raises :class:`InputError` naming the file, its range and the override that fits.
    """
    if modality not in MODALITIES:
        raise InputError(f"config id 'modality' must be one of {list(MODALITIES)}, got {modality!r}.")
    window = list(intensity_range) if intensity_range is not None else None
    if modality == "ct" and window is not None and window[0] < 0 <= low:
        raise InputError(
            f"The image {source} holds no value below 0 (its range is [{low:g}, {high:g}]), so it is not a CT in "
            f"Hounsfield units as modality 'ct' and its window intensity_range {window} expect: for MRI pass "
            "--modality mri (e.g. with configs/mri_lumbar.json); for a CT, check that its header applies the HU "
            "rescale (scl_slope / scl_inter), or set --intensity_range to its units."
        )
    if modality == "mri" and low <= HU_AIR:
        raise InputError(
            f"The image {source} holds values down to {low:g} (its range is [{low:g}, {high:g}]), as a CT in "
            f"Hounsfield units does, but modality is 'mri': for CT pass --modality ct."
        )


def _value_range(voxels: np.ndarray, path: str) -> tuple[float, float]:
    """Minimum and maximum of decoded voxels as the file means them: a NIfTI's stored values (what the checks
    decode, to keep an int16 CT in int16 memory) with its ``scl_slope`` / ``scl_inter`` applied."""
    low, high = float(voxels.min()), float(voxels.max())
    if os.path.isfile(path) and path.lower().endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        proxy = nib.load(path).dataobj
        slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
        low, high = sorted((low * slope + inter, high * slope + inter))
    return low, high


def segmentation_datalist(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    dataset_format: str = "default",
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    num_classes: int | None = None,
    label_mapping: Sequence[Sequence[int]] = (),
    demo_dir: str | os.PathLike | None = None,
    write_demo: Callable[[str], object] | None = None,
    label_cache_dir: str | os.PathLike | None = None,
    check: bool = True,
    num_workers: int | None = None,
    modality: str | None = None,
    intensity_range: Sequence[float] | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> dict[str, list[dict]]:
    """Return ``{"training": [...], "validation": [...], "test": [...]}`` image/label items (``image``, ``label``,
    ``subject_id``, ``case``), checked before any compute is spent; ``test`` may be empty (see the module docstring).

    Args:
        dataset_dir: the dataset folder, read as ``dataset_format`` says (one of :py:data:`DATASET_FORMATS`).
        datalist: optional decathlon-format JSON (``dataset_format`` ``"default"`` only); paths in it are relative
            to ``dataset_dir``.
        val_fraction, test_fraction, seed: the split of a source that gives none
            (:py:func:`shared.splits.split_subjects`).
        num_classes, label_mapping: label checks, see :py:func:`check_segmentation_pairs`.
        demo_dir, write_demo: when ``dataset_dir`` is ``demo_dir`` (the bundle's own demo folder) and holds no data,
            ``write_demo(dataset_dir)`` writes synthetic demo data first. A user-given folder is never filled in.
        label_cache_dir: TotalSegmentator only: where merged label maps go (default: each case's folder).
        check: run :py:func:`check_segmentation_pairs` on every pair (``num_workers`` threads).
        modality, intensity_range: with ``check``, every image must fit them (:py:func:`check_modality`).
        max_image_gib: with ``check``, the most memory one image may take once decoded, checked from its header
            before it is (:py:func:`~shared.inputs.check_image_size`).

    Raises:
        FileNotFoundError / ValueError: a missing, empty or malformed dataset or datalist (JSON syntax with line
            and column, entries without paths), a bad ``label_mapping``, or a pair that fails
            :py:func:`check_segmentation_pairs`; each names the file or config id.
    """
    from shared.spine import datasets as spine_datasets

    if dataset_format not in DATASET_FORMATS:
        raise InputError(f"dataset_format must be one of {DATASET_FORMATS}, got {dataset_format!r}.")
    check_label_mapping(label_mapping, num_classes)
    if datalist is not None and dataset_format != "default":
        raise InputError(
            f"A datalist ({datalist}) lists its own files: use it with dataset_format 'default', "
            f"not {dataset_format!r}."
        )
    root = Path(dataset_dir).absolute()
    source = datalist or root
    is_demo = demo_dir is not None and root == Path(demo_dir).absolute() and dataset_format == "default"
    if is_demo and write_demo is not None and datalist is None and not _discover_pairs_quiet(root):
        _write_demo_once(root, write_demo)
    if datalist is not None:
        given, unsplit = _read_datalist(datalist, root)
    elif dataset_format == "default":
        check_folder(root, "dataset_dir", LAYOUT)
        given, unsplit = {}, _discover_pairs(root)
    else:
        if dataset_format == "verse":
            items = spine_datasets.verse_items(root)
        else:
            items = spine_datasets.totalsegmentator_items(root, label_cache_dir)
        given = {split: [i for i in items if i["split"] == split] for split in SPLITS}
        unsplit = [i for i in items if i["split"] is None]
        for item in items:
            del item["split"]
    if not unsplit and not any(given.values()):
        raise InputError(f"No image/label pairs found in {source}; {LAYOUT}.")
    out = _complete_splits(given, unsplit, val_fraction, test_fraction, seed, source)
    if check:
        check_segmentation_pairs(
            [i for s in SPLITS for i in out[s]],
            num_classes=num_classes,
            label_mapping=label_mapping,
            num_workers=num_workers,
            modality=modality,
            intensity_range=intensity_range,
            max_image_gib=max_image_gib,
        )
    logger.info(
        f"Dataset {source} ({dataset_format}): {len(out['training'])} training, {len(out['validation'])} validation "
        f"and {len(out['test'])} test cases."
    )
    return out


def _discover_pairs_quiet(root: Path) -> list[dict]:
    try:
        return _discover_pairs(root) if root.is_dir() else []
    except FileNotFoundError:
        return []


def _write_demo_once(root: Path, write_demo: Callable[[str], object]) -> None:
    """Write demo data; under torch.distributed, rank 0 writes while the others wait."""
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    if not distributed or dist.get_rank() == 0:
        write_demo(str(root))
    if distributed:
        dist.barrier()


def _check_image(path: str, reader: Any = None, modality=None, window=None, max_gib=MAX_IMAGE_GIB) -> tuple:
    """Decode one image in full and check it (not larger than ``max_gib``, one finite, non-constant 3D volume that
    fits ``modality``); return ``(voxels, affine)``."""
    image, affine = read_volume(path, "image", reader=reader, scaled=False, max_gib=max_gib)
    check_volume(image, path, spatial_dims=3, channels=1, what="image")
    if modality is not None:
        check_modality(*_value_range(image, str(path)), str(path), modality, window)
    return image, affine


def _check_pair(item: dict, allowed: set[int] | None, hint: str, atol: float, **image_checks) -> None:
    """Decode one image/label pair and check it (see :py:func:`check_segmentation_pairs`)."""
    image, image_affine = _check_image(item["image"], **image_checks)
    label, label_affine = read_volume(item["label"], "label", max_gib=image_checks.get("max_gib", MAX_IMAGE_GIB))
    check_volume(label, item["label"], spatial_dims=3, channels=1, allow_constant=True, what="label")
    img_shape, lbl_shape = tuple(image.shape[:3]), tuple(label.shape[:3])
    if img_shape != lbl_shape:
        raise InputError(f"Shape mismatch: image {item['image']} is {img_shape}, label {item['label']} {lbl_shape}.")
    if not np.allclose(image_affine, label_affine, atol=atol):
        raise InputError(
            f"Affine mismatch between image {item['image']} and label {item['label']}: "
            f"{np.round(image_affine, 4).tolist()} vs {np.round(label_affine, 4).tolist()} (they must share a grid)."
        )
    if allowed is not None:
        check_label_values(np.unique(label), item["label"], allowed, hint)


def check_segmentation_pairs(
    items: Sequence[dict],
    num_classes: int | None = None,
    label_mapping: Sequence[Sequence[int]] = (),
    atol: float = 1e-3,
    num_workers: int | None = None,
    modality: str | None = None,
    intensity_range: Sequence[float] | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> None:
    """Decode and check every ``{"image", "label"}`` pair before any compute is spent on it.

    Each file exists, is not empty, claims no more than ``max_image_gib`` GiB (checked from its header, before it is
    decoded), is the format its name says and decodes in full (not truncated). The image is
    one 3D volume (one channel) of finite, not all equal voxels whose values fit ``modality`` (when given, see
    :py:func:`check_modality`); the label a 3D map on the image's grid (same shape
    and affine within ``atol``) whose values are integers and, given ``num_classes``, class indices
    ``0..num_classes-1`` or source values of ``label_mapping`` (pairs ``[from, to]``). Pairs are read by
    ``num_workers`` threads (default: up to 4); the first failing pair, in order, raises one
    :class:`~shared.errors.InputError` naming the file and what is wrong.
    """
    allowed = None
    if num_classes is not None:
        allowed = set(range(num_classes)) | {int(m[0]) for m in label_mapping}
    hint = (
        f"expected class indices 0..{num_classes - 1} or values that label_mapping maps "
        f"({sorted(int(m[0]) for m in label_mapping)}): check num_classes and label_mapping"
        if num_classes is not None
        else ""
    )
    image_checks = {"modality": modality, "window": intensity_range, "max_gib": max_image_gib}
    workers = min(4, os.cpu_count() or 1) if num_workers is None else int(num_workers)
    if workers <= 1 or len(items) <= 1:
        for item in items:
            _check_pair(item, allowed, hint, atol, **image_checks)
        return
    pool = ThreadPoolExecutor(max_workers=workers)  # decoding (zlib) releases the GIL
    try:
        for _ in pool.map(lambda item: _check_pair(item, allowed, hint, atol, **image_checks), items):
            pass
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def image_datalist(
    input_path: str | os.PathLike,
    reader: Any = None,
    check: bool = True,
    modality: str | None = None,
    intensity_range: Sequence[float] | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> list[dict]:
    """Images to run inference on (:func:`shared.inputs.find_images`): a single image file, a DICOM series folder,
    or a folder of image files and/or DICOM series folders.

    With ``check``, every input is decoded first (NIfTI by nibabel, the others by ``LoadImage(reader)``, as the
    pipeline reads them) and checked as :py:func:`check_segmentation_pairs` checks images: one 3D volume of finite,
    not all equal voxels that fit ``modality`` and ``intensity_range`` when given (:py:func:`check_modality`), no
    larger than ``max_image_gib`` allows.

    Raises:
        FileNotFoundError / ValueError: nothing found, a single DICOM slice, a folder holding several series, two
            inputs whose outputs would get the same name, or an input that fails the check; each names the path.
    """
    inputs = find_images(input_path)
    if check:
        for item in inputs:
            _check_image(item, reader, modality, intensity_range, max_image_gib)
    return [{"image": item} for item in inputs]
