# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The cohort manifest of ad_multiomic_classification: one row per subject, header required::

    subject_id,mri,pet,snp,<clinical columns...>,label
    S001,mri/S001.nii.gz,pet/S001.nii.gz,genotypes/cohort.bed,72.1,F,16,29,...,CN

- ``mri`` / ``pet``: NIfTI (``.nii``, ``.nii.gz``) or Analyze (``.hdr``/``.img``) volumes, relative to the manifest.
- ``snp``: ``.npy`` vector, a CSV file (one numeric row, or a table with a ``subject_id``/``IID`` column and one
  row per subject), or a PLINK ``.bed`` (with ``.bim``/``.fam`` beside it) whose IID is the subject id
  (:mod:`shared.multiomic.snps`). Codes 0/1/2; missing as NaN, -1, ``NA`` or empty (PLINK code 01).
- clinical columns: numeric or categorical; empty / ``NA`` / ``NaN`` are missing and imputed.
- ``label``: one of the class names (default ``CN``, ``MCI``, ``AD``); optional for inference.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.errors import InputError, MissingInputError
from shared.inputs import MAX_IMAGE_GIB, check_image_size, check_volume
from shared.multiomic.plink import plink_prefix
from shared.splits import split_name

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SUFFIXES",
    "MISSING_TOKENS",
    "is_missing",
    "read_manifest",
    "check_image_file",
    "row_of",
]


CLASS_NAMES = ("CN", "MCI", "AD")


IMAGE_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")


MISSING_TOKENS = ("", "na", "nan", "n/a", "none", "null", "-", "?")


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip().lower() in MISSING_TOKENS


