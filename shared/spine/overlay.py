# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""PNG overlays of segmentations, written per case by an evaluator (inference or evaluation)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from ignite.engine import Engine, Events
from monai.data import FolderLayout, decollate_batch
from monai.utils import ImageMetaKey

from shared.spine.visualize import render_orthogonal_slices

__all__ = ["SegmentationOverlayWriter"]

logger = logging.getLogger(__name__)


def _label_map(x: torch.Tensor) -> torch.Tensor:
    """``(X, Y, Z)`` label ids from a one-hot / probability ``(C, X, Y, Z)`` or a ``(1, X, Y, Z)`` label map."""
    return x.argmax(0) if x.shape[0] > 1 else x[0].round().long()


class SegmentationOverlayWriter:
    """Attach to an evaluator: for every case, write ``<output_dir>/<name>_<postfix>.png``, three orthogonal slices
    of the image with the prediction on top (:py:func:`shared.spine.visualize.render_orthogonal_slices`), and with
    ``label_key`` a second and third row: the image alone first, then prediction and ground truth.

    ``<name>`` is the case's ``name_key`` entry of the batch when it has one (datalists of
    :py:func:`shared.spine.datalist.segmentation_datalist` do: VerSe / TotalSegmentator file names alone are not
    unique), else the image file name without extension, as MONAI's ``SaveImage`` names its outputs.

    Args:
        output_dir: folder of the PNGs.
        postfix: added to the name (``"overlay"`` beside inference outputs, ``"eval"`` in evaluation).
        image_key, pred_key, label_key: keys of the post-processed output; ``pred`` / ``label`` may be one-hot,
            probabilities (argmax is shown) or label maps.
        image_from_file: read the image again from its source file (``filename_or_obj``) with ``reader``: for
            inference, whose prediction was restored to the input's grid while the output's image is still the
            preprocessed one. Otherwise the output's image is shown, on its own grid.
        reader: MONAI reader(s) for ``image_from_file`` (as ``LoadImage`` takes them).
        window: intensity range shown (default: percentiles, see the renderer).
        name_key: batch key naming the case.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        postfix: str = "overlay",
        image_key: str = "image",
        pred_key: str = "pred",
        label_key: str | None = None,
        image_from_file: bool = False,
        reader: str | Sequence[str] | None = None,
        window: Sequence[float] | None = None,
        name_key: str | None = "case",
    ) -> None:
        self.layout = FolderLayout(str(output_dir), postfix=postfix, extension=".png", parent=False, makedirs=True)
        self.image_key, self.pred_key, self.label_key = image_key, pred_key, label_key
        self.image_from_file, self.reader, self.window, self.name_key = image_from_file, reader, window, name_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        outputs, batches = engine.state.output, engine.state.batch
        outputs = outputs if isinstance(outputs, list) else decollate_batch(outputs)
        batches = batches if isinstance(batches, list) else [None] * len(outputs)
        for output, batch in zip(outputs, batches):
            self.write(output, batch)

    def write(self, output: dict, batch: dict | None = None) -> str:
        """Write the PNG of one post-processed case; return its path."""
        pred = output[self.pred_key]
        image = output[self.image_key]
        source = str(image.meta.get(ImageMetaKey.FILENAME_OR_OBJ, "")) if hasattr(image, "meta") else ""
        name = batch.get(self.name_key) if batch is not None and self.name_key else None
        path = self.layout.filename(subject=str(name or source or f"case_{id(output)}"))
        if self.image_from_file:
            from monai.transforms import LoadImage

            image = LoadImage(reader=self.reader, image_only=True, ensure_channel_first=True)(source)
            if tuple(image.shape[1:]) != tuple(pred.shape[1:]):
                raise ValueError(
                    f"{source}: the prediction's grid {tuple(pred.shape[1:])} is not the image's "
                    f"{tuple(image.shape[1:])}; image_from_file needs a prediction restored to the input's space."
                )
        rows = {"prediction": _label_map(pred)}
        if self.label_key is not None:
            rows = {"image": None, **rows, "label": _label_map(output[self.label_key])}
        affine = pred.affine if hasattr(pred, "affine") else getattr(image, "affine", None)
        render_orthogonal_slices(image, rows, path, affine=affine, window=self.window, title=os.path.basename(path))
        logger.debug(f"wrote {path}")
        return path
