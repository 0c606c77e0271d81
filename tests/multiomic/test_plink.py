# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import numpy as np
import pytest

from shared.multiomic.plink import PlinkBed, read_plink_bed, write_plink_bed


def test_byte_layout_matches_plink_spec(tmp_path):
    # four samples in one byte, lowest bit pair first: 2 -> 00, 1 -> 10, 0 -> 11, missing -> 01
    prefix = write_plink_bed(str(tmp_path / "g.bed"), np.array([[2.0], [1.0], [0.0], [np.nan]]), ["a", "b", "c", "d"])
    raw = open(prefix + ".bed", "rb").read()
    assert raw[:3] == bytes([0x6C, 0x1B, 0x01])
    assert raw[3:] == bytes([0b01_11_10_00])


def test_round_trip_with_padding_and_missing(tmp_path):
    rng = np.random.default_rng(0)
    dos = rng.integers(0, 3, (7, 13)).astype(float)  # 7 samples: the last byte of each SNP is padded
    dos[2, 4] = np.nan
    dos[6, 0] = -1
    ids = [f"S{i}" for i in range(7)]
    write_plink_bed(str(tmp_path / "cohort"), dos, ids)
    bed = PlinkBed(str(tmp_path / "cohort.bim"))
    assert (bed.n_samples, bed.n_snps, bed.bytes_per_snp) == (7, 13, 2)
    for i, sid in enumerate(ids):
        g = bed.genotypes(sid)
        expect = np.where(dos[i] < 0, np.nan, dos[i])
        np.testing.assert_array_equal(g, expect.astype(np.float32))
    assert read_plink_bed(str(tmp_path / "cohort")) is read_plink_bed(str(tmp_path / "cohort.bed"))
    with pytest.raises(KeyError, match="'nobody' not found"):
        bed.genotypes("nobody")


def test_bad_files(tmp_path):
    prefix = write_plink_bed(str(tmp_path / "g"), np.zeros((3, 4)), ["a", "b", "c"])
    raw = bytearray(open(prefix + ".bed", "rb").read())
    open(prefix + ".bed", "wb").write(bytes([0x00, 0x00, 0x01]) + raw[3:])
    with pytest.raises(ValueError, match="magic bytes"):
        PlinkBed(prefix)
    open(prefix + ".bed", "wb").write(bytes([0x6C, 0x1B, 0x00]) + raw[3:])
    with pytest.raises(ValueError, match="SNP-major"):
        PlinkBed(prefix)
    open(prefix + ".bed", "wb").write(bytes(raw[:-1]))
    with pytest.raises(ValueError, match="expected 7 for 4 variants x 3 samples"):
        PlinkBed(prefix)
    (tmp_path / "g.fam").unlink()
    with pytest.raises(FileNotFoundError, match="g.fam"):
        PlinkBed(prefix)
    with pytest.raises(ValueError, match="0, 1, 2 or missing"):
        write_plink_bed(str(tmp_path / "h"), np.full((1, 1), 3.0), ["a"])
