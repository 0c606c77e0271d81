# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Pretrained weights kept in torch's hub cache: the file when it is there, else downloaded once (checked against the
hash prefix in its name when it has one), with one message that says where to put the file when the machine is
offline."""

from __future__ import annotations

import os
import re

import torch

__all__ = ["hub_weights_path"]


def hub_weights_path(url: str, what: str, hint: str = "") -> str:
    """Path of ``url``'s file in torch's hub cache (``$TORCH_HOME/hub/checkpoints/``), downloading it when missing.

    Args:
        url: where the file is published; its name is kept, and a ``-<8+ hex digits>`` suffix (torchvision's
            convention) is the SHA-256 prefix the download is checked against.
        what: the weights, for the message (``"DINOv2 ViT-S/14 weights"``).
        hint: what else the user can do, appended to the message (``" or pass its path as ..."``).

    Raises:
        RuntimeError: the file is not cached and cannot be downloaded (offline, proxy, disk, hash): the message
            gives the URL and the path to put the file at.
    """
    name = os.path.basename(url)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    if os.path.isfile(path):
        return path
    digest = re.search(r"-([0-9a-f]{8,})\.", name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(url, path, hash_prefix=digest.group(1) if digest else None, progress=True)
    except Exception as e:  # offline, proxy, disk, hash: one message that says what to do
        raise RuntimeError(
            f"{what} are not available offline and could not be downloaded ({e}). Download {url} on a connected "
            f"machine and put it at {path}{hint}."
        ) from e
    return path
