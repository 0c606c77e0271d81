# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from matplotlib.image import imread
from monai.data import MetaTensor
from monai.networks import one_hot

from shared.spine.overlay import SegmentationOverlayWriter


def _engine(output, batch=None):
    return SimpleNamespace(state=SimpleNamespace(output=output, batch=batch))


def _case(tmp_path, shape=(12, 14, 16)):
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    path = tmp_path / "images" / "sub-1_ct.nii.gz"
    path.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(0, 300, shape).astype(np.float32), affine), path)
    label = torch.zeros((1, *shape))
    label[0, 3:9, 4:10, 2:8], label[0, 3:9, 4:10, 8:14] = 19, 20
    meta = {"filename_or_obj": str(path), "affine": torch.tensor(affine)}
    image = MetaTensor(torch.rand((1, *shape)), meta=dict(meta))
    return image, MetaTensor(label, meta=dict(meta)), path


def test_evaluation_png_per_case_named_by_the_case(tmp_path):
    image, label, _ = _case(tmp_path)
    onehot = one_hot(label[None], 25)[0]
    writer = SegmentationOverlayWriter(tmp_path / "eval", postfix="eval", label_key="label", window=(0, 1))
    output = [{"image": image, "pred": onehot, "label": onehot}]
    writer(_engine(output, [{"case": "s0007"}]))
    png = imread(tmp_path / "eval" / "s0007_eval.png")
    assert png.shape[:2] == (3 * 256, 3 * 256) and png[..., :3].std() > 0.05
    writer(_engine(output, [{}]))  # no case id: the image's file name, as SaveImage names outputs
    assert (tmp_path / "eval" / "sub-1_ct_eval.png").is_file()


def test_inference_png_reads_the_input_again(tmp_path):
    image, label, path = _case(tmp_path)
    preprocessed = MetaTensor(torch.rand((1, 8, 8, 8)), meta={"filename_or_obj": str(path)})  # another grid
    writer = SegmentationOverlayWriter(tmp_path / "out", image_from_file=True)
    written = writer.write({"image": preprocessed, "pred": label})
    assert written == str(tmp_path / "out" / "sub-1_ct_overlay.png")
    png = imread(written)
    assert png.shape[:2] == (256, 3 * 256) and np.ptp(png[..., :3], axis=-1).max() > 0.1  # coloured labels
    with pytest.raises(ValueError, match="sub-1_ct.nii.gz: the prediction's grid"):
        writer.write({"image": preprocessed, "pred": label[:, :-1]})
