# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import os

import nibabel as nib
import numpy as np
import pytest

from shared.multiomic.cohort import load_cohort, validate_records
from shared.multiomic.phantom import (
    DEMO_CLINICAL_CATEGORICAL,
    DEMO_CLINICAL_NUMERIC,
    prepare_dataset,
    write_demo_cohort,
)
from shared.multiomic.preprocessing import FeaturePreprocessor
from shared.multiomic.snps import read_snp

COLS = list(DEMO_CLINICAL_NUMERIC) + list(DEMO_CLINICAL_CATEGORICAL)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("c") / "demo")
    write_demo_cohort(root, n_per_class=(3, 3, 3), n_snps=400, n_risk_loci=40, resolution=4, seed=1)
    return root


def test_cohort_layout_is_readable(cohort):
    recs = load_cohort(cohort, clinical_columns=COLS)
    assert [r["label"] for r in recs] == [0] * 3 + [1] * 3 + [2] * 3
    pre = FeaturePreprocessor(DEMO_CLINICAL_NUMERIC, DEMO_CLINICAL_CATEGORICAL, 400, clinical_features=8).fit(recs)
    validate_records(recs, snp_features=400, clinical=pre.clinical)
    assert os.path.isfile(os.path.join(cohort, "genotypes", "cohort.bed"))
    img = nib.load(recs[0]["mri"])
    assert img.ndim == 3 and np.allclose(np.diag(img.affine)[:3], 4.0)


def test_class_effects(cohort):
    recs = load_cohort(cohort, clinical_columns=COLS)
    # PET: posterior cingulate / precuneus uptake on the mid-sagittal plane drops from CN to AD
    x0, y0, z0 = np.round(np.linalg.inv(nib.load(recs[0]["pet"]).affine) @ [0, -58, 32, 1])[:3].astype(int)

    def pcc(r):
        return nib.load(r["pet"]).get_fdata()[x0, y0 - 2 : y0 + 3, z0 - 2 : z0 + 3].mean()

    cn = np.mean([pcc(r) for r in recs if r["label"] == 0])
    ad = np.mean([pcc(r) for r in recs if r["label"] == 2])
    assert ad < 0.85 * cn
    mmse = {
        c: np.mean([float(r["clinical_raw"]["mmse"]) for r in recs if r["label"] == c and r["clinical_raw"]["mmse"]])
        for c in (0, 2)
    }
    assert mmse[2] < mmse[0]
    # risk alleles: AD subjects carry more copies summed over all loci (the risk loci shift the total)
    tot = {
        c: np.nanmean([np.nansum(read_snp(r["snp"], r["subject_id"], 400)) for r in recs if r["label"] == c])
        for c in (0, 2)
    }
    assert tot[2] > tot[0]
    apoe4 = {
        c: [int(r["clinical_raw"]["apoe4"]) for r in recs if r["label"] == c and r["clinical_raw"]["apoe4"]]
        for c in (0, 2)
    }
    assert set(apoe4[0] + apoe4[2]) <= {0, 1, 2}


def test_prepare_dataset_writes_only_the_default(tmp_path):
    default = str(tmp_path / "bundle" / "data" / "demo")  # parents do not exist yet
    user = str(tmp_path / "mine")
    assert prepare_dataset(user, default) == user and not os.path.exists(user)  # a user folder is never written
    kw = dict(n_per_class=(1, 1, 1), n_snps=20, n_risk_loci=2, resolution=6)
    prepare_dataset(default, default, **kw)
    assert os.path.isfile(os.path.join(default, "manifest.csv"))
    mtime = os.path.getmtime(os.path.join(default, "manifest.csv"))
    prepare_dataset(default, default, **kw)  # not empty: left alone
    assert os.path.getmtime(os.path.join(default, "manifest.csv")) == mtime
    with pytest.raises(FileExistsError):
        write_demo_cohort(default, **kw)
    prepare_dataset(default, default, **dict(kw, n_snps=30))  # other settings: the demo cohort is rewritten
    assert len(open(os.path.join(default, "genotypes", "cohort.bim")).readlines()) == 30
    user = tmp_path / "mine"
    user.mkdir()
    (user / "manifest.csv").write_text("subject_id\n")
    assert prepare_dataset(str(user), str(user), **kw) == str(user)  # not empty, no demo marker: left alone
    assert (user / "manifest.csv").read_text() == "subject_id\n"
