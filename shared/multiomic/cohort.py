# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Multi-omic cohort data: CSV manifest, SNP vectors, clinical preprocessing and subject splits.

Manifest layout (one row per subject, header required)::

    subject_id,mri,pet,snp,<clinical columns...>,label
    S001,mri/S001.nii.gz,pet/S001.nii.gz,genotypes/cohort.bed,72.1,F,16,29,...,CN

- ``mri`` / ``pet``: NIfTI (``.nii``, ``.nii.gz``) or Analyze (``.hdr``/``.img``) volumes, relative to the manifest.
- ``snp``: ``.npy`` vector, a CSV file (one numeric row, or a table with a ``subject_id``/``IID`` column and one
  row per subject), or a PLINK ``.bed`` (with ``.bim``/``.fam`` beside it) whose IID is the subject id.
  Codes 0/1/2; missing as NaN, -1, ``NA`` or empty (PLINK code 01).
- clinical columns: numeric or categorical; empty / ``NA`` / ``NaN`` are missing and imputed.
- ``label``: one of the class names (default ``CN``, ``MCI``, ``AD``); optional for inference.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from shared.atomic import write_json
from shared.errors import InputError, MissingInputError
from shared.inputs import MAX_IMAGE_GIB, check_folder, check_image_size, check_volume, read_json
from shared.multiomic.plink import plink_prefix, read_plink_bed

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SUFFIXES",
    "MISSING_TOKENS",
    "read_manifest",
    "read_snp",
    "check_image_file",
    "validate_records",
    "stratified_split",
    "select_split",
    "check_encodable",
    "check_resumed_preprocessing",
    "ClinicalPreprocessor",
    "SNPImputer",
    "FeaturePreprocessor",
    "load_cohort",
    "cohort_datalist",
    "MultiomicPrepareBatch",
]

CLASS_NAMES = ("CN", "MCI", "AD")
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")
MISSING_TOKENS = ("", "na", "nan", "n/a", "none", "null", "-", "?")
MISSING_SNP_CODE = -1  # PLINK's and most tables' missing genotype; any other negative code is an error
_ID_COLUMNS = ("subject_id", "iid")
# values of the manifest's optional split column
SPLIT_NAMES = {"training": "training", "train": "training", "validation": "validation", "val": "validation"}
SPLIT_NAMES.update({"valid": "validation", "test": "test", "testing": "test"})

logger = logging.getLogger(__name__)


def _is_missing(value: Any) -> bool:
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
            value = str(row.get("split", "")).strip().lower()
            if value not in SPLIT_NAMES:
                raise InputError(
                    f"{at} has split '{row.get('split', '')}': expected training, validation or test (or remove "
                    "the split column to let the bundle draw the splits)."
                )
            rec["split"] = SPLIT_NAMES[value]
        rec["manifest_line"] = line
        records.append(rec)
    if not records:
        raise InputError(f"The manifest {manifest} has a header but no subject rows.")
    return records


def _parse_snp_tokens(tokens: Sequence[str], where: str) -> np.ndarray:
    out = np.empty(len(tokens), dtype=np.float32)
    for j, t in enumerate(tokens):
        if _is_missing(t):
            out[j] = np.nan
            continue
        try:
            out[j] = float(t)
        except ValueError:
            raise InputError(f"{where}: SNP value '{t}' at position {j} is not a number.") from None
    return out


