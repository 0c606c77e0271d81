# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from shared.spine.phantom import SACRUM, spine_phantom, write_spine_phantom_dataset


def test_phantom_anatomy():
    image, label, affine = spine_phantom(shape=(64, 64, 96), spacing=(2.0, 2.0, 2.0), num_vertebrae=5, seed=3)
    assert image.shape == label.shape == (64, 64, 96)
    levels = sorted(set(np.unique(label)) - {0, SACRUM})
    assert len(levels) == 5 and levels == list(range(levels[0], levels[0] + 5)) and 1 <= levels[0] <= 20
    # VerSe ids grow caudally, and RAS z grows superiorly: higher ids sit lower
    z = [ndimage.center_of_mass(label == lv)[2] for lv in levels]
    assert all(a > b for a, b in zip(z, z[1:]))
    # bone is brighter than the soft tissue around it
    assert image[label > 0].mean() > 200 > image[(label == 0) & (image > -500)].mean()
    assert np.allclose(np.diag(affine)[:3], 2.0)


def test_lumbar_field_has_the_landmarks_vertebrae_are_counted_by():
    """T11..L5 in view: ribs (bone, not labelled) leave T11 and T12 and slope down to L1 at most; below L5 lie the
    sacrum and, beside it, the iliac wings, whose crests reach up to L4."""
    image, label, _ = spine_phantom(shape=(64, 64, 96), spacing=(3.0, 3.0, 3.0), levels=(18, 24), seed=0)
    assert sorted(set(np.unique(label)) - {0}) == [*range(18, 25), SACRUM]
    z = {lv: ndimage.center_of_mass(label == lv)[2] for lv in (18, 19, 20, 24, SACRUM)}
    assert z[18] > z[19] > z[20] > z[24] > z[SACRUM]
    unlabelled_bone = (image > 500) & (label == 0)
    spine_x = ndimage.center_of_mass(label > 0)[0]
    lateral = np.abs(np.arange(64) - spine_x)[:, None, None] > 12  # beyond the vertebral bodies
    bone_z = np.nonzero((unlabelled_bone & lateral).any(axis=(0, 1)))[0]
    rib_levels = {int(label[..., k][label[..., k] > 0].max(initial=0)) for k in bone_z}
    assert {18, 19} & rib_levels and not {21, 22} & rib_levels  # ribs end by L1, iliac crests start at L4
    assert bone_z.min() < np.nonzero((label == SACRUM).any(axis=(0, 1)))[0].max()  # iliac wings by the sacrum


def test_levels_are_checked():
    with pytest.raises(ValueError, match="levels must be"):
        spine_phantom(shape=(16, 16, 16), levels=(20, 26))


def test_phantoms_vary_and_are_reproducible(tmp_path):
    a, b = spine_phantom(seed=1)[1], spine_phantom(seed=2)[1]
    assert not np.array_equal(a, b)
    assert np.array_equal(spine_phantom(seed=1)[1], a)
    write_spine_phantom_dataset(tmp_path, num_cases=2, shape=(32, 32, 48), spacing=(3.0, 3.0, 3.0), levels=(23, 24))
    img = nib.load(tmp_path / "images" / "spine_001.nii.gz")
    lbl = nib.load(tmp_path / "labels" / "spine_001.nii.gz")
    assert img.shape == lbl.shape == (32, 32, 48) and np.allclose(img.affine, lbl.affine)
    assert img.get_data_dtype() == np.int16 and np.asarray(lbl.dataobj).max() == SACRUM
    assert not list(tmp_path.rglob("*.partial"))  # written atomically
