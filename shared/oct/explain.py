# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The inferer that runs AI-CNet3D's explanation (:meth:`shared.networks.ai_cnet3d.AICNet3D.explain`) in MONAI's
engines: stage-2 training and inference with saved CARE / Grad-CAM maps."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.inferers import Inferer

from shared.networks.ai_cnet3d import AICNet3D

__all__ = ["ExplainInferer"]


class ExplainInferer(Inferer):
    """Inferer returning :meth:`AICNet3D.explain`'s dict: ``logits``, ``care``, ``gradcam`` (+ ``*_up``).

    Used by stage-2 training (``create_graph=True``) and by inference when maps are saved. An engine stores the
    dict under ``pred``; post-processing flattens it with ``FlattenSubKeysd(keys="pred")`` and copies ``logits``
    back to ``pred``.

    Args:
        create_graph: keep the Grad-CAM graph (training).
        upsample: add maps at input resolution.
        target: class explained (``None``: predicted class).
    """

    def __init__(self, create_graph: bool = False, upsample: bool = False, target: int | None = None) -> None:
        super().__init__()
        self.create_graph = create_graph
        self.upsample = upsample
        self.target = target

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args, **kwargs) -> dict[str, torch.Tensor]:
        if isinstance(network, nn.parallel.DistributedDataParallel) and self.create_graph:
            # explain() bypasses DDP's forward, so DDP would not synchronise the gradients of this step
            raise RuntimeError("stage-2 fine-tuning (ExplainInferer with create_graph) runs in a single process.")
        net = network.module if hasattr(network, "module") and not isinstance(network, AICNet3D) else network
        if not hasattr(net, "explain"):
            raise TypeError(f"ExplainInferer needs a network with an explain() method, got {type(net).__name__}.")
        return net.explain(inputs, target=self.target, create_graph=self.create_graph, upsample=self.upsample)
