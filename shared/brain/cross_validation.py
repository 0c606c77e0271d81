# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
k-fold cross-validation of a bundle: for every fold, a training workflow and an evaluation workflow on that
fold's test subset, each a :class:`monai.bundle.ConfigWorkflow` with ``fold`` (and per-fold output folders)
overridden; test metrics are then summarised as mean ± std.

The bundle's configs must read the fold from the ``fold`` id, write into ``ckpt_dir`` / ``output_dir``, and the
evaluation config must evaluate the fold's test subset with its ``validate#evaluator``.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from shared.atomic import write_json

__all__ = ["runner_overrides", "run_cross_validation", "summarise"]

logger = logging.getLogger(__name__)

# command-line options of ``python -m monai.bundle run`` that are not config overrides
_RUNNER_OPTIONS = {"config_file", "meta_file", "logging_file", "init_id", "run_id", "final_id", "tracking", "args_file"}


def runner_overrides(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """
    The ``--id value`` overrides given to ``python -m monai.bundle run ...`` (so each fold's workflows get them
    too); empty when the process was not started by the bundle runner.
    """
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0].replace("\\", "/").endswith("monai/bundle/__main__.py"):
        return {}
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            key, sep, value = a[2:].partition("=")
            if not sep and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            if key and key not in _RUNNER_OPTIONS:
                try:
                    out[key] = ast.literal_eval(value)  # numbers, booleans, lists, dicts; else a string
                except (ValueError, SyntaxError):
                    out[key] = value
        i += 1
    return out


def summarise(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of every numeric metric over folds."""
    keys = sorted({k for m in per_fold for k, v in m.items() if isinstance(v, (int, float))})
    out = {}
    for k in keys:
        vals = [float(m[k]) for m in per_fold if isinstance(m.get(k), (int, float)) and not math.isnan(m[k])]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        out[k] = {"mean": mean, "std": std, "n": len(vals)}
    return out


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Scalar metrics of the evaluation run, ``val_`` prefixes renamed ``test_`` (it ran on the test subset)."""
    out = {}
    for k, v in metrics.items():
        try:
            value = float(v)
        except (TypeError, ValueError):
            continue  # per-class arrays and reports stay in the fold's own files
        out["test_" + k[4:] if k.startswith("val_") else k] = value
    return out


def run_cross_validation(
    train_config: str | Sequence[str],
    eval_config: str | Sequence[str],
    num_folds: int,
    output_dir: str,
    overrides: Mapping[str, Any] | None = None,
    meta_file: str | None = None,
    folds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """
    Train and evaluate every fold, then write ``<output_dir>/cv_results.json`` and log mean ± std.

    Args:
        train_config: config file(s) of the training workflow.
        eval_config: config file(s) of the evaluation workflow (e.g. train.json + evaluate.json).
        num_folds: number of folds.
        output_dir: per-fold checkpoints and outputs go to ``<output_dir>/fold_<k>``.
        overrides: config overrides for every workflow (merged over those given to the bundle runner).
        meta_file: metadata file (default: beside the first config file).
        folds: a subset of folds to run (default: all).

    Returns ``{"folds": [{"fold": k, <test metrics>}, ...], "summary": {metric: {"mean", "std", "n"}}}``.
    """
    from monai.bundle import ConfigWorkflow

    base = {**runner_overrides(), **dict(overrides or {})}
    for k in ("fold", "ckpt_dir", "output_dir", "cross_validation"):
        base.pop(k, None)
    first = train_config if isinstance(train_config, str) else train_config[0]
    meta_file = meta_file or os.path.join(os.path.dirname(os.path.abspath(first)), "metadata.json")
    results = []
    for fold in folds if folds is not None else range(num_folds):
        fold_dir = os.path.join(output_dir, f"fold_{fold}")
        ov = {**base, "fold": fold, "ckpt_dir": fold_dir, "output_dir": fold_dir}
        t0 = time.perf_counter()
        logger.info(f"cross-validation: fold {fold + 1}/{num_folds}, training -> {fold_dir}")
        for config, kind in ((train_config, "train"), (eval_config, None)):
            wf = ConfigWorkflow(config_file=config, meta_file=meta_file, logging_file=False, workflow_type=kind, **ov)
            wf.initialize()
            wf.run()
            if kind is None:
                metrics = _scalar_metrics(wf.parser.get_parsed_content("validate#evaluator").state.metrics)
            wf.finalize()
        results.append({"fold": fold, **metrics, "seconds": round(time.perf_counter() - t0, 1)})
        logger.info(f"cross-validation: fold {fold} test metrics {metrics}")
    summary = summarise([{k: v for k, v in r.items() if k not in ("fold", "seconds")} for r in results])
    report = {"num_folds": num_folds, "folds": results, "summary": summary}
    path = os.path.join(output_dir, "cv_results.json")
    write_json(path, report)
    lines = [f"{k}: {v['mean']:.4f} ± {v['std']:.4f} (n={v['n']})" for k, v in summary.items()]
    logger.info("cross-validation test metrics, mean ± std over folds:\n  " + "\n  ".join(lines))
    scores = ", ".join(
        f"{k[len('test_'):]} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in summary.items() if k.startswith("test_")
    )
    print(f"cross-validation, {len(results)} folds, test split (mean ± std over folds): {scores} -> {path}", flush=True)
    return report
