# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import nibabel as nib
import numpy as np
import pytest

from shared.brain.datalist import load_classification_datalist
from shared.brain.phantom import CLASS_NAMES, ensure_demo_dataset
from shared.errors import InputError


def test_demo_dataset_is_written_once_and_is_two_class(tmp_path):
    demo = tmp_path / "demo"
    path = ensure_demo_dataset(str(demo), str(demo), subjects_per_class=2, voxel_size=4.0, seed=1)
    items = load_classification_datalist(path, class_names=list(CLASS_NAMES))
    assert [i["label"] for i in items] == [0, 0, 1, 1] and len({i["subject_id"] for i in items}) == 4
    imgs = [nib.load(i["image"]) for i in items]
    assert all(im.shape == (49, 58, 47) for im in imgs)
    assert nib.aff2axcodes(imgs[0].affine) == ("R", "A", "S") and np.allclose(imgs[0].header.get_zooms(), 4.0)
    data = [np.asarray(im.dataobj) for im in imgs]
    assert all(np.isfinite(d).all() and d.max() > 100 for d in data)
    assert not np.allclose(data[0], data[1])  # each subject is its own deformation/noise
    # anomaly: enlarged ventricles and atrophy -> more dark voxels inside the central brain
    centre = tuple(slice(s // 2 - 6, s // 2 + 6) for s in data[0].shape)
    dark = [float((d[centre] < 0.3 * np.percentile(d, 99)).mean()) for d in data]
    assert min(dark[2:]) > max(dark[:2])
    # the same settings reuse the set; other settings write it again
    mtime = (demo / "images" / "sub-000.nii.gz").stat().st_mtime_ns
    assert ensure_demo_dataset(str(demo), str(demo), subjects_per_class=2, voxel_size=4.0, seed=1) == path
    assert (demo / "images" / "sub-000.nii.gz").stat().st_mtime_ns == mtime
    ensure_demo_dataset(str(demo), str(demo), subjects_per_class=1, voxel_size=8.0, seed=1)
    assert len(load_classification_datalist(path, class_names=list(CLASS_NAMES))) == 2
    assert sorted(p.name for p in (demo / "images").iterdir()) == ["sub-000.nii.gz", "sub-001.nii.gz"]


def test_user_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*image,label"):
        ensure_demo_dataset(str(tmp_path / "mine"), str(tmp_path / "demo"))
    (tmp_path / "mine").mkdir()
    with pytest.raises(FileNotFoundError, match=r"mine has no datalist.csv"):
        ensure_demo_dataset(str(tmp_path / "mine"), str(tmp_path / "demo"))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "junk.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        ensure_demo_dataset(str(tmp_path / "demo"), str(tmp_path / "demo"))
