# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Reader and writer for PLINK 1 binary genotype sets (``.bed`` / ``.bim`` / ``.fam``).

Format (PLINK 1.9 documentation, "PLINK 1 binary"): the ``.bed`` file starts with the magic bytes
``0x6C 0x1B`` and the mode byte ``0x01`` (SNP-major). Then, for every variant of the ``.bim`` file, in order,
``ceil(n_samples / 4)`` bytes hold the genotypes of the ``.fam`` samples, four per byte, lowest bit pair first.
Two-bit codes, read as ``(byte >> 2 * k) & 3``: ``0`` homozygous first allele (A1 of the ``.bim``), ``1`` missing,
``2`` heterozygous, ``3`` homozygous second allele. Dosages here count A1 alleles: 2, NaN, 1, 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from shared.atomic import atomic_write
from shared.errors import InputError, MissingInputError

__all__ = ["PlinkBed", "read_plink_bed", "write_plink_bed", "plink_prefix"]

_MAGIC = bytes([0x6C, 0x1B])
_SNP_MAJOR = 0x01
# two-bit code -> A1 allele count (NaN = missing)
_CODE_TO_DOSAGE = np.array([2.0, np.nan, 1.0, 0.0], dtype=np.float32)


def plink_prefix(path: str) -> str:
    """``x.bed`` / ``x.bim`` / ``x.fam`` / ``x`` -> ``x``."""
    base, ext = os.path.splitext(str(path))
    return base if ext.lower() in (".bed", ".bim", ".fam") else str(path)


