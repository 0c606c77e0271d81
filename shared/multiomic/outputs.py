# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Handlers that write per-subject outputs of a multi-omic classifier: the cross-attention weights of each subject
(NPZ + a long-format CSV) and the fitted preprocessing beside the best model (the class probabilities go to
:class:`shared.handlers.predictions.ProbabilityWriter`, the scores to
:class:`shared.handlers.evaluation_report.EvaluationReport`). They read MONAI's decollated
``engine.state.batch`` / ``engine.state.output`` lists at ITERATION_COMPLETED. Every file is written atomically
(:mod:`shared.atomic`).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from shared.atomic import atomic_write

__all__ = ["CrossAttentionSaver"]

logger = logging.getLogger(__name__)


def _items(engine: Engine, attr: str) -> list[dict[str, Any]]:
    data = getattr(engine.state, attr)
    if isinstance(data, dict):  # not decollated: split the batch
        n = len(data["subject_id"]) if "subject_id" in data else 0
        return [
            {k: (v[i] if isinstance(v, (list, tuple, torch.Tensor)) else v) for k, v in data.items()} for i in range(n)
        ]
    return list(data)


def _subject_ids(engine: Engine) -> list[str]:
    return [str(b.get("subject_id", f"sample{i}")) for i, b in enumerate(_items(engine, "batch"))]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "subject"


class CrossAttentionSaver:
    """
    Save the cross-attention weights the network kept during the last forward pass, per subject:
    ``<output_dir>/attention/<subject_id>.npz`` with one array per attention block, ``(heads, Lq, Lk)`` (for an
    image context also reshaped to ``(heads, Lq, grid_h, grid_w)`` as ``<block>_grid``), and
    ``<output_dir>/cross_attention.csv`` with the head-averaged weight of every query token on every image region:
    ``subject_id, block, query_token, region_row, region_col, weight``.

    Region ``(row, col)`` is the position in the backbone's stride-32 feature map of the slice
    (rows along the slice's first axis, anterior-posterior after RAS; columns inferior-superior).

    Args:
        network: the classifier (``shared.networks.acmca.ACMCA``; DataParallel/DDP wrappers are unwrapped).
        output_dir: output folder.
    """

    def __init__(self, network: torch.nn.Module, output_dir: str) -> None:
        self.network = network
        self.output_dir = output_dir
        self._rows: list[list[Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._rows = []

    def _collect(self, engine: Engine) -> None:
        net = getattr(self.network, "module", self.network)
        grid = [int(g) for g in net.region_grid]
        image_mods = set(net.image_modalities)
        weights = {key: block.attn.att_mat.detach().float().cpu().numpy() for key, block in net.fusion.items()}
        contexts = {key: block.context_name for key, block in net.fusion.items()}
        if not weights:
            return
        folder = os.path.join(self.output_dir, "attention")
        sids = _subject_ids(engine)
        for i, sid in enumerate(sids):
            arrays: dict[str, np.ndarray] = {"region_grid": np.asarray(grid)}
            for key, w in weights.items():
                if w.shape[0] != len(sids):
                    raise RuntimeError(
                        f"attention batch {w.shape[0]} != {len(sids)} subjects; run one forward per batch."
                    )
                arrays[key] = w[i]
                if contexts[key] in image_mods:
                    if w.shape[-1] != grid[0] * grid[1]:
                        raise ValueError(
                            f"attention block '{key}' has {w.shape[-1]} image regions but the network's region_grid "
                            f"{grid} holds {grid[0] * grid[1]}: run inference at the configured image_size."
                        )
                    g = w[i].reshape(w.shape[1], w.shape[2], grid[0], grid[1])
                    arrays[key + "_grid"] = g
                    mean = g.mean(0)  # over heads
                    for q in range(mean.shape[0]):
                        for r in range(grid[0]):
                            for c in range(grid[1]):
                                self._rows.append([sid, key, q, r, c, f"{mean[q, r, c]:.6f}"])
            with atomic_write(os.path.join(folder, _safe_name(sid) + ".npz"), "wb") as f:
                np.savez(f, **arrays)

    def _write(self, engine: Engine) -> None:
        if not self._rows:
            return
        path = os.path.join(self.output_dir, "cross_attention.csv")
        with atomic_write(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject_id", "block", "query_token", "region_row", "region_col", "weight"])
            w.writerows(self._rows)
        logger.info(f"cross-attention weights written to {path} and {os.path.join(self.output_dir, 'attention')}")
