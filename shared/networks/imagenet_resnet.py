# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""torchvision's ImageNet-1k ResNet weights for MONAI's ResNets, without torchvision (whose PyPI builds break over a
CPU torch): the file from torch's hub cache (downloaded once), its names mapped onto a MONAI trunk, loaded with strict
key and shape matching. Every problem is one error naming the config id that asked for the weights."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from shared.errors import InputError, MissingInputError
from shared.networks.hub_weights import hub_weights_path

__all__ = ["IMAGENET_RESNET_URLS", "load_imagenet_resnet"]

# torchvision's ImageNet-1k (v1) weights of the depths that have them
IMAGENET_RESNET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
}


def _read(depth: str, weights: str, where: str) -> dict[str, torch.Tensor]:
    if weights == "imagenet":
        if depth not in IMAGENET_RESNET_URLS:
            raise InputError(
                f"{where}, but {depth} has no ImageNet weights: use one of {sorted(IMAGENET_RESNET_URLS)}, or 'random'."
            )
        try:
            path = hub_weights_path(IMAGENET_RESNET_URLS[depth], f"ImageNet {depth} weights")
        except RuntimeError as e:
            raise MissingInputError(f"{where}: {e} Or pass the file's path, or 'random'.") from e
    else:
        path = os.path.expanduser(weights)
        if not os.path.isfile(path):
            raise MissingInputError(f"{where}: no such file; expected 'imagenet', 'random' or a weights file.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, pickled objects, not a checkpoint
        raise InputError(f"{where}: {path} is not a plain PyTorch state dict ({type(e).__name__}).") from e
    if not isinstance(loaded, Mapping):
        raise InputError(f"{where}: {path} holds a {type(loaded).__name__}, not a state dict.")
    return dict(loaded)


def load_imagenet_resnet(
    module: nn.Module,
    depth: str,
    weights: str,
    rename: Callable[[str, torch.Tensor], tuple[str, torch.Tensor] | None],
    config_id: str,
    trunk: Sequence[str] = ("",),
) -> None:
    """Load torchvision's ImageNet weights of ``depth`` (``weights``: ``"imagenet"`` or a file) into ``module``.

    Args:
        module: holds the trunk; its parameters that ``rename`` does not produce (a head, a projection) keep their
            own values.
        rename: maps a torchvision ``(name, tensor)`` to the module's, or to None to drop it (the classifier).
        config_id: named in every error (``"image_weights"``).
        trunk: prefixes of the module's names that must all come from the file (default: every name).
    """
    where = f"config id '{config_id}' is {weights!r}"
    state = {}
    for key, value in _read(depth, weights, where).items():
        mapped = rename(key, value)
        if mapped is not None:
            state[mapped[0]] = mapped[1]
    own = module.state_dict()
    expected = {k for k in own if k.startswith(tuple(trunk))}
    for key in expected:  # MONAI's downsampling convolutions have a bias torchvision's lack: it starts at 0
        if key.endswith("downsample.0.bias") and key not in state:
            state[key] = torch.zeros_like(own[key])
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise InputError(
            f"{where}: the file does not hold torchvision {depth} weights (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, other shapes {shapes[:3]})."
        )
    module.load_state_dict(state, strict=False)
