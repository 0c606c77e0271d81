"""Image/label datalists for segmentation bundles: discovery, splitting and checks that fail before training.

A dataset folder is either described by a datalist JSON in MONAI's decathlon format (``{"training": [{"image": ...,
"label": ...}, ...], "validation": [...]}``, paths relative to the dataset folder) or laid out as::

    <dataset_dir>/images/<case>.nii.gz    (or imagesTr/)
    <dataset_dir>/labels/<case>.nii.gz    (or labelsTr/; same file name as its image)
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from monai.data import load_decathlon_datalist

__all__ = ["segmentation_datalist", "check_segmentation_pairs", "image_datalist", "IMAGE_SUFFIXES"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".hdr", ".img", ".dcm")
LAYOUT = (
    "expected <dataset_dir>/images/*.nii.gz with labels of the same file names in <dataset_dir>/labels/ "
    "(or imagesTr/ and labelsTr/), or a decathlon-format datalist JSON passed as --datalist"
)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def _discover_pairs(root: Path) -> list[dict]:
    for image_dir, label_dir in (("images", "labels"), ("imagesTr", "labelsTr")):
        if (root / image_dir).is_dir():
            images = sorted(p for p in (root / image_dir).iterdir() if _is_image(p))
            missing = [p.name for p in images if not (root / label_dir / p.name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{root / label_dir}: no label for {len(missing)} image(s), e.g. {missing[:3]}; {LAYOUT}."
                )
            return [{"image": str(p), "label": str(root / label_dir / p.name)} for p in images]
    return []


def segmentation_datalist(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    num_classes: int | None = None,
    label_mapping: Sequence[Sequence[int]] = (),
    demo_dir: str | os.PathLike | None = None,
    write_demo: Callable[[str], object] | None = None,
    check: bool = True,
) -> dict[str, list[dict]]:
    """Return ``{"training": [...], "validation": [...]}`` image/label pairs, checked before any compute is spent.

    Args:
        dataset_dir: the dataset folder (see the module docstring for the layout).
        datalist: optional decathlon-format JSON; paths in it are relative to ``dataset_dir``. Its ``validation``
            list, when present, is the validation split; otherwise ``val_fraction`` of the cases are drawn with
            ``seed``.
        num_classes, label_mapping: label checks, see :py:func:`check_segmentation_pairs`.
        demo_dir, write_demo: when ``dataset_dir`` is ``demo_dir`` (the bundle's own demo folder) and holds no data,
            ``write_demo(dataset_dir)`` writes synthetic demo data first. A user-given folder is never filled in.
        check: run :py:func:`check_segmentation_pairs` on every pair.

    Raises:
        FileNotFoundError / ValueError: a missing, empty or malformed dataset, naming the path and the layout.
    """
    root = Path(dataset_dir).absolute()
    is_demo = demo_dir is not None and root == Path(demo_dir).absolute()
    if is_demo and write_demo is not None and datalist is None and not _discover_pairs_quiet(root):
        _write_demo_once(root, write_demo)
    if datalist is not None:
        if not Path(datalist).is_file():
            raise FileNotFoundError(f"Datalist {datalist} does not exist; {LAYOUT}.")
        train = load_decathlon_datalist(str(datalist), data_list_key="training", base_dir=str(root))
        try:
            val = load_decathlon_datalist(str(datalist), data_list_key="validation", base_dir=str(root))
        except ValueError:
            val = []
    else:
        if not root.is_dir():
            raise FileNotFoundError(f"Dataset folder {root} does not exist; {LAYOUT}.")
        train, val = _discover_pairs(root), []
    if not train:
        raise ValueError(f"No image/label pairs found in {datalist or root}; {LAYOUT}.")
    if not val:
        if len(train) < 2:
            raise ValueError(f"{datalist or root} holds a single case: at least 2 are needed to validate; {LAYOUT}.")
        shuffled = train[:]
        random.Random(seed).shuffle(shuffled)
        n_val = max(1, int(round(val_fraction * len(shuffled))))
        train, val = shuffled[n_val:], shuffled[:n_val]
    if check:
        check_segmentation_pairs(train + val, num_classes=num_classes, label_mapping=label_mapping)
    logger.info(f"Dataset {datalist or root}: {len(train)} training and {len(val)} validation cases.")
    return {"training": train, "validation": val}


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


def _read_header(path: str) -> tuple[tuple[int, ...], np.ndarray]:
    """Spatial shape and affine of an image, from the header alone where the format allows."""
    if path.lower().endswith((".nii", ".nii.gz", ".hdr", ".img")):
        import nibabel as nib

        img = nib.load(path)
        return tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine)
    from monai.transforms import LoadImage

    img = LoadImage(image_only=True, ensure_channel_first=True)(path)
    return tuple(int(s) for s in img.shape[1:4]), np.asarray(img.affine)


def _read_array(path: str) -> np.ndarray:
    if path.lower().endswith((".nii", ".nii.gz", ".hdr", ".img")):
        import nibabel as nib

        return np.asanyarray(nib.load(path).dataobj)
    from monai.transforms import LoadImage

    return np.asarray(LoadImage(image_only=True)(path))


def check_segmentation_pairs(
    items: Sequence[dict],
    num_classes: int | None = None,
    label_mapping: Sequence[Sequence[int]] = (),
    atol: float = 1e-3,
) -> None:
    """Check every ``{"image", "label"}`` pair before training: both files exist and are readable, shapes and
    affines agree, and (given ``num_classes``) every label value is a class index ``0..num_classes-1`` or a source
    value of ``label_mapping`` (pairs ``[from, to]``). Raises one error naming the file and what is wrong."""
    allowed = set(range(num_classes)) | {int(m[0]) for m in label_mapping} if num_classes is not None else None
    for item in items:
        paths = {key: str(item[key]) for key in ("image", "label")}
        headers = {}
        for key, path in paths.items():
            if not Path(path).is_file():
                raise FileNotFoundError(f"The {key} file {path} does not exist.")
            try:
                headers[key] = _read_header(path)
            except Exception as e:
                raise ValueError(f"Cannot read the {key} file {path}: {e}") from e
        (img_shape, img_affine), (lbl_shape, lbl_affine) = headers["image"], headers["label"]
        if img_shape != lbl_shape:
            raise ValueError(
                f"Shape mismatch: image {paths['image']} is {img_shape}, label {paths['label']} {lbl_shape}."
            )
        if not np.allclose(img_affine, lbl_affine, atol=atol):
            raise ValueError(
                f"Affine mismatch between image {paths['image']} and label {paths['label']}:\n"
                f"{np.round(img_affine, 4)}\nvs\n{np.round(lbl_affine, 4)}"
            )
        if allowed is not None:
            values = np.unique(_read_array(paths["label"]))
            if not np.all(np.equal(np.mod(values, 1), 0)):
                raise ValueError(
                    f"Label {paths['label']} holds non-integer values, e.g. {values[values % 1 != 0][:5]}."
                )
            bad = sorted(int(v) for v in values if int(v) not in allowed)
            if bad:
                raise ValueError(
                    f"Label {paths['label']} holds values {bad} outside the configured classes "
                    f"(0..{num_classes - 1}, plus mapped values {sorted(int(m[0]) for m in label_mapping)}): "
                    "check num_classes and label_mapping."
                )


def image_datalist(input_path: str | os.PathLike) -> list[dict]:
    """Images to run inference on: a single image file, or every image in a folder (its ``images/``, ``imagesTs/``
    or ``imagesTr/`` subfolder when there is one). Raises when nothing is found."""
    path = Path(input_path)
    if _is_image(path):
        return [{"image": str(path)}]
    if not path.is_dir():
        raise FileNotFoundError(f"Input {path} is neither an image file nor a folder.")
    for sub in ("images", "imagesTs", "imagesTr"):
        if (path / sub).is_dir():
            path = path / sub
            break
    images = sorted(p for p in path.iterdir() if _is_image(p))
    if not images:
        raise ValueError(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {path}.")
    return [{"image": str(p)} for p in images]