def _resolve(path: str, base: str) -> str:
    path = os.path.expanduser(str(path).strip())
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _read_csv(path: str, what: str = "manifest") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the ``(line number, fields)`` rows of a CSV file, blank lines skipped; a file that is empty,
    not UTF-8 text, not valid CSV, or with a row whose field count differs from the header's is one
    :class:`InputError` naming the file and line."""
    if os.path.getsize(path) == 0:
        raise InputError(f"The {what} {path} is empty (0 bytes): expected a header line and one row per subject.")
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            header: list[str] | None = None
            line = 1
            for fields in reader:
                if not any(c.strip() for c in fields):
                    line = reader.line_num + 1
                    continue
                if header is None:
                    header = [h.strip() for h in fields]
                elif len(fields) != len(header):
                    raise InputError(
                        f"The {what} {path} line {line} has {len(fields)} fields, the header has {len(header)}: "
                        "quote values that hold a comma, and give every column (empty for missing)."
                    )
                else:
                    rows.append((line, fields))
                line = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise InputError(
            f"The {what} {path} is not a UTF-8 text file (undecodable byte at offset {e.start}): save it as CSV."
        ) from e
    except csv.Error as e:
        raise InputError(f"The {what} {path} is not valid CSV at line {reader.line_num}: {e}.") from e
    if header is None:
        raise InputError(f"The {what} {path} holds only blank lines: expected a header line and one row per subject.")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InputError(f"The {what} {path} repeats header column(s) {repeated}: every column name must be unique.")
    return header, rows


def read_manifest(
    manifest: str,
    clinical_columns: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    require_label: bool = True,
) -> list[dict[str, Any]]:
    """
    Read and check a cohort manifest.

    Returns:
        one record per subject: ``subject_id``, absolute ``mri`` / ``pet`` / ``snp`` paths for the enabled modalities,
        ``clinical_raw`` (column -> raw string), ``label`` (class index, -1 when absent and not required),
        ``manifest_line`` and, when the manifest has a ``split`` column, ``split`` (``training`` / ``validation`` /
        ``test``).

    Raises:
        MissingInputError: missing manifest or modality file.
        InputError: a file that is not valid CSV, a required column missing, a subject id empty or repeated, an
            unknown label or split, an empty modality path.
    """
    if not os.path.isfile(manifest):
        raise MissingInputError(f"The manifest {manifest} does not exist.")
    base = os.path.dirname(os.path.abspath(manifest))
    header, rows = _read_csv(manifest)
    file_mods = [m for m in ("mri", "pet", "snp") if m in modalities]
    required = ["subject_id"] + file_mods + (list(clinical_columns) if "clinical" in modalities else [])
    if require_label:
        required.append("label")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            f"The manifest {manifest} lacks column(s) {missing} (its header is {header}): expected subject_id, "
            "the enabled modalities' file columns, the clinical columns of the config and label."
        )
    names = [str(c) for c in class_names]
    upper = [c.upper() for c in names]
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, fields in rows:
        row = dict(zip(header, fields))
        sid = str(row.get("subject_id", "")).strip()
        at = f"The manifest {manifest} line {line}"
        if not sid:
            raise InputError(f"{at} has an empty subject_id: every row needs a unique subject id.")
        if sid in seen:
            raise InputError(
                f"{at}: subject_id '{sid}' appears twice (lines {seen[sid]} and {line}): one row per subject, or "
                "its visits would land in different splits."
            )
        seen[sid] = line
        at += f" (subject '{sid}')"
        rec: dict[str, Any] = {"subject_id": sid}
        for m in file_mods:
            value = str(row.get(m, "")).strip()
            if not value:
                raise InputError(f"{at} has an empty '{m}' path: give the file or switch the '{m}' modality off.")
            path = _resolve(value, base)
            check = plink_prefix(path) + ".bed" if m == "snp" and path.lower().endswith((".bim", ".fam")) else path
            if not os.path.isfile(check) and not (m == "snp" and os.path.isfile(path + ".bed")):
                raise MissingInputError(
                    f"{at}: {m} file {path} does not exist: give the file or switch the '{m}' modality off."
                )
            rec[m] = path
        if "clinical" in modalities:
            rec["clinical_raw"] = {c: str(row.get(c, "")).strip() for c in clinical_columns}
        raw_label = str(row.get("label", "")).strip()
        if raw_label:
            if raw_label.upper() not in upper:
                raise InputError(f"{at} has label '{raw_label}': expected one of {names} (config class_names).")
            rec["label"] = upper.index(raw_label.upper())
        elif require_label:
            raise InputError(f"{at} has an empty label: expected one of {names}.")
        else:
            rec["label"] = -1
        if "split" in header:
            rec["split"] = split_name(row.get("split", ""), at)
        rec["manifest_line"] = line
        records.append(rec)
    if not records:
        raise InputError(f"The manifest {manifest} has a header but no subject rows.")
    return records


def check_image_file(
    path: str, where: str = "", what: str = "image", max_image_gib: float = MAX_IMAGE_GIB
) -> tuple[int, ...]:
    """
    Decode a volume in full and check it: a NIfTI / Analyze file that nibabel reads, a usable (finite, invertible)
    affine, a 3D volume (a trailing singleton 4th axis is accepted), finite voxels, not constant.

    Args:
        path: the file.
        where: the manifest line and subject, for the message.
        what: ``"MRI"``, ``"PET"``, ... for the message.
        max_image_gib: checked from the header before decoding (:func:`shared.inputs.check_image_size`).

    Returns:
        the stored shape.

    Raises:
        MissingInputError: the file does not exist.
        InputError: naming the file, for anything else.
    """
    import nibabel as nib

    source = f"{path} ({where})" if where else path
    if not path.lower().endswith(IMAGE_SUFFIXES):
        raise InputError(f"The {what} {source} is not a NIfTI (.nii, .nii.gz) or Analyze (.hdr/.img) file.")
    if not os.path.isfile(path):
        raise MissingInputError(f"The {what} {source} does not exist.")
    if os.path.getsize(path) == 0:
        raise InputError(f"The {what} {source} is empty (0 bytes).")
    check_image_size(path, max_image_gib, what, name=source)
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel and zlib raise many types for corrupt or truncated files
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputError(f"The {what} {source} cannot be read as NIfTI / Analyze ({reason}).") from e
    affine = np.asarray(img.affine, np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(
            f"The {what} {source} has an unusable affine (voxel-to-world matrix, non-finite or singular): its "
            "orientation cannot be found; fix the header (qform/sform)."
        )
    check_volume(data, source, spatial_dims=3, channels=1, what=what)
    return tuple(int(s) for s in data.shape)


def row_of(rec: Mapping[str, Any], manifest: str | None = None) -> str:
    line = rec.get("manifest_line")
    at = f"manifest {manifest} line {line}, " if manifest and line else (f"manifest line {line}, " if line else "")
    return f"{at}subject '{rec.get('subject_id', '?')}'"
