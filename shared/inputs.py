# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Input checks every bundle runs on its data before the first iteration: one clear message per problem.

- :func:`check_volume`: rank and channel count, non-finite voxels (how many, and where the first one is), constant
  volumes.
- :func:`check_label_values`: label maps hold integer class indices within the configured classes.
- :func:`read_json`: a JSON file (datalist, manifest) with the file, line and column of a syntax error.
- :func:`read_volume`: decode a whole image file (NIfTI, or any format MONAI's readers open), telling a missing,
  zero-byte, mislabelled (not the format its name says) and truncated file apart.
- :func:`check_folder`: a folder the user named exists and is a folder, not a file.
- :func:`check_image_size`: before an image is decoded, what its header claims (and what its gzip stream holds)
  fits a limit and the memory available, so that one crafted or mistaken file cannot exhaust the machine.

Each raises :class:`~shared.errors.InputError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import InputError, MissingInputError

__all__ = [
    "check_volume",
    "check_label_values",
    "check_folder",
    "check_image_size",
    "read_json",
    "read_volume",
    "find_images",
    "file_digest",
    "first_line",
    "gzip_broken",
    "is_image",
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "MAX_IMAGE_GIB",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".hdr", ".img", ".dcm")
# default of each bundle's max_image_gib: above any real scan (a 512 x 512 x 2000 CT is 2 GiB as float32)
MAX_IMAGE_GIB = 4.0


def check_volume(
    array: Any,
    source: str,
    spatial_dims: int = 3,
    channels: int | None = 1,
    channel_first: bool = False,
    allow_constant: bool = False,
    what: str = "image",
) -> None:
    """Check one decoded volume.

    Args:
        array: the voxels (numpy, torch or MONAI MetaTensor), ``(*spatial)`` or, with ``channel_first``,
            ``(C, *spatial)``; a stored trailing singleton axis (``(H, W, D, 1)``) counts as one channel.
        source: the file (or case) the volume came from, named in the message.
        spatial_dims: the expected number of spatial dimensions.
        channels: the expected channel count (``None``: any).
        allow_constant: accept a volume whose voxels are all equal (never true for a real scan).
        what: ``"image"``, ``"label"``, ... for the message.
    """
    a = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
    shape = tuple(int(s) for s in a.shape)
    if channel_first:
        n_channels, spatial = (shape[0], shape[1:]) if len(shape) == spatial_dims + 1 else (None, shape)
    elif len(shape) == spatial_dims + 1:
        n_channels, spatial = shape[-1], shape[:-1]
    else:
        n_channels, spatial = 1, shape
    if len(spatial) != spatial_dims:
        raise InputError(
            f"The {what} {source} has shape {shape}: expected a {spatial_dims}D volume"
            + (f" with {channels} channel(s)" if channels else "")
            + "."
        )
    if channels is not None and n_channels not in (None, channels):
        raise InputError(f"The {what} {source} has {n_channels} channels (shape {shape}): expected {channels}.")
    if a.size == 0:
        raise InputError(f"The {what} {source} is empty (shape {shape}).")
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.argwhere(~finite)
            n_nan = int(np.isnan(a).sum())
            raise InputError(
                f"The {what} {source} holds {len(bad)} non-finite voxel(s) ({n_nan} NaN, {len(bad) - n_nan} Inf), "
                f"the first at index {tuple(int(i) for i in bad[0])}: fix or replace them before using the file."
            )
    if not allow_constant:
        lo, hi = a.min(), a.max()
        if lo == hi:
            raise InputError(
                f"The {what} {source} is constant (every voxel is {lo.item()!r}): it holds no image; check the export."
            )


def check_label_values(values: Iterable[Any], source: str, allowed: Iterable[int], hint: str = "") -> None:
    """Every value of the label map ``source`` (give its unique values) is an integer in ``allowed``."""
    values = np.unique(np.asarray(list(values) if not hasattr(values, "shape") else values))
    fractional = values[np.mod(values, 1) != 0] if np.issubdtype(values.dtype, np.floating) else values[:0]
    if fractional.size:
        raise InputError(
            f"The label {source} holds non-integer values, e.g. {fractional[:5].tolist()}: a label map holds class "
            "indices (was it resampled with linear interpolation?)."
        )
    allowed = set(int(a) for a in allowed)
    bad = sorted(int(v) for v in values if int(v) not in allowed)
    if bad:
        raise InputError(
            f"The label {source} holds values {bad} outside the configured classes {sorted(allowed)}"
            + (f": {hint}" if hint else ".")
        )


def check_folder(path: str | os.PathLike, what: str = "dataset_dir", hint: str = "") -> None:
    """``path`` is an existing folder; a file there, or nothing, is one error naming ``what`` (the config id) and
    the path, followed by ``hint`` (the layout expected inside the folder)."""
    hint = f"; {hint}" if hint else ""
    if os.path.isfile(path):
        raise InputError(f"{what} {path} is a file, not a folder{hint}.")
    if not os.path.isdir(path):
        raise MissingInputError(f"{what} {path} does not exist{hint}.")


def _claimed(path: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype an image file's header claims, read without decoding voxels: NIfTI / Analyze (nibabel),
    ``.npy`` (its header), other single-file formats through SimpleITK; ``None`` for what has no such header here
    (a DICOM series folder) or a header that does not read (the decoding step then names the problem)."""
    name = path.lower()
    try:
        if name.endswith(NIFTI_SUFFIXES):
            import nibabel as nib

            header = nib.load(path).header
            return tuple(int(s) for s in header.get_data_shape()), np.dtype(header.get_data_dtype())
        if name.endswith(".npy"):
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            return tuple(int(s) for s in shape), np.dtype(dtype)
        if os.path.isfile(path):
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(path)
            reader.ReadImageInformation()
            one = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())
            shape = (*reader.GetSize(), reader.GetNumberOfComponents())
            return tuple(int(s) for s in shape), np.dtype(f"u{one.GetSizeOfPixelComponent()}")
    except Exception:
        return None
    return None


def _gzip_size(path: str) -> int | None:
    """The uncompressed size a gzip file records in its trailer (modulo 4 GiB, as the format stores it)."""
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return None
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def check_image_size(
    path: str | os.PathLike, max_gib: float = MAX_IMAGE_GIB, what: str = "image", name: str | None = None
) -> None:
    """Refuse, before decoding, an image that would take more memory than ``max_gib`` GiB (config id
    ``max_image_gib``) or than the memory available now, whichever is less.

    The size is what the header claims, as float32 (the dtype the pipelines load into) or wider as stored; for a
    gzip file, also the uncompressed size its trailer records. The readers decode only the bytes the header claims,
    so a stream longer than that is never inflated. Raises :class:`InputError` naming the file (as ``name`` when
    given, e.g. with its datalist line), the shape, the size and the limit.
    """
    path = str(path)
    name = name or path
    if not os.path.isfile(path):
        return
    from shared.cache import available_memory

    limit_gib, available_gib = float(max_gib), available_memory() / 2**30
    limit = min(limit_gib, available_gib)
    why = (
        f"the {limit_gib:g} GiB limit (config id max_image_gib)"
        if limit_gib <= available_gib
        else f"the {available_gib:.1f} GiB of memory available (max_image_gib is {limit_gib:g})"
    )
    claimed = _claimed(path)
    if claimed is not None:
        shape, dtype = claimed
        size = int(np.prod(shape, dtype=np.float64)) * max(dtype.itemsize, 4) / 2**30
        loaded = "float32" if dtype.itemsize <= 4 else dtype.name
        if size > limit:
            raise InputError(
                f"The {what} {name} claims {' x '.join(map(str, shape))} {dtype.name} voxels, {size:.1f} GiB as "
                f"{loaded}, more than {why}: check the file; if the scan really is that large, crop or resample "
                "it, or raise --max_image_gib."
            )
    inflated = _gzip_size(path) if path.lower().endswith(".gz") else None
    if inflated is not None and inflated / 2**30 > limit:
        raise InputError(
            f"The {what} {name} inflates to {inflated / 2**30:.1f} GiB, more than {why}: check the file, or raise "
            "--max_image_gib."
        )


def read_json(path: str | os.PathLike, what: str = "datalist") -> Any:
    """Read a JSON file; a missing file or a syntax error is one :class:`InputError` with the file, line and column."""
    path = str(path)
    if not os.path.isfile(path):
        raise MissingInputError(f"The {what} {path} does not exist.")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"The {what} {path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from e
    except UnicodeDecodeError as e:
        raise InputError(f"The {what} {path} is not a text (UTF-8) file: {e.reason} at byte {e.start}.") from e


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): the reason a message quotes."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def gzip_broken(path: str, size: int | None = None) -> bool:
    """Whether the gzip stream of ``path`` is corrupt or ends early: before ``size`` bytes (e.g. a NIfTI header's
    348), or, with ``size`` None, before its end (the whole stream is read)."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as f:
            if size is not None:
                return len(f.read(size)) < size
            while f.read(1 << 22):
                pass
    except (EOFError, OSError, zlib.error):
        return True
    return False


def read_volume(
    path: str | os.PathLike,
    what: str = "image",
    reader: Any = None,
    scaled: bool = True,
    max_gib: float = MAX_IMAGE_GIB,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every voxel of an image file; return ``(voxels, affine)``.

    ``voxels`` are as stored, ``(X, Y, Z)`` or ``(X, Y, Z, C)``; ``affine`` is the 4x4 voxel-to-world matrix. NIfTI
    files are read with nibabel (``scaled=False``: the stored values, without ``scl_slope``/``scl_inter``, which keeps
    an int16 CT in int16 memory); other files and DICOM series folders with MONAI's ``LoadImage(reader)``.

    Raises:
        MissingInputError: the path does not exist.
        InputError: a zero-byte file, one larger than ``max_gib`` allows (:func:`check_image_size`), a ``.gz`` file
            that is not gzip data, a file that is not the format its name says, or one whose header reads but whose
            voxels do not (truncated); each names the file.
    """
    path = str(path)
    name = os.path.basename(os.path.normpath(path)).lower()
    if not os.path.exists(path):
        raise MissingInputError(f"The {what} file {path} does not exist.")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise InputError(f"The {what} file {path} is empty (0 bytes): was its copy or download interrupted?")
    check_image_size(path, max_gib, what)
    if os.path.isfile(path) and name.endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        if name.endswith(".gz"):
            with open(path, "rb") as f:
                if f.read(2) != b"\x1f\x8b":
                    raise InputError(
                        f"The {what} file {path} is not gzip-compressed although its name ends in .gz: expected a "
                        "compressed NIfTI image (.nii.gz), or an uncompressed one named .nii."
                    )
        truncated = f"The {what} file {path} is truncated or corrupt"
        try:
            img = nib.load(path)
        except Exception as e:
            if name.endswith(".gz") and gzip_broken(path, 348):
                raise InputError(f"{truncated}: its gzip stream ends early ({first_line(e)}). Copy or export it again.")
            raise InputError(f"The {what} file {path} is not a NIfTI image ({first_line(e)}).") from e
        try:
            data = np.asanyarray(img.dataobj) if scaled else np.asarray(img.dataobj.get_unscaled())
        except Exception as e:
            raise InputError(
                f"{truncated}: its header reads but its voxels do not ({first_line(e)}). Copy or export it again."
            ) from e
        return data, np.asarray(img.affine, dtype=float)
    from monai.transforms import LoadImage

    try:
        img = LoadImage(reader=reader, image_only=True)(path)
    except Exception as e:
        raise InputError(
            f"Cannot read the {what} {path} ({first_line(e)}): expected an image file (NIfTI, NRRD, MHA, ...) or a "
            "folder holding one DICOM series."
        ) from e
    return np.asarray(img), np.asarray(img.affine, dtype=float)


# ----------------------------------------------------------------------------------------------------------------
# finding the images of an inference run


def is_image(path: Path) -> bool:
    """A visible file with an image extension (:data:`IMAGE_SUFFIXES`)."""
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def _is_dicom_file(path: Path) -> bool:
    """A ``.dcm`` file, or a file without an image extension that carries the DICOM preamble (series are often
    written with bare or UID-like names)."""
    name = path.name.lower()
    if not path.is_file() or name.startswith("."):
        return False
    if name.endswith(".dcm"):
        return True
    if name.endswith(IMAGE_SUFFIXES):
        return False
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _dicom_series_ids(folder: Path) -> list[str]:
    """The series ITK (and so MONAI's ITKReader) finds in ``folder``, grouped the way ITKReader groups them."""
    import itk

    names = itk.GDCMSeriesFileNames.New()
    names.SetUseSeriesDetails(True)
    names.AddSeriesRestriction("0008|0021")  # series date, as ITKReader does
    names.SetGlobalWarningDisplay(False)
    names.SetDirectory(str(folder))
    return list(names.GetSeriesUIDs())


def _output_name(path: str) -> str:
    """The base name MONAI's SaveImage gives an output of ``path`` (it drops one extension, two for ``.gz``)."""
    name, ext = os.path.splitext(os.path.basename(os.path.normpath(path)))
    return os.path.splitext(name)[0] if ext == ".gz" else name


def find_images(input_path: str | os.PathLike) -> list[str]:
    """The inputs of an inference run: a single image file, a DICOM series folder, or a folder (its ``images/``,
    ``imagesTs/`` or ``imagesTr/`` subfolder when there is one) of image files and/or DICOM series folders (every
    folder at or below it that holds DICOM files is one series, read by MONAI's ITKReader). Nothing is decoded.

    Raises:
        InputError: nothing found, a single DICOM slice, a folder holding several series, or two inputs whose
            outputs would get the same name; each names the path.
    """
    path = Path(input_path)
    if path.is_file():
        if _is_dicom_file(path):
            raise InputError(f"{path} is one DICOM slice: pass the folder of its series ({path.parent}).")
        if is_image(path):
            return [str(path)]
    if not path.is_dir():
        raise MissingInputError(f"Input {path} is neither an image file nor a folder.")
    for sub in ("images", "imagesTs", "imagesTr"):
        if (path / sub).is_dir():
            path = path / sub
            break
    images = sorted(str(p) for p in path.iterdir() if is_image(p) and not _is_dicom_file(p))
    series = []
    for folder, subdirs, files in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        if any(_is_dicom_file(Path(folder) / f) for f in files):
            ids = _dicom_series_ids(Path(folder))
            if len(ids) != 1:
                raise InputError(
                    f"{folder} holds {len(ids)} DICOM series (or one whose slices differ in size, orientation or "
                    "series date): put each series in a folder of its own."
                )
            series.append(folder)
    if not images and not series:
        raise InputError(f"No images ({', '.join(IMAGE_SUFFIXES)}) or DICOM series found in {path}.")
    inputs = images + sorted(series)
    by_name: dict[str, str] = {}
    for item in inputs:
        other = by_name.setdefault(_output_name(item), item)
        if other != item:
            raise InputError(
                f"Inputs {other} and {item} would both be saved as {_output_name(item)}_seg: rename one, or run them "
                "separately with different output_dir."
            )
    return inputs


_CHUNK = 1 << 20
# (path, size, mtime_ns) -> digest, so an epoch does not re-hash unchanged files
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, or of every file below a directory (e.g. a DICOM series), in name order."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        files = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
        if not files:
            raise FileNotFoundError(f"image directory is empty: {path}")
        h = hashlib.sha256()
        for f in files:
            h.update(os.path.relpath(f, path).encode())
            h.update(file_digest(f).encode())
        return h.hexdigest()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]
