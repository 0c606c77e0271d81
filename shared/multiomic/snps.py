# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""A subject's genotype vector from the manifest's ``snp`` cell: ``.npy``, CSV or PLINK ``.bed`` (codes 0/1/2, the
documented missing codes, anything else refused)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

from shared.errors import InputError, MissingInputError
from shared.multiomic.manifest import is_missing
from shared.multiomic.plink import read_plink_bed

__all__ = ["read_snp"]


MISSING_SNP_CODE = -1  # PLINK's and most tables' missing genotype; any other negative code is an error


_ID_COLUMNS = ("subject_id", "iid")


def _parse_snp_tokens(tokens: Sequence[str], where: str) -> np.ndarray:
    out = np.empty(len(tokens), dtype=np.float32)
    for j, t in enumerate(tokens):
        if is_missing(t):
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
    numeric = all(is_missing(c) or _is_number(c) for c in first)
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
