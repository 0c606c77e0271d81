# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import math

import pytest
import torch
import torch.nn.functional as F

from shared.brain.losses import ClassVarianceLoss, DinoAtten3DLoss, SupConLoss


def naive_supcon(z, y, t):
    z = F.normalize(z, dim=1)
    total, anchors = 0.0, 0
    for i in range(len(y)):
        pos = [p for p in range(len(y)) if p != i and y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in range(len(y)) if a != i)
        total += -sum(float(z[i] @ z[p]) / t - math.log(denom) for p in pos) / len(pos)
        anchors += 1
    return total / anchors


def test_supcon_matches_definition():
    torch.manual_seed(0)
    z, y = torch.randn(7, 5), torch.tensor([0, 1, 0, 2, 1, 0, 2])
    assert SupConLoss(0.07)(z, y).item() == pytest.approx(naive_supcon(z, y, 0.07), rel=1e-4)
    # anchors without a positive (class 3) are skipped
    y2 = torch.tensor([0, 1, 0, 3, 1, 0, 1])
    assert SupConLoss(0.5)(z, y2).item() == pytest.approx(naive_supcon(z, y2, 0.5), rel=1e-4)


def test_supcon_prefers_clusters_and_is_scale_free():
    y = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0], [0.9, 0.1], [-1, 0], [-0.9, -0.1]])
    mixed = torch.tensor([[1.0, 0], [-1, 0], [0.9, 0.1], [-0.9, -0.1]])
    loss = SupConLoss()
    assert loss(clustered, y) < loss(mixed, y)
    torch.testing.assert_close(loss(clustered * 10, y), loss(clustered, y))
    z = torch.randn(3, 4, requires_grad=True)
    out = loss(z, torch.tensor([0, 1, 2]))  # no positive pair at all
    assert out.item() == 0.0 and out.requires_grad


def test_class_variance_follows_the_paper_averaged_over_dimensions():
    """1/C sum_c 1/(N_c E) sum_i ||z_i - mu_c||^2, C the classes in the batch (a singleton adds 0 but counts)."""
    loss = ClassVarianceLoss(normalize=False)
    z = torch.tensor([[1.0, 0], [3.0, 0], [0, 5.0], [0, 5.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert loss(z, y).item() == pytest.approx((2 / (2 * 2) + 0.0) / 2)  # class 0: ||(-1,0)||^2 + ||(1,0)||^2 = 2
    assert loss(z[:3], y[:3]).item() == pytest.approx((2 / (2 * 2) + 0.0) / 2)  # class 1 is a singleton: 0, counted
    assert ClassVarianceLoss()(z, y).item() == pytest.approx(0.0)  # same directions after normalisation
    out = loss(torch.randn(2, 3, requires_grad=True), torch.tensor([0, 1]))
    assert out.item() == 0.0 and out.requires_grad
    # independent of the width: the mean over the 128 dimensions, not their sum (128x larger)
    torch.manual_seed(0)
    e, labels = torch.randn(8, 128), torch.tensor([0, 1] * 4)
    per_class = [((e[labels == c] - e[labels == c].mean(0)) ** 2).sum(1).mean() for c in (0, 1)]
    assert loss(e, labels).item() == pytest.approx(float(sum(per_class) / 2 / 128), rel=1e-5)


def test_composite_uses_network_embedding_hook():
    torch.manual_seed(0)
    embedding = torch.nn.Linear(6, 4)
    classifier = torch.nn.Linear(4, 3)
    loss = DinoAtten3DLoss(embedding_module=embedding, supcon_weight=0.5, variance_weight=0.1)
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    e = embedding(x)
    logits = classifier(e)
    value = loss(logits, y.unsqueeze(1))
    expected = F.cross_entropy(logits, y) + 0.5 * SupConLoss(0.07)(e, y) + 0.1 * ClassVarianceLoss()(e, y)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert embedding.weight.grad is not None and embedding.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="needs the batch's embeddings"):
        loss(logits.detach(), y)  # the captured embedding was consumed; no new forward happened
    assert torch.isclose(DinoAtten3DLoss(supcon_weight=0, variance_weight=0)(logits, y), F.cross_entropy(logits, y))


def test_supcon_over_all_anchors_is_the_authors_mean():
    """Three samples, labels (0, 0, 1): anchors 0 and 1 have a positive, anchor 2 has none. The authors' code
    averages over all three (anchor 2 counts 0); Khosla et al. over the two that have a positive."""
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    t = 0.5
    s = z @ z.t() / t

    def log_p(i, j):  # log softmax over the other samples
        others = [k for k in range(3) if k != i]
        return s[i, j] - torch.logsumexp(s[i, others], dim=0)

    m0, m1 = log_p(0, 1), log_p(1, 0)
    assert torch.allclose(SupConLoss(t, anchors="all")(z, labels), -(m0 + m1 + 0.0) / 3)
    assert torch.allclose(SupConLoss(t)(z, labels), -(m0 + m1) / 2)
    with pytest.raises(ValueError, match="anchors"):
        SupConLoss(t, anchors="some")
