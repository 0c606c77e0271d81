# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from shared.spine.visualize import render_orthogonal_slices
from tests.conftest import PYTHON, REPO, run_env


def _volume(shape=(20, 24, 28)):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 50, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[6:14, 8:16, 4:12] = 20
    label[6:14, 8:16, 14:22] = 21
    return image, label


def _is_grey(rgb: np.ndarray) -> np.ndarray:
    return np.ptp(rgb, axis=-1) < 1e-3


def test_png_has_one_row_per_map_and_colour_only_where_labelled(tmp_path):
    image, label = _volume()
    path = render_orthogonal_slices(
        image, {"image": None, "prediction": label, "label": label}, tmp_path / "case.png", panel_size=128
    )
    png = imread(path)[..., :3]
    assert png.shape == (3 * 128, 3 * 128, 3)
    assert png.std() > 0.05  # not blank
    rows = [png[r * 128 : (r + 1) * 128] for r in range(3)]
    assert _is_grey(rows[0]).mean() > 0.97  # the image alone (white text aside)
    for row in rows[1:]:
        assert (~_is_grey(row)).mean() > 0.02  # coloured label voxels in each labelled panel
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp_")]


def test_views_are_radiological_whatever_the_storage_orientation(tmp_path):
    """A marker on the patient's right shows on the image's left in the axial view, stored RAS or LPS."""
    image = np.zeros((16, 16, 16), np.float32)
    label = np.zeros((16, 16, 16), np.uint8)
    label[12:15, 6:10, 6:10] = 1  # high x: the patient's right in RAS
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    for name, lbl, affine in (("ras", label, ras), ("lps", label[::-1, ::-1], lps)):
        png = imread(render_orthogonal_slices(image, {"p": lbl}, tmp_path / f"{name}.png", affine, panel_size=64))
        axial = ~_is_grey(png[:, :64, :3])
        columns = np.nonzero(axial.any(0))[0]
        assert columns.max() < 32, name  # left half of the axial panel


def test_slices_cut_through_the_ground_truth_whatever_the_prediction(tmp_path):
    image = np.zeros((20, 20, 20), np.float32)
    label = np.zeros((20, 20, 20), np.uint8)
    label[1:4, 15:18, 2:5] = 7  # off-centre: slices through the volume's centre would miss it
    rows = {"prediction": np.ones_like(label), "label": label}
    png = imread(render_orthogonal_slices(image, rows, tmp_path / "x.png", panel_size=64))
    for c in range(3):
        assert (~_is_grey(png[64:, c * 64 : (c + 1) * 64, :3])).any(), c


def test_bad_shapes_are_named(tmp_path):
    image, label = _volume()
    with pytest.raises(ValueError, match="label map 'prediction' has shape"):
        render_orthogonal_slices(image, {"prediction": label[:-1]}, tmp_path / "x.png")


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
sys.meta_path.insert(0, Block())
import shared.spine.visualize
from shared.spine.overlay import SegmentationOverlayWriter
SegmentationOverlayWriter("out", label_key="label")
print("matplotlib" in sys.modules)
"""


def test_the_renderer_and_its_handler_load_without_matplotlib():
    """matplotlib is imported where a PNG is drawn, so a bundle (and MONAI Label) loads without it."""
    done = subprocess.run([PYTHON, "-c", BLOCK], cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