def read_snp(source: str, subject_id: str, expected_length: int | None = None) -> np.ndarray:
    """
    Read one subject's SNP dosage vector.

    Args:
        source: ``.npy``, CSV/TSV/TXT or PLINK ``.bed`` (``.bim``/``.fam``/prefix) path.
        subject_id: the subject (row id in a CSV table, IID in PLINK).
        expected_length: required vector length.

    Returns:
        ``(n_snps,)`` float32 in {0, 1, 2} with NaN for missing.

    Raises:
        InputError: an unreadable, empty or truncated file, wrong length, codes other than 0/1/2/missing, an unknown
            subject.
    """
    low = source.lower()
    where = f"SNP file '{source}' (subject '{subject_id}')"
    is_plink = low.endswith((".bed", ".bim", ".fam")) or (
        not os.path.isfile(source) and os.path.isfile(source + ".bed")
    )
    if not is_plink and not os.path.isfile(source):
        raise MissingInputError(f"{where} does not exist.")
    if not is_plink and os.path.getsize(source) == 0:
        raise InputError(f"{where} is empty (0 bytes).")
    if low.endswith(".npy"):
        try:
            vec = np.load(source, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:  # pickled object arrays are refused too, never run
            raise InputError(f"{where} is truncated or not a numeric .npy file ({e}).") from e
        if vec.dtype.kind not in "biuf":
            raise InputError(f"{where}: expected a numeric array, got dtype {vec.dtype}.")
        vec = vec.reshape(-1) if vec.ndim == 2 and 1 in vec.shape else vec
        if vec.ndim != 1:
            raise InputError(f"{where}: expected a 1-D vector of dosages, got shape {tuple(vec.shape)}.")
        vec = vec.astype(np.float32)
    elif low.endswith((".csv", ".tsv", ".txt")):
        vec = _read_snp_csv(source, subject_id, where)
    elif is_plink:
        bed = read_plink_bed(source)
        if subject_id not in bed:
            raise InputError(f"{where}: subject id not found among the IIDs of '{bed.prefix}.fam'.")
        vec = bed.genotypes(subject_id)
    else:
        raise InputError(f"{where}: unsupported SNP file type; use .npy, .csv/.tsv/.txt or PLINK .bed/.bim/.fam.")
    vec = np.where(vec == MISSING_SNP_CODE, np.nan, vec).astype(np.float32)
    if np.isinf(vec).any():
        raise InputError(
            f"{where}: {int(np.isinf(vec).sum())} infinite value(s), the first at position "
            f"{int(np.flatnonzero(np.isinf(vec))[0])}: codes are 0, 1, 2 or missing."
        )
    if expected_length is not None and vec.shape[0] != expected_length:
        raise InputError(f"{where} has {vec.shape[0]} SNPs, expected {expected_length} (config snp_features).")
    finite = vec[np.isfinite(vec)]
    bad = finite[~np.isin(finite, (0.0, 1.0, 2.0))]
    if bad.size:
        first = int(np.flatnonzero(np.isfinite(vec) & ~np.isin(vec, (0.0, 1.0, 2.0)))[0])
        raise InputError(
            f"{where}: SNP index {first} holds {vec[first]:g}, not a genotype code: codes are 0, 1, 2, or missing "
            f"as {MISSING_SNP_CODE}, NaN or empty ({bad.size} such value(s): {sorted(set(bad.tolist()))[:5]})."
        )
    return vec


def _read_snp_csv(source: str, subject_id: str, where: str) -> np.ndarray:
    delim = "\t" if source.lower().endswith(".tsv") else ","
    try:
        with open(source, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, delimiter=delim) if any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise InputError(f"{where} is not a text file (undecodable byte at offset {e.start}).") from e
    except csv.Error as e:
        raise InputError(f"{where} is not valid CSV: {e}.") from e
    if not rows:
        raise InputError(f"{where} holds no values.")
    first = [c.strip() for c in rows[0]]
    id_col = next((i for i, c in enumerate(first) if c.lower() in _ID_COLUMNS), None)
    if id_col is not None:  # genotype table: header with an id column, one row per subject
        for r in rows[1:]:
            if len(r) > id_col and r[id_col].strip() == subject_id:
                if len(r) != len(first):
                    raise InputError(f"{where}: the subject's row has {len(r)} fields, the header {len(first)}.")
                return _parse_snp_tokens([c for i, c in enumerate(r) if i != id_col], where)
        raise InputError(f"{where}: no row with {first[id_col]} == '{subject_id}'.")
    numeric = all(_is_missing(c) or _is_number(c) for c in first)
    data = rows if numeric or len(rows) == 1 else rows[1:]  # optional header line of SNP names
    if len(data) != 1:
        raise InputError(f"{where}: expected one row of SNP values (or a table with a subject_id column).")
    return _parse_snp_tokens(data[0], where)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def _where(rec: Mapping[str, Any], manifest: str | None = None) -> str:
    line = rec.get("manifest_line")
    at = f"manifest {manifest} line {line}, " if manifest and line else (f"manifest line {line}, " if line else "")
    return f"{at}subject '{rec.get('subject_id', '?')}'"


def validate_records(
    records: Sequence[Mapping[str, Any]],
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    snp_features: int | None = None,
    clinical: ClinicalPreprocessor | None = None,
    manifest: str | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> None:
    """Check every subject before any compute: each image decoded in full (:func:`check_image_file`), the SNP vector
    (length, codes), the clinical values (numbers, ranges). The first problem is one :class:`InputError` naming the
    manifest line, the subject and the file or column."""
    for rec in records:
        where = _where(rec, manifest)
        for m in ("mri", "pet"):
            if m in modalities:
                check_image_file(rec[m], where, what=m.upper(), max_image_gib=max_image_gib)
        if "snp" in modalities:
            read_snp(rec["snp"], rec["subject_id"], snp_features)
        if "clinical" in modalities and clinical is not None:
            clinical.parse(rec["clinical_raw"], where + ": ")


def stratified_split(
    records: Sequence[Mapping[str, Any]], val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """
    Split subjects into ``training`` / ``validation`` / ``test`` per class with a seeded permutation.

    Every class with enough subjects contributes ``round(n * fraction)`` (at least one) subjects to each held-out
    split; the result depends only on the subject ids, labels and seed, not on the manifest row order. Records that
    carry a ``split`` (the manifest's ``split`` column) are put where it says instead.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise InputError(
            f"config ids val_fraction and test_fraction are {val_fraction} and {test_fraction}: expected values in "
            "[0, 1) with a sum below 1."
        )
    out: dict[str, list[dict[str, Any]]] = {"training": [], "validation": [], "test": []}
    if any("split" in r for r in records):
        for r in records:
            out[r["split"]].append(dict(r))
        return out
    rng = np.random.default_rng(seed)
    for label in sorted({int(r["label"]) for r in records}):
        group = sorted((dict(r) for r in records if int(r["label"]) == label), key=lambda r: r["subject_id"])
        group = [group[i] for i in rng.permutation(len(group))]
        n = len(group)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 3 else 0
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 and n - n_val >= 3 else 0
        out["validation"] += group[:n_val]
        out["test"] += group[n_val : n_val + n_test]
        out["training"] += group[n_val + n_test :]
    for v in out.values():
        v.sort(key=lambda r: r["subject_id"])
    return out


class ClinicalPreprocessor:
    """
    Clinical-variable encoding fitted on the training split only.

    Numeric columns: missing -> training mean, then standardised with the training mean/std.
    Categorical columns: missing -> training mode; two levels -> one 0/1 column, more -> one-hot over the
    training levels (sorted). A level never seen in training is an error.

    Args:
        numeric: numeric column names.
        categorical: categorical column names.
        ranges: optional valid ``[low, high]`` per numeric column (inclusive): a value outside is an input error
            (a missing-value code such as ADNI's -4 must not be read as a score). Checked only, not saved.
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        ranges: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.numeric = [str(c) for c in numeric]
        self.categorical = [str(c) for c in categorical]
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise InputError(
                f"config ids clinical_numeric and clinical_categorical both list {sorted(overlap)}: a column is "
                "either numeric or categorical."
            )
        self.ranges = {str(k): (float(v[0]), float(v[1])) for k, v in dict(ranges or {}).items()}
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.levels: dict[str, list[str]] = {}
        self.mode: dict[str, str] = {}
        self.fitted = False

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def out_features(self) -> int:
        if not self.fitted:
            raise RuntimeError("ClinicalPreprocessor is not fitted.")
        return len(self.numeric) + sum(1 if len(v) <= 2 else len(v) for v in self.levels.values())

    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric)
        for c in self.categorical:
            lv = self.levels[c]
            names += [f"{c}={lv[-1]}"] if len(lv) <= 2 else [f"{c}={v}" for v in lv]
        return names

    def parse(self, raw: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Raw strings -> floats (NaN missing) / category strings (None missing); unparsable, non-finite and
        out-of-range numbers are errors."""
        out: dict[str, Any] = {}
        for c in self.numeric:
            if c not in raw:
                raise InputError(f"{where}clinical column '{c}' is missing.")
            v = raw[c]
            if _is_missing(v):
                out[c] = float("nan")
                continue
            try:
                out[c] = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{where}clinical column '{c}': value '{v}' is not a number.") from None
            if not math.isfinite(out[c]):
                raise InputError(f"{where}clinical column '{c}': value '{v}' is not finite.")
            if c in self.ranges and not self.ranges[c][0] <= out[c] <= self.ranges[c][1]:
                lo, hi = self.ranges[c]
                raise InputError(
                    f"{where}clinical column '{c}' is {v}, outside its valid range [{lo:g}, {hi:g}] (config "
                    "clinical_ranges): leave a missing value empty or NA rather than coding it as a number such as -4."
                )
        for c in self.categorical:
            if c not in raw:
                raise InputError(f"{where}clinical column '{c}' is missing.")
            v = raw[c]
            out[c] = None if _is_missing(v) else str(v).strip()
        return out

    def fit(self, raws: Sequence[Mapping[str, Any]]) -> "ClinicalPreprocessor":
        if not raws:
            raise InputError("The training split is empty: the clinical preprocessing cannot be fitted.")
        parsed = [self.parse(r, f"training subject {i}: ") for i, r in enumerate(raws)]
        for c in self.numeric:
            vals = np.array([p[c] for p in parsed], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                raise InputError(f"clinical column '{c}' has no value in the training split: fill it or drop it.")
            self.mean[c] = float(vals.mean())
            std = float(vals.std())
            self.std[c] = std if std > 1e-8 else 1.0
        for c in self.categorical:
            vals = [p[c] for p in parsed if p[c] is not None]
            if not vals:
                raise InputError(f"clinical column '{c}' has no value in the training split: fill it or drop it.")
            self.levels[c] = sorted(set(vals))
            counts = {v: vals.count(v) for v in self.levels[c]}
            self.mode[c] = max(self.levels[c], key=lambda v: (counts[v], v))
        self.fitted = True
        return self

    def __call__(self, raw: Mapping[str, Any], where: str = "") -> np.ndarray:
        """Raw row -> encoded ``(out_features,)`` float32."""
        if not self.fitted:
            raise RuntimeError("ClinicalPreprocessor is not fitted.")
        p = self.parse(raw, where)
        out: list[float] = []
        for c in self.numeric:
            v = p[c] if math.isfinite(p[c]) else self.mean[c]
            out.append((v - self.mean[c]) / self.std[c])
        for c in self.categorical:
            v = p[c] if p[c] is not None else self.mode[c]
            lv = self.levels[c]
            if v not in lv:
                raise InputError(
                    f"{where}clinical column '{c}' has level '{v}', never seen in the training split {lv}: the "
                    "encoding has no column for it; recode it to a training level or leave it empty (missing)."
                )
            out += [float(v == lv[-1])] if len(lv) <= 2 else [float(v == x) for x in lv]
        return np.asarray(out, dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("numeric", "categorical", "mean", "std", "levels", "mode", "fitted")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in ("numeric", "categorical", "mean", "std", "levels", "mode", "fitted"):
            setattr(self, k, state[k])


class SNPImputer:
    """Per-locus mean dosage of the training split, used to fill missing genotypes."""

    def __init__(self, n_snps: int) -> None:
        self.n_snps = int(n_snps)
        self.mean: np.ndarray | None = None

    def fit(self, vectors: Sequence[np.ndarray]) -> "SNPImputer":
        if not len(vectors):
            raise InputError("The training split is empty: the SNP imputation cannot be fitted.")
        stack = np.stack([np.asarray(v, np.float64) for v in vectors])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # loci missing in every training subject
            mean = np.nanmean(np.where(np.isfinite(stack), stack, np.nan), axis=0) if stack.size else stack
        self.mean = np.nan_to_num(mean, nan=0.0).astype(np.float32)  # loci missing in all training subjects -> 0
        return self

    def __call__(self, vec: np.ndarray) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("SNPImputer is not fitted.")
        v = np.asarray(vec, np.float32)
        return np.where(np.isfinite(v), v, self.mean).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"n_snps": self.n_snps, "mean": None if self.mean is None else [round(float(x), 6) for x in self.mean]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.n_snps = int(state["n_snps"])
        self.mean = None if state["mean"] is None else np.asarray(state["mean"], np.float32)


_FORMAT = "multiomic-preprocessing/2"


class FeaturePreprocessor:
    """
    The non-imaging preprocessing of a bundle: clinical encoding and SNP imputation, fitted on the training split,
    saved as JSON beside the weights (with the subject ids of the training and validation splits, so that an
    evaluation can prove its subjects were held out) and loaded for evaluation and inference.

    Args:
        clinical_numeric: numeric clinical columns.
        clinical_categorical: categorical clinical columns.
        snp_features: SNP vector length.
        clinical_features: the network's clinical input width; fitting checks the encoding produces it.
        modalities: enabled modalities.
    """

    def __init__(
        self,
        clinical_numeric: Sequence[str] = (),
        clinical_categorical: Sequence[str] = (),
        snp_features: int = 15000,
        clinical_features: int | None = None,
        modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    ) -> None:
        self.modalities = [str(m) for m in modalities]
        self.clinical = ClinicalPreprocessor(clinical_numeric, clinical_categorical)
        self.snp = SNPImputer(snp_features)
        self.clinical_features = clinical_features
        self.subjects: dict[str, list[str]] = {"training": [], "validation": []}
        self.path: str | None = None  # the file it was loaded from

    def fit(
        self,
        records: Sequence[Mapping[str, Any]],
        save_path: str | None = None,
        validation: Sequence[Mapping[str, Any]] = (),
    ) -> "FeaturePreprocessor":
        """
        Fit on the training records (as returned by :func:`read_manifest`) and record their subject ids and those
        of ``validation``, whose encoding is then checked (a category never seen in training stops here, before
        any compute). ``save_path``: also write the result there.
        """
        if "clinical" in self.modalities:
            self.clinical.fit([r["clinical_raw"] for r in records])
            if self.clinical_features is not None and self.clinical.out_features != self.clinical_features:
                raise InputError(
                    f"config id 'clinical_features' is {self.clinical_features}, but the clinical encoding fitted on "
                    f"the training split has {self.clinical.out_features} features {self.clinical.feature_names}: "
                    f"set --clinical_features {self.clinical.out_features}."
                )
        if "snp" in self.modalities:
            self.snp.fit([read_snp(r["snp"], r["subject_id"], self.snp.n_snps) for r in records])
        self.subjects = {
            "training": sorted(str(r["subject_id"]) for r in records),
            "validation": sorted(str(r["subject_id"]) for r in validation),
        }
        check_encodable(validation, self)
        if save_path:
            self.save(save_path)
        return self

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Record -> ``{"snp": (n_snps,), "clinical": (out_features,)}`` for the enabled modalities."""
        where = _where(record) + ": "
        out: dict[str, np.ndarray] = {}
        if "snp" in self.modalities:
            out["snp"] = self.snp(read_snp(record["snp"], record["subject_id"], self.snp.n_snps))
        if "clinical" in self.modalities:
            out["clinical"] = self.clinical(record["clinical_raw"], where)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "modalities": self.modalities,
            "clinical_features": self.clinical_features,
            "clinical": self.clinical.state_dict(),
            "snp": self.snp.state_dict(),
            "subjects": self.subjects,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.modalities = list(state["modalities"])
        self.clinical_features = state["clinical_features"]
        self.clinical.load_state_dict(state["clinical"])
        self.snp.load_state_dict(state["snp"])
        self.subjects = {k: list(state["subjects"][k]) for k in ("training", "validation")}

    def save(self, path: str) -> str:
        """Write the state as JSON, atomically (never a half-written file beside the weights)."""
        write_json(path, self.state_dict(), indent=None)
        return path

    @classmethod
    def load(
        cls,
        path: str,
        modalities: Sequence[str] | None = None,
        clinical_numeric: Sequence[str] | None = None,
        clinical_categorical: Sequence[str] | None = None,
        snp_features: int | None = None,
        clinical_features: int | None = None,
    ) -> "FeaturePreprocessor":
        """
        Load a saved preprocessing and check it fits this config: ``modalities`` (when given) must be covered by the
        saved ones, and the clinical columns, ``snp_features`` and ``clinical_features`` (when given) must be those
        it was fitted with.
        """
        if not os.path.isfile(path):
            raise MissingInputError(
                f"The fitted preprocessing {path} does not exist: training writes it beside model.pt; train first, "
                "or point --ckpt_dir (or --preprocessing_file) at the folder of a trained model."
            )
        state = read_json(path, what="fitted preprocessing")
        obj = cls()
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise InputError(
                f"The fitted preprocessing {path} is not a '{_FORMAT}' file (found {found!r}): it was not written by "
                "this version of the bundle; retrain, or use the bundle version that wrote it."
            )
        try:
            obj.load_state_dict(state)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(
                f"The fitted preprocessing {path} is incomplete or damaged (bad entry {e}): retrain."
            ) from e
        obj.path = path
        if modalities is not None:
            lacking = [m for m in ("snp", "clinical") if m in modalities and m not in obj.modalities]
            if lacking:
                raise InputError(
                    f"The fitted preprocessing {path} was fitted without modalities {lacking}, which this config "
                    f"enables: use the modalities the model was trained with ({obj.modalities})."
                )
            obj.modalities = [m for m in obj.modalities if m in modalities]
        given = {  # config value, saved value, the modality it belongs to
            "clinical_numeric": (clinical_numeric, obj.clinical.numeric, "clinical"),
            "clinical_categorical": (clinical_categorical, obj.clinical.categorical, "clinical"),
            "clinical_features": (clinical_features, obj.clinical_features, "clinical"),
            "snp_features": (snp_features, obj.snp.n_snps, "snp"),
        }
        for key, (value, saved, modality) in given.items():
            value = list(value) if isinstance(value, (list, tuple)) else value
            if value is not None and modality in obj.modalities and value != saved:
                raise InputError(
                    f"The fitted preprocessing {path} was made with {key} {saved}, this config has {value}: use the "
                    "settings the model was trained with (e.g. the same --clinical_set), or the --ckpt_dir of a model "
                    "trained with these."
                )
        return obj


def check_encodable(records: Sequence[Mapping[str, Any]], preprocessing: FeaturePreprocessor) -> list[dict[str, Any]]:
    """Encode every record's clinical row once (cheap) so that a category never seen in training stops the run
    before any compute, naming the manifest line; returns the records."""
    if "clinical" in preprocessing.modalities:
        for rec in records:
            preprocessing.clinical(rec["clinical_raw"], _where(rec) + ": ")
    return [dict(r) for r in records]


def select_split(
    datalist: Mapping[str, Sequence[Mapping[str, Any]]],
    split: str = "test",
    preprocessing: FeaturePreprocessor | None = None,
) -> list[dict[str, Any]]:
    """
    The subjects an evaluation scores: ``datalist[split]``, ``test`` by default. An empty split stops the
    evaluation, saying how to give one; ``validation`` must be asked for knowingly (it picked ``model.pt``).
    With the fitted ``preprocessing`` of the model, a subject it was trained on (or, for ``test``, selected with)
    stops the evaluation: its splits were not the model's.
    """
    if split not in ("test", "validation"):
        raise InputError(
            f"config id 'eval_split' is {split!r}: expected 'test' (the held-out subjects) or 'validation'."
        )
    items = list(datalist.get(split, []))
    if not items:
        raise InputError(
            f"The cohort has no {split} subjects, so there is nothing to evaluate: give a test split (a manifest "
            "'split' column with training / validation / test, or --test_fraction > 0 with at least 3 subjects per "
            "class, both at training and at evaluation), or evaluate the validation split knowingly with "
            "--eval_split validation (it chose model.pt, so its scores are optimistic)."
        )
    if preprocessing is not None:
        used = set(preprocessing.subjects["training"])
        if split == "test":
            used |= set(preprocessing.subjects["validation"])
        seen = sorted(str(r["subject_id"]) for r in items if str(r["subject_id"]) in used)
        if seen:
            raise InputError(
                f"{len(seen)} of the {len(items)} {split} subjects (e.g. {seen[:3]}) were used to train or select the "
                f"model (listed in {preprocessing.path or 'its fitted preprocessing'}): evaluate with the manifest, "
                "seed, val_fraction and test_fraction (or split column) the model was trained with."
            )
        check_encodable(items, preprocessing)
    if split == "validation":
        logger.warning("evaluating the validation split: it selected model.pt, so its scores are optimistic")
    return [dict(r) for r in items]


def check_resumed_preprocessing(
    preprocessing: FeaturePreprocessor,
    path: str,
    ckpt_dir: str,
    resume: bool = True,
    resume_file: str = "checkpoint_last.pt",
) -> None:
    """A resumed run refits the preprocessing on its training split: it must be the one the checkpoint was trained
    with (the saved ``path``), or the resumed model would pair with another split and encoding."""
    if not (resume and os.path.isfile(os.path.join(ckpt_dir, resume_file)) and os.path.isfile(path)):
        return
    saved = read_json(path, what="fitted preprocessing")
    now = json.loads(json.dumps(preprocessing.state_dict()))  # the same JSON types as the saved file
    if saved != now:
        parts = [k for k in now if not isinstance(saved, Mapping) or saved.get(k) != now[k]]
        raise InputError(
            f"This run would resume {os.path.join(ckpt_dir, resume_file)}, but its training split or clinical / SNP "
            f"preprocessing differs from the one the checkpoint was trained with ({path}: {', '.join(parts)} differ): "
            "resume with the same manifest, seed, fractions and clinical settings, or start a new run in another "
            "--ckpt_dir (or --overwrite true)."
        )


def load_cohort(
    dataset_dir: str,
    manifest: str = "manifest.csv",
    clinical_columns: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    require_label: bool = True,
) -> list[dict[str, Any]]:
    """Read ``<dataset_dir>/<manifest>`` with a clear error when the folder is missing, empty or lacks it."""
    layout = "expected <dataset_dir>/" + manifest + " with columns subject_id, mri, pet, snp, <clinical>, label"
    check_folder(dataset_dir, "dataset_dir", layout)
    if not os.listdir(dataset_dir):
        raise MissingInputError(f"dataset_dir '{dataset_dir}' is empty ({layout}).")
    path = manifest if os.path.isabs(manifest) else os.path.join(dataset_dir, manifest)
    if not os.path.isfile(path):
        raise MissingInputError(f"dataset_dir '{dataset_dir}' has no manifest '{path}' ({layout}).")
    return read_manifest(path, clinical_columns, modalities, class_names, require_label)


def cohort_datalist(
    dataset_dir: str,
    manifest: str = "manifest.csv",
    clinical_numeric: Sequence[str] = (),
    clinical_categorical: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    snp_features: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    require_label: bool = True,
    demo_dir: str | None = None,
    demo_kwargs: Mapping[str, Any] | None = None,
    clinical_ranges: Mapping[str, Sequence[float]] | None = None,
    check_splits: Sequence[str] | None = None,
    max_image_gib: float = MAX_IMAGE_GIB,
) -> dict[str, list[dict[str, Any]]]:
    """
    A bundle's datalist: write the synthetic demo cohort when ``dataset_dir`` is the (empty) ``demo_dir``, read and
    check the manifest (every row, every file present) and split by subject, then decode and check the files of the
    subjects a run uses (``check_splits``; all when None) before any compute.

    Returns:
        ``{"training", "validation", "test", "all"}`` lists of records (``all`` in manifest order). Without
        ``require_label`` (inference) every subject is in ``all`` and the splits are empty.

    Raises:
        InputError: any problem with the manifest or a subject's files (naming the line, subject and file), and an
            empty training or validation split.
    """
    unknown = [m for m in modalities if m not in ("mri", "pet", "snp", "clinical")]
    if unknown or not modalities:
        raise InputError(
            f"config id 'modalities' is {list(modalities)}: expected a non-empty subset of "
            "['mri', 'pet', 'snp', 'clinical']."
        )
    if demo_dir is not None:
        from shared.multiomic.phantom import prepare_dataset

        prepare_dataset(dataset_dir, demo_dir, **dict(demo_kwargs or {}))
    columns = list(clinical_numeric) + list(clinical_categorical)
    records = load_cohort(dataset_dir, manifest, columns, modalities, class_names, require_label)
    path = manifest if os.path.isabs(manifest) else os.path.join(dataset_dir, manifest)
    clinical = ClinicalPreprocessor(clinical_numeric, clinical_categorical, clinical_ranges)
    if "clinical" in modalities:  # every row, used by this run or not: a typo anywhere is a typo to fix now
        for rec in records:
            clinical.parse(rec["clinical_raw"], _where(rec, path) + ": ")
    if not require_label:
        validate_records(records, modalities, snp_features, clinical, path, max_image_gib)
        return {"training": [], "validation": [], "test": [], "all": records}
    out: dict[str, list[dict[str, Any]]] = dict(stratified_split(records, val_fraction, test_fraction, seed))
    how = "a manifest 'split' column" if any("split" in r for r in records) else "val_fraction / test_fraction"
    used = list(check_splits) if check_splits is not None else list(out)
    for name in ("training", "validation"):
        if name in used and not out[name]:
            raise InputError(
                f"The {name} split of {path} is empty ({len(records)} subjects, split by {how}): training needs "
                "subjects in both training and validation (with drawn splits, at least 3 subjects per class)."
            )
    checked = {r["subject_id"] for name in used for r in out.get(name, [])}
    checked_records = [r for r in records if r["subject_id"] in checked]
    validate_records(checked_records, modalities, snp_features, clinical, path, max_image_gib)
    sizes = ", ".join(f"{len(out[k])} {k}" for k in ("training", "validation", "test"))
    logger.info(f"{path}: {len(records)} subjects, split by {how}: {sizes}; {len(checked)} checked")
    if not out["test"] and "test" not in used:
        logger.warning("no test split: evaluation will need one (see test_fraction or the manifest's split column)")
    out["all"] = records
    return out


# not MONAI's PrepareBatchExtraInput, which needs an ``image`` and every extra key in each batch: a run on SNP and
# clinical data alone has no image
class MultiomicPrepareBatch:
    """
    ``prepare_batch`` for MONAI engines: ``image`` (when present) is the network input, ``label`` the target and the
    enabled non-imaging vectors go in as keyword arguments (``snp=``, ``clinical=``).

    Args:
        extra_keys: batch keys passed as keyword arguments of the same name.
    """

    def __init__(self, extra_keys: Sequence[str] = ("snp", "clinical")) -> None:
        self.extra_keys = [str(k) for k in extra_keys]

    def __call__(
        self,
        batchdata: dict[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple, dict[str, torch.Tensor]]:
        def _to(x: Any) -> Any:
            return x.to(device=device, non_blocking=non_blocking, **kwargs) if isinstance(x, torch.Tensor) else x

        image = _to(batchdata["image"]) if "image" in batchdata else None
        label = _to(batchdata["label"]) if "label" in batchdata else None
        extra = {k: _to(batchdata[k]) for k in self.extra_keys if k in batchdata}
        return image, label, (), extra
