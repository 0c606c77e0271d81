# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import pytest
import torch
import torch.nn.functional as F

from shared.networks.ai_cnet3d import AICNet3D
from shared.oct.consistency import MapDistance, MultiTaskConsistencyLoss
from shared.oct.explain import ExplainInferer


@pytest.mark.parametrize("kind", ["mse", "ssim", "pearson", "kl"])
def test_distance_zero_for_equal_maps_and_positive_otherwise(kind):
    torch.manual_seed(0)
    a = torch.rand(2, 1, 6, 5, 7)
    b = torch.rand(2, 1, 6, 5, 7)
    d = MapDistance(kind)
    assert d(a, a).abs() < 1e-4
    assert d(a, b) > 1e-2
    # differentiable in both arguments
    a.requires_grad_(True)
    d(a, b).backward()
    assert a.grad.abs().sum() > 0


def test_distance_values():
    a = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3, 1, 1)
    b = torch.tensor([1.0, 0.5, 0.0]).view(1, 1, 3, 1, 1)
    assert torch.isclose(MapDistance("mse")(a, b), torch.tensor(2 / 3))
    assert torch.isclose(MapDistance("pearson")(a, b), torch.tensor(2.0), atol=1e-4)  # r = -1
    # SSIM is MONAI's SSIMLoss
    with pytest.raises(ValueError, match="same shape"):
        MapDistance("mse")(a, b[:, :, :2])
    with pytest.raises(ValueError, match="one of"):
        MapDistance("l1")


def test_multitask_loss_mixes_terms():
    torch.manual_seed(1)
    logits = torch.randn(3, 2)
    y = torch.tensor([0, 1, 1])
    care, cam = torch.rand(3, 1, 4, 4, 4), torch.rand(3, 1, 4, 4, 4)
    pred = {"logits": logits, "care": care, "gradcam": cam}
    ce, mse = F.cross_entropy(logits, y), F.mse_loss(care, cam)
    loss = MultiTaskConsistencyLoss(lam=0.75)
    assert torch.isclose(loss(pred, y), 0.25 * ce + 0.75 * mse)
    assert torch.isclose(MultiTaskConsistencyLoss(lam=0.0)(pred, y), ce)
    with pytest.raises(TypeError, match="ExplainInferer"):
        loss(logits, y)
    with pytest.raises(ValueError, match="lam"):
        MultiTaskConsistencyLoss(lam=1.5)


def test_stage2_step_trains_attention_through_consistency():
    torch.manual_seed(2)
    net = AICNet3D(attention_type="hemiretinal", channels=8, num_heads=2)
    x, y = torch.randn(2, 1, 16, 12, 16), torch.tensor([0, 1])
    pred = ExplainInferer(create_graph=True)(x, net)
    MultiTaskConsistencyLoss(lam=1.0)(pred, y).backward()  # consistency term only
    assert net.stages[1].block.attn[0].kv.weight.grad.abs().sum() > 0
    assert net.stages[4].conv.conv.weight.grad.abs().sum() > 0
