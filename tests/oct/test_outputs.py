# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import nibabel as nib
import torch
from ignite.engine import Engine

from shared.oct.outputs import ExplanationWriter


def _engine(outputs):
    return Engine(lambda engine, batch: outputs[engine.state.iteration - 1])


def test_explanation_maps_are_written_for_volumes_that_have_them(tmp_path):
    maps = {k: torch.rand(1, 4, 5, 6) for k in ("care_up", "gradcam_up", "image")}
    outs = [
        [{"prob": torch.tensor([0.2, 0.8]), "source_file": "/d/P1_OD.npy"}],
        [{"prob": torch.tensor([0.9, 0.1]), "source_file": "/d/P2_OD.npy", **maps}],
    ]
    engine = _engine(outs)
    ExplanationWriter(str(tmp_path)).attach(engine)
    engine.run([0, 1], max_epochs=1)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [f"P2_OD_{k}.nii.gz" for k in ("care", "gradcam", "image")] + ["P2_OD_montage.png"]
    assert nib.load(tmp_path / "P2_OD_care.nii.gz").shape == (4, 5, 6)