class PlinkBed:
    """
    A PLINK 1 binary set, memory-mapped; genotypes are decoded one sample at a time.

    Args:
        path: the ``.bed`` path or the common prefix.

    Raises:
        MissingInputError: when one of the three files is missing.
        InputError: on unreadable text files, a bad magic number, a sample-major file, a size that does not match
            ``.bim`` x ``.fam`` (a truncated file), or repeated sample ids.
    """

    def __init__(self, path: str) -> None:
        prefix = plink_prefix(path)
        self.prefix = prefix
        for ext in (".bed", ".bim", ".fam"):
            if not os.path.isfile(prefix + ext):
                raise MissingInputError(
                    f"PLINK set '{prefix}': missing file '{prefix + ext}' (a set is .bed + .bim + .fam)."
                )
        self.sample_ids: list[str] = [parts[1] for parts in _text_rows(prefix + ".fam", 2, "'FID IID ...'")]
        if not self.sample_ids:
            raise InputError(f"PLINK file '{prefix}.fam' lists no sample.")
        repeated = sorted({s for s in self.sample_ids if self.sample_ids.count(s) > 1})
        if repeated:
            raise InputError(f"PLINK file '{prefix}.fam': sample ids (IID) must be unique, repeated: {repeated[:5]}.")
        bim = _text_rows(prefix + ".bim", 6, "6 columns 'chr id cM position A1 A2'")
        self.snp_ids: list[str] = [parts[1] for parts in bim]
        self.alleles: list[tuple[str, str]] = [(parts[4], parts[5]) for parts in bim]
        self.n_samples = len(self.sample_ids)
        self.n_snps = len(self.snp_ids)
        self.bytes_per_snp = (self.n_samples + 3) // 4
        with open(prefix + ".bed", "rb") as f:
            head = f.read(3)
        if len(head) < 3 or head[:2] != _MAGIC:
            raise InputError(
                f"PLINK file '{prefix}.bed' is not a PLINK 1 .bed file (magic bytes {head[:2].hex() or 'none'}, "
                "expected 6c1b)."
            )
        if head[2] != _SNP_MAJOR:
            raise InputError(
                f"PLINK file '{prefix}.bed' has mode byte {head[2]:#04x}: only SNP-major (0x01) files are supported "
                "(convert with plink --make-bed)."
            )
        expected = 3 + self.n_snps * self.bytes_per_snp
        size = os.path.getsize(prefix + ".bed")
        if size != expected:
            raise InputError(
                f"PLINK file '{prefix}.bed' has {size} bytes, expected {expected} for {self.n_snps} variants x "
                f"{self.n_samples} samples ({prefix}.bim x {prefix}.fam): truncated, or not the set's .bed."
            )
        self._index = {s: i for i, s in enumerate(self.sample_ids)}
        self._bed = np.memmap(
            prefix + ".bed", dtype=np.uint8, mode="r", offset=3, shape=(self.n_snps, self.bytes_per_snp)
        )

    def __contains__(self, sample_id: str) -> bool:
        return str(sample_id) in self._index

    def genotypes(self, sample_id: str) -> np.ndarray:
        """A1 allele dosages ``(n_snps,)`` float32 in {0, 1, 2, NaN} of one sample (IID)."""
        if str(sample_id) not in self._index:
            raise KeyError(f"{self.prefix}.fam: sample id '{sample_id}' not found.")
        i = self._index[str(sample_id)]
        codes = (np.asarray(self._bed[:, i // 4]) >> (2 * (i % 4))) & 0b11
        return _CODE_TO_DOSAGE[codes]


def _text_rows(path: str, min_columns: int, expected: str) -> list[list[str]]:
    """The whitespace-separated rows of a ``.fam`` / ``.bim`` file (blank lines skipped), each with at least
    ``min_columns`` fields."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < min_columns:
                    raise InputError(f"PLINK file '{path}' line {i}: expected {expected}, got '{line.strip()}'.")
                rows.append(parts)
    except UnicodeDecodeError as e:
        raise InputError(f"PLINK file '{path}' is not a text file (undecodable byte at offset {e.start}).") from e
    return rows


@lru_cache(maxsize=8)
def _cached(prefix: str, mtime: float) -> PlinkBed:
    return PlinkBed(prefix)


def read_plink_bed(path: str) -> PlinkBed:
    """Open a PLINK set once per process (cached on path and modification time)."""
    prefix = plink_prefix(path)
    mtime = os.path.getmtime(prefix + ".bed") if os.path.isfile(prefix + ".bed") else -1.0
    return _cached(prefix, mtime)


def write_plink_bed(
    path: str,
    dosages: np.ndarray,
    sample_ids: Sequence[str],
    snp_ids: Sequence[str] | None = None,
    alleles: Sequence[tuple[str, str]] | None = None,
    chromosomes: Sequence[str] | None = None,
    positions: Sequence[int] | None = None,
    sexes: Sequence[int] | None = None,
) -> str:
    """
    Write a SNP-major PLINK 1 binary set.

    Args:
        path: ``.bed`` path or prefix.
        dosages: ``(n_samples, n_snps)`` A1 allele counts in {0, 1, 2}; NaN or negative = missing.
        sample_ids: IIDs (also used as FIDs).
        snp_ids, alleles, chromosomes, positions: ``.bim`` columns (defaults: rs-like ids, A/G, chr 1, 1..n).
        sexes: ``.fam`` sex codes (1 male, 2 female, 0 unknown).

    Returns:
        the prefix written.
    """
    prefix = plink_prefix(path)
    d = np.asarray(dosages, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != len(sample_ids):
        raise ValueError(f"dosages must be (n_samples={len(sample_ids)}, n_snps), got {d.shape}.")
    n, m = d.shape
    missing = ~np.isfinite(d) | (d < 0)
    valid = np.where(missing, 0, d)
    if not np.isin(valid, (0, 1, 2)).all():
        raise ValueError("dosages must be 0, 1, 2 or missing.")
    codes = np.select([missing, valid == 2, valid == 1], [1, 0, 2], default=3).astype(np.uint8)  # (n, m)
    pad = (-n) % 4
    codes = np.concatenate([codes, np.zeros((pad, m), np.uint8)], axis=0)  # padding bits are zero
    codes = codes.T.reshape(m, -1, 4)  # (m, bytes, 4)
    packed = codes[..., 0] | (codes[..., 1] << 2) | (codes[..., 2] << 4) | (codes[..., 3] << 6)
    with atomic_write(prefix + ".bed", "wb") as f:
        f.write(_MAGIC + bytes([_SNP_MAJOR]))
        f.write(packed.astype(np.uint8).tobytes())
    snp_ids = list(snp_ids) if snp_ids is not None else [f"snp{j + 1}" for j in range(m)]
    alleles = list(alleles) if alleles is not None else [("A", "G")] * m
    chromosomes = list(chromosomes) if chromosomes is not None else ["1"] * m
    positions = list(positions) if positions is not None else list(range(1, m + 1))
    with atomic_write(prefix + ".bim", "w") as f:
        for j in range(m):
            f.write(f"{chromosomes[j]}\t{snp_ids[j]}\t0\t{positions[j]}\t{alleles[j][0]}\t{alleles[j][1]}\n")
    sexes = list(sexes) if sexes is not None else [0] * n
    with atomic_write(prefix + ".fam", "w") as f:
        for i, s in enumerate(sample_ids):
            f.write(f"{s} {s} 0 0 {sexes[i]} -9\n")
    return prefix
