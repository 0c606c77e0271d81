import nibabel as nib
import numpy as np
from scipy import ndimage

from shared.data.spine_phantom import spine_phantom, write_spine_phantom_dataset


def test_phantom_anatomy():
    image, label, affine = spine_phantom(shape=(64, 64, 96), spacing=(2.0, 2.0, 2.0), num_vertebrae=5, seed=3)
    assert image.shape == label.shape == (64, 64, 96)
    levels = sorted(set(np.unique(label)) - {0})
    assert len(levels) == 5 and levels == list(range(levels[0], levels[0] + 5)) and 1 <= levels[0] <= 20
    # VerSe ids grow caudally, and RAS z grows superiorly: higher ids sit lower
    z = [ndimage.center_of_mass(label == lv)[2] for lv in levels]
    assert all(a > b for a, b in zip(z, z[1:]))
    # bone is brighter than the soft tissue around it, air is air
    assert image[label > 0].mean() > 200 > image[(label == 0) & (image > -500)].mean()
    assert image.min() < -900
    assert np.allclose(np.diag(affine)[:3], 2.0)


def test_phantoms_vary_and_are_reproducible(tmp_path):
    a, b = spine_phantom(seed=1)[1], spine_phantom(seed=2)[1]
    assert not np.array_equal(a, b)
    assert np.array_equal(spine_phantom(seed=1)[1], a)
    write_spine_phantom_dataset(tmp_path, num_cases=2, shape=(32, 32, 48), spacing=(3.0, 3.0, 3.0))
    img = nib.load(tmp_path / "images" / "spine_001.nii.gz")
    lbl = nib.load(tmp_path / "labels" / "spine_001.nii.gz")
    assert img.shape == lbl.shape == (32, 32, 48) and np.allclose(img.affine, lbl.affine)
