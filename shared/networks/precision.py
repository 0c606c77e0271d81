# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Compute precision of a network's forward pass: ``"fp32"``, ``"bf16"`` or ``"auto"``.

bf16 runs under ``torch.autocast`` (matrix products and convolutions in bf16, weights kept fp32), so checkpoints
load and save unchanged. It pays only where the hardware computes bf16 natively: on a CPU that means AMX tiles or
AVX-512-BF16; elsewhere oneDNN emulates it, slower than fp32.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["PRECISIONS", "cpu_has_native_bf16", "resolve_precision", "check_precision"]

PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 matrix products natively (AMX tiles or AVX-512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu probes, private but stable
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError that lists them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    return precision


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """
    The precision, ``"bf16"`` or ``"fp32"``, that ``precision`` means on ``device``: ``"auto"`` is bf16 on a CPU
    with native bf16 (:func:`cpu_has_native_bf16`) and on a CUDA GPU that supports it, fp32 elsewhere.
    """
    if check_precision(precision) != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"
