# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Checkpoint handlers: atomic saving, resuming an interrupted run with its best score, and loading with one clear
message for a checkpoint that is missing, truncated, not a plain state dict, or made for another network (named,
where the file says: training checkpoints record their network under ``made_for``, and the weights of this
collection's networks are recognised by their module names)."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

from shared.atomic import atomic_save
from shared.errors import InputError, MissingInputError

__all__ = [
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "ResumeCheckpointLoader",
    "check_state_dict",
    "made_for",
    "read_checkpoint",
]

logger = logging.getLogger(__name__)

MADE_FOR = "made_for"
# top-level modules that, together, only one network of this collection has, and what to call it
_SIGNATURES = (
    ({"swinViT", "encoder10"}, "AdaptiveSwinUNETR (spine_seg)"),
    ({"stages", "classifier", "arch_signature"}, "AICNet3D (glaucoma_oct_classification)"),
    ({"backbone", "attention", "embedding", "classifier"}, "DinoAtten3D (brain_mri_classification)"),
    ({"image_encoders", "vector_encoders", "fusion"}, "ACMCA (ad_multiomic_classification)"),
)


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel


def _network_of(objects: Mapping[str, Any]) -> torch.nn.Module | None:
    return next((_unwrap(o) for o in objects.values() if isinstance(o, torch.nn.Module)), None)


def made_for(checkpoint: Any) -> str | None:
    """The network a checkpoint was made for, where the file says: the ``made_for`` record of a training checkpoint,
    else recognised from the module names of its weights (this collection's networks only); ``None`` otherwise."""
    if not isinstance(checkpoint, Mapping):
        return None
    record = checkpoint.get(MADE_FOR)
    if isinstance(record, Mapping) and record.get("network"):
        return str(record["network"])
    weights = checkpoint.get("model", checkpoint)
    if not isinstance(weights, Mapping):
        return None
    modules = {str(k).removeprefix("module.").split(".")[0] for k in weights}
    return next((name for markers, name in _SIGNATURES if markers <= modules), None)


def _network_name(network: torch.nn.Module | None) -> str:
    """What a training checkpoint records as its network: the collection's name for it, or its class name."""
    if network is None:
        return ""
    known = made_for(network.state_dict())
    return known if known and known.startswith(type(network).__name__) else type(network).__name__


class _AtomicDiskSaver(DiskSaver):
    """ignite's ``DiskSaver(atomic=True)`` on the first process, with what it lacks for files a user keeps: the
    temporary file is fsynced before the rename and named ``.<name>.*.partial`` (:func:`shared.atomic.atomic_save`;
    ignite's anonymous ``tmp*`` file is neither durable nor recognisable as a killed run's leftover); an optional
    fixed file name, whose previous file is not removed (the rename already replaced it, and removing would leave a
    moment with no checkpoint at all); and the ``made_for`` record of a training checkpoint."""

    def __init__(self, dirname: str, filename: str | None = None, network: str | None = None) -> None:
        super().__init__(dirname, atomic=True, require_empty=False)
        self.filename = filename
        self.network = network

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if self.network and "model" in checkpoint:  # a training checkpoint (model.pt stays bare weights)
            checkpoint = {**checkpoint, MADE_FOR: {"network": self.network}}
        super().__call__(checkpoint, self.filename or filename, metadata)

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        atomic_save(checkpoint, path)

    def remove(self, filename: str) -> None:
        if self.filename is None and (self.dirname / filename).is_file():
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's :py:class:`~monai.handlers.CheckpointSaver` whose every file is written atomically, so an interrupted
    run never leaves a truncated checkpoint. Takes the same arguments, plus:

    - ``interval_filename``: a fixed name for the interval checkpoint (e.g. ``checkpoint_last.pt``, the file
      :py:class:`ResumeCheckpointLoader` resumes from);
    - ``engine_key``: also save the state of the engine the handler is attached to under this key (e.g.
      ``"trainer"``: the finished epochs), which a config cannot reference without a circular reference.

    A checkpoint of several objects also records the network it was made for (``made_for``), so that loading it
    into another bundle's workflow can say whose it is.

    A saver of the key metric (``save_key_metric=True``) is itself checkpointable: its ``state_dict()`` holds the
    best score so far (and the evaluator's best metric and epoch). Put it in the training checkpoint's
    ``save_dict``; on resume the restored score is the bar, so ``model.pt`` is replaced only by a better model.
    """

    def __init__(self, *args, interval_filename: str | None = None, engine_key: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.engine_key = engine_key
        self._engine: Engine | None = None
        self._best_filename = kwargs.get("key_metric_filename")
        network = _network_name(_network_of(self.save_dict))
        for checkpoint, name in (
            (self._final_checkpoint, self._final_filename),
            (self._key_metric_checkpoint, kwargs.get("key_metric_filename")),
            (self._interval_checkpoint, interval_filename),
        ):
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, name, network)

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine  # shared by reference with the ignite Checkpoint objects
        super().attach(engine)

    def state_dict(self) -> dict[str, Any]:
        if self._key_metric_checkpoint is None:
            raise TypeError("only a saver of the key metric (save_key_metric=True) has a best score to save")
        # plain floats: metrics may be numpy scalars, which weights-only loading refuses
        saved = self._key_metric_checkpoint.state_dict()["_saved"]
        state: dict[str, Any] = {"_saved": [(float(score), str(name)) for score, name in saved]}
        if self._engine is not None:
            state["best_metric"] = float(self._engine.state.best_metric)
            state["best_metric_epoch"] = int(self._engine.state.best_metric_epoch)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self._key_metric_checkpoint is None:
            raise TypeError("only a saver of the key metric (save_key_metric=True) has a best score to restore")
        self._key_metric_checkpoint.load_state_dict({"_saved": state["_saved"]})
        if self._engine is not None and "best_metric" in state:
            self._engine.state.best_metric = state["best_metric"]
            self._engine.state.best_metric_epoch = state["best_metric_epoch"]
        if state["_saved"]:
            name = self._best_filename or "the best model"
            logger.info(f"restored best score {state['_saved'][-1][0]:.6g}: {name} is replaced only by a better model")


def read_checkpoint(path: str | os.PathLike, what: str = "Checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one clear :class:`InputError` for a missing,
    truncated or corrupt file and for one that is not a plain state dict (pickled code is never run)."""
    path = str(path)
    if not os.path.isfile(path):
        raise MissingInputError(f"{what} {path} does not exist: train the bundle first or pass the right path.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(
            f"{what} {path} is not a plain state dict (it holds pickled objects that weights-only loading refuses); "
            "save `model.state_dict()` instead."
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputError(f"{what} {path} is truncated or not a PyTorch checkpoint ({reason}).") from e


def check_state_dict(
    network: torch.nn.Module, state_dict: Mapping, source: str = "checkpoint", other: str | None = None
) -> None:
    """Raise one :class:`InputError` naming ``source`` when ``state_dict`` was not made for ``network``: which
    network it was made for when that is known (``other``, e.g. the checkpoint's ``made_for`` record, or recognised
    from the weights), else (the first few) missing and unexpected keys and shape mismatches, instead of torch's long
    message.
    """
    own = network.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs network {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        other = other or made_for(dict(state_dict))
        if other and not other.startswith(type(network).__name__):
            raise InputError(
                f"{source} was made for {other}, not for this bundle's {type(network).__name__}: point --ckpt_dir "
                "(or the checkpoint path) at a checkpoint of this bundle."
            )

        def _head(items: list) -> str:
            return ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")

        parts = [f"missing keys: {_head(missing)}" if missing else ""]
        parts += [f"unexpected keys: {_head(unexpected)}" if unexpected else ""]
        parts += [f"shape mismatches: {_head(shapes)}" if shapes else ""]
        raise InputError(
            f"{source} was not made for this network ({type(network).__name__} with these settings): "
            + "; ".join(p for p in parts if p)
            + ". Check the checkpoint path and the network_def settings it was trained with."
        )


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's :py:class:`~monai.handlers.CheckpointLoader` that checks the file (:py:func:`read_checkpoint`), that
    it holds every object of ``load_dict``, and that each network's weights match (:py:func:`check_state_dict`)
    before loading anything, raising one clear :class:`~shared.errors.InputError` otherwise."""

    def __call__(self, engine: Engine) -> None:
        if not self.strict:  # MONAI's partial loading (shape-matched keys only) stays MONAI's
            super().__call__(engine)
            return
        checkpoint = read_checkpoint(self.load_path)
        if not isinstance(checkpoint, Mapping):
            raise InputError(f"Checkpoint {self.load_path} holds a {type(checkpoint).__name__}, not a state dict.")
        first = next(iter(self.load_dict))
        if len(self.load_dict) == 1 and first not in checkpoint:
            checkpoint = {first: checkpoint}  # a bare state dict of the one object
        missing = [k for k in self.load_dict if k not in checkpoint]
        ours, theirs = _network_of(self.load_dict), made_for(checkpoint)
        if missing and ours is not None and theirs and not theirs.startswith(type(ours).__name__):
            raise InputError(
                f"Checkpoint {self.load_path} was made for {theirs}, not for this bundle's {type(ours).__name__}: "
                "point --ckpt_dir at this bundle's own checkpoints (or start afresh in an empty --ckpt_dir)."
            )
        if missing:
            raise InputError(
                f"Checkpoint {self.load_path} lacks {missing} (it holds {sorted(checkpoint)}): it was not written by "
                "this workflow or this version of the bundle."
            )
        for key, obj in self.load_dict.items():
            if isinstance(obj, torch.nn.Module) and isinstance(checkpoint[key], Mapping):
                state = {k.removeprefix("module."): v for k, v in checkpoint[key].items()}
                check_state_dict(obj, state, source=f"Checkpoint {self.load_path}", other=theirs)
                checkpoint[key] = state
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=self.load_dict, checkpoint=checkpoint, strict=True)
        if max_epochs is not None and engine.state.epoch > max_epochs:
            raise InputError(
                f"Checkpoint {self.load_path} was saved after epoch {engine.state.epoch}, beyond max_epochs "
                f"{max_epochs}: raise --max_epochs to continue, or start a new run in another --ckpt_dir."
            )
        engine.state.max_epochs = max_epochs
        logger.info(f"Restored {', '.join(self.load_dict)} from {self.load_path}.")


class ResumeCheckpointLoader(CheckedCheckpointLoader):
    """Resumes training from ``load_path`` when it exists (a run that was interrupted), and starts fresh otherwise.

    Give it the training state (network, optimizer, lr scheduler) as ``load_dict``; the state of the engine it is
    attached to is restored under ``engine_key`` (the finished epochs), so the run continues where it stopped.
    """

    def __init__(self, *args, enabled: bool = True, engine_key: str | None = "trainer", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.enabled = enabled
        self.engine_key = engine_key

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            self.load_dict[self.engine_key] = engine
        super().attach(engine)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        if not os.path.isfile(self.load_path):
            logger.info(f"No checkpoint at {self.load_path}: training starts from scratch.")
            return
        super().__call__(engine)
        logger.info(f"Resumed from {self.load_path} after epoch {engine.state.epoch}.")
