"""Checkpoint handlers: atomic saving, resuming an interrupted run, and loading with a clear mismatch message."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["AtomicCheckpointSaver", "CheckedCheckpointLoader", "ResumeCheckpointLoader", "check_state_dict"]

logger = logging.getLogger(__name__)


class _AtomicDiskSaver(DiskSaver):
    """ignite's atomic DiskSaver (temp file + rename) with an optional fixed file name and group/other read access.

    With a fixed name, removing the previous file is skipped: the rename already replaced it, and removing would
    leave a moment with no checkpoint at all.
    """

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True, create_dir=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint, filename, metadata)
        path = os.path.join(self.dirname, filename)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # the temp file is created 0600

    def remove(self, filename: str) -> None:
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's :py:class:`~monai.handlers.CheckpointSaver` whose every file is written atomically, so an interrupted
    run never leaves a truncated checkpoint. Takes the same arguments, plus:

    - ``interval_filename``: a fixed name for the interval checkpoint (e.g. ``checkpoint_last.pt``, the file
      :py:class:`ResumeCheckpointLoader` resumes from);
    - ``engine_key``: also save the state of the engine the handler is attached to under this key (e.g.
      ``"trainer"``: the finished epochs), which a config cannot reference without a circular reference.
    """

    def __init__(self, *args, interval_filename: str | None = None, engine_key: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.engine_key = engine_key
        for checkpoint, name in (
            (self._final_checkpoint, self._final_filename),
            (self._key_metric_checkpoint, kwargs.get("key_metric_filename")),
            (self._interval_checkpoint, interval_filename),
        ):
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, name)

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine  # shared by reference with the ignite Checkpoint objects
        super().attach(engine)


def check_state_dict(network: torch.nn.Module, state_dict: Mapping, source: str = "checkpoint") -> None:
    """Raise one ``ValueError`` naming ``source`` when ``state_dict`` was not made for ``network``.

    Lists (the first few) missing and unexpected keys and shape mismatches, instead of torch's long message.
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

        def _head(items: list) -> str:
            return ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")

        parts = [f"missing keys: {_head(missing)}" if missing else ""]
        parts += [f"unexpected keys: {_head(unexpected)}" if unexpected else ""]
        parts += [f"shape mismatches: {_head(shapes)}" if shapes else ""]
        raise ValueError(
            f"{source} was not made for this network ({type(network).__name__} with these settings): "
            + "; ".join(p for p in parts if p)
            + ". Check the checkpoint path and the network_def settings it was trained with."
        )


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's :py:class:`~monai.handlers.CheckpointLoader` that first checks the network's weights match, and
    raises one clear error (see :py:func:`check_state_dict`) when the file is missing or made for another network."""

    def __call__(self, engine: Engine) -> None:
        if not os.path.isfile(self.load_path):
            raise FileNotFoundError(
                f"Checkpoint {self.load_path} does not exist: train the bundle first or pass the path."
            )
        networks = {k: v for k, v in self.load_dict.items() if isinstance(v, torch.nn.Module)}
        if self.strict and networks:
            checkpoint = torch.load(self.load_path, map_location="cpu", weights_only=True)
            for key, net in networks.items():
                net = getattr(net, "module", net)  # DataParallel / DistributedDataParallel
                state = checkpoint[key] if len(self.load_dict) > 1 or key in checkpoint else checkpoint
                if isinstance(state, Mapping):
                    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
                check_state_dict(net, state, source=f"Checkpoint {self.load_path}")
        super().__call__(engine)


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
