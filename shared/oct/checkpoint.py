# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""AI-CNet3D checkpoints checked before any data is touched: a missing, truncated or pickled file, one of another
network, or one trained with another attention type or placement is one clear message naming the file.

:class:`~shared.handlers.checkpoint.CheckedCheckpointLoader` checks keys and shapes; AICNet3D checkpoints of
``hemiretinal`` and ``onh_macula`` models have the same keys and shapes and differ only in the network's
``arch_signature`` buffer, which the network itself refuses to load. Loading into a copy of the network here turns
that refusal into the same kind of message, before the first iteration.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping

import torch

from shared.errors import InputError, MissingInputError
from shared.handlers.checkpoint import check_state_dict, made_for, read_checkpoint

__all__ = ["read_network_state", "check_checkpoint", "load_stage1_weights", "latest_stage_checkpoint"]

logger = logging.getLogger(__name__)


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network


def read_network_state(
    path: str, network: torch.nn.Module, key: str = "model", what: str = "Checkpoint"
) -> dict[str, torch.Tensor]:
    """The state dict of ``network`` held by the checkpoint ``path`` (bare, or under ``key``), checked to load.

    Raises:
        InputError: the file is missing, truncated, not a plain state dict, or not made for ``network``.
    """
    checkpoint = read_checkpoint(path, what)
    other = made_for(checkpoint)
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
        checkpoint = checkpoint[key]
    if not isinstance(checkpoint, Mapping):
        raise InputError(f"{what} {path} holds a {type(checkpoint).__name__}, not a state dict.")
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    net = _unwrap(network)
    check_state_dict(net, state, source=f"{what} {path}", other=other)
    try:
        copy.deepcopy(net).load_state_dict(state)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"{what} {path} does not fit this network: {e}") from e
    return state


def check_checkpoint(
    path: str, network: torch.nn.Module, key: str = "model", what: str = "Checkpoint", required: bool = True
) -> None:
    """:func:`read_network_state` as a workflow step; ``required=False`` passes when ``path`` does not exist (a
    resume checkpoint that a first run has not written yet)."""
    if required or os.path.isfile(path):
        read_network_state(path, network, key, what)


def load_stage1_weights(network: torch.nn.Module, path: str) -> None:
    """Start stage 2 from stage 1's best model ``path`` (checked as :func:`read_network_state`)."""
    if not os.path.isfile(path):
        raise MissingInputError(
            f"The stage-1 model {path} does not exist: run stage 1 first (python -m monai.bundle run training "
            "--config_file <bundle>/configs/train.json, with the same --ckpt_dir), or set --stage1_checkpoint."
        )
    _unwrap(network).load_state_dict(read_network_state(path, network, what="The stage-1 model"))
    logger.info(f"stage 2 starts from {path}")


def latest_stage_checkpoint(ckpt_dir: str) -> str:
    """The fine-tuned (stage-2) best checkpoint ``ckpt_dir/finetune/model.pt`` when it exists, else stage 1's
    ``ckpt_dir/model.pt``."""
    stage2 = os.path.join(ckpt_dir, "finetune", "model.pt")
    return stage2 if os.path.isfile(stage2) else os.path.join(ckpt_dir, "model.pt")
