# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Resized

from shared.multiomic.transforms import EncodeMultiomicd, MidSagittalSliced


def _volume():
    """7 (x) x 5 (y) x 4 (z) with value = x index, so a sagittal slice is constant."""
    return np.broadcast_to(np.arange(7, dtype=np.float32)[:, None, None], (7, 5, 4)).copy()


@pytest.mark.parametrize("suffix, cls", [(".nii.gz", nib.Nifti1Image), (".hdr", nib.AnalyzeImage)])
def test_mid_sagittal_after_ras(tmp_path, suffix, cls):
    vol = _volume()
    vol[:, 0, 0] += 100  # marks posterior-inferior in RAS (y=0, z=0 with the identity affine)
    path = str(tmp_path / f"v{suffix}")
    # stored LAS (x flipped): after RAS orientation x index i holds the stored x index 6 - i
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    nib.save(cls(vol, affine), path)
    t = Compose(
        [
            LoadImaged("mri", reader="NibabelReader", image_only=True),
            EnsureChannelFirstd("mri"),
            Orientationd("mri", axcodes="RAS", labels=None),
            MidSagittalSliced("mri", slice_index=1),
            Resized("mri", (10, 8)),
        ]
    )
    out = t({"mri": path})["mri"]
    assert out.shape == (1, 10, 8)
    assert float(out[0, 5, 5]) == pytest.approx(5.0)  # RAS index 1 == stored x 5
    assert float(out[0, 0, 0]) > 50
    mid = Compose(t.transforms[:3] + (MidSagittalSliced("mri"),))({"mri": path})["mri"]
    assert mid.shape == (1, 5, 4) and float(mid[0, 2, 2]) == pytest.approx(3.0)


def test_mid_sagittal_errors():
    with pytest.raises(ValueError, match=r"has shape \(1, 5, 4\) after channel-first; a 3D volume"):
        MidSagittalSliced("mri")({"mri": torch.zeros(1, 5, 4)})
    with pytest.raises(ValueError, match=r"'slice_index' is 9, outside \[0, 7\)"):
        MidSagittalSliced("mri", slice_index=9)({"mri": torch.zeros(1, 7, 5, 4)})


def test_encode():
    class _Pre:
        def encode(self, rec):
            return {"snp": np.zeros(3), "clinical": np.ones(2)}

    d = EncodeMultiomicd(_Pre())({"snp": "x.npy", "clinical_raw": {"age": "1"}, "subject_id": "a"})
    assert d["snp"].dtype == torch.float32 and d["clinical"].shape == (2,) and "clinical_raw" not in d
