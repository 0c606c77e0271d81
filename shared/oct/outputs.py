# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Handlers of the glaucoma OCT classification bundle: the Youden threshold training keeps beside its best model
(the training record goes there through :class:`shared.handlers.run_record.RecordWriter`) and the explanation maps
(CARE / Grad-CAM NIfTI volumes, PNG montages). Every file is written atomically."""

from __future__ import annotations

import gzip
import logging
import os

import numpy as np
import torch
from ignite.engine import Engine, Events

from shared.atomic import atomic_write
from shared.oct.threshold import write_threshold

__all__ = ["BestThresholdSaver", "ExplanationWriter", "save_explanation_montage", "save_nifti"]

logger = logging.getLogger(__name__)


def _is_best_epoch(engine: Engine) -> bool:
    """Whether the evaluator's key metric improved in this pass (the best-model saver has just written model.pt)."""
    return getattr(engine.state, "best_metric_epoch", -1) == engine.state.epoch


class BestThresholdSaver:
    """Attach to the validation evaluator after the best-model saver: whenever its key metric improves, write the
    Youden threshold measured on that validation pass (``engine.state.metrics[metric]``) to ``filename``
    (``{"threshold": t, "epoch": e}``)."""

    def __init__(self, filename: str, metric: str = "youden_threshold") -> None:
        self.filename = filename
        self.metric = metric

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if self.metric not in engine.state.metrics:
            raise KeyError(f"BestThresholdSaver: metric '{self.metric}' is not computed by this evaluator.")
        if _is_best_epoch(engine):
            write_threshold(self.filename, engine.state.metrics[self.metric], epoch=int(engine.state.epoch))


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def save_nifti(volume: np.ndarray, path: str) -> None:
    """``volume`` as float32 NIfTI (identity affine: the network grid, unit spacing), gzip-compressed, atomically."""
    import nibabel as nib

    data = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), np.eye(4)).to_bytes()
    with atomic_write(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=6))


def save_explanation_montage(image: np.ndarray, maps: dict[str, np.ndarray], path: str, title: str = "") -> None:
    """PNG: for each map, three B-scans (25/50/75 % of the superior->inferior axis) and the en-face projection
    (mean over depth) of the image in grey with the map overlaid. ``image`` and maps are ``(S, A, L)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_s = image.shape[0]
    rows = list(maps.items())
    cols = [int(n_s * f) for f in (0.25, 0.5, 0.75)]
    fig, axes = plt.subplots(len(rows), 4, figsize=(14, 3.2 * len(rows)), squeeze=False)
    for r, (name, m) in enumerate(rows):
        for c, s in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(image[s], cmap="gray", aspect="auto")
            ax.imshow(m[s], cmap="jet", alpha=0.4, vmin=0, vmax=1, aspect="auto")
            ax.set_title(f"{name}: B-scan {s} (depth x lateral)", fontsize=9)
            ax.axis("off")
        ax = axes[r][3]
        ax.imshow(image.mean(axis=1), cmap="gray", aspect="auto")
        ax.imshow(m.mean(axis=1) / max(float(m.mean(axis=1).max()), 1e-8), cmap="jet", alpha=0.4, aspect="auto")
        ax.set_title(f"{name}: en-face (B-scan x lateral)", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


class ExplanationWriter:
    """Attach to an inference or evaluation evaluator whose post-processed output holds ``care_up`` /
    ``gradcam_up`` maps: as each volume is done, write ``<name>_care.nii.gz``, ``<name>_gradcam.nii.gz``, the
    preprocessed ``<name>_image.nii.gz`` they overlay (network grid: B-scan x depth x lateral, unit spacing) and a
    ``<name>_montage.png``. (The probabilities go to :class:`shared.handlers.predictions.ProbabilityWriter`.)

    Args:
        output_dir: output folder (created).
        class_names: the classes (the montage's title gives the last one's probability).
        prob_key, name_key, image_key: keys of the post-processed output.
        save_montage: also write the PNG montage.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: tuple[str, ...] = ("non_glaucoma", "glaucoma"),
        prob_key: str = "prob",
        name_key: str = "source_file",
        image_key: str = "image",
        save_montage: bool = True,
    ) -> None:
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.prob_key, self.name_key, self.image_key = prob_key, name_key, image_key
        self.save_montage = save_montage

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        outputs = engine.state.output
        for out in outputs if isinstance(outputs, list) else [outputs]:
            if "care_up" in out and "gradcam_up" in out:
                name = str(out.get(self.name_key, "")) or f"case_{engine.state.iteration}"
                self._save_maps(out, name, float(_to_numpy(out[self.prob_key]).ravel()[-1]))

    def _save_maps(self, out: dict, name: str, p_pos: float) -> None:
        stem = os.path.basename(name)
        for ext in (".nii.gz", ".nii", ".npy"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
        stem = stem or "case"
        vols = {k: _to_numpy(out[k])[0] for k in ("care_up", "gradcam_up")}
        for key, vol in vols.items():
            save_nifti(vol, os.path.join(self.output_dir, f"{stem}_{key.replace('_up', '')}.nii.gz"))
        image = _to_numpy(out[self.image_key])[0] if self.image_key in out else None
        if image is not None:
            save_nifti(image, os.path.join(self.output_dir, f"{stem}_image.nii.gz"))
            if self.save_montage:
                save_explanation_montage(
                    image,
                    {"CARE": vols["care_up"], "Grad-CAM": vols["gradcam_up"]},
                    os.path.join(self.output_dir, f"{stem}_montage.png"),
                    title=f"{stem}: P({self.class_names[-1]}) = {p_pos:.3f}",
                )
