import pytest
import torch

from shared.networks.dino_atten3d import DinoAtten3D, SliceAttention
from shared.networks.dinov2 import DinoV2ViT


def tiny_backbone():
    torch.manual_seed(0)
    return DinoV2ViT(img_size=28, embed_dim=24, depth=1, num_heads=2)


def tiny_net(num_classes=2, gated=True):
    return DinoAtten3D(
        num_classes,
        backbone=tiny_backbone(),
        embed_dim=24,
        attention_hidden=8,
        gated_attention=gated,
        hidden_dims=(16, 8),
    )


def test_default_is_vits14_with_paper_head():
    net = DinoAtten3D(num_classes=4, backbone_weights=None)
    assert isinstance(net.backbone, DinoV2ViT) and net.backbone.embed_dim == 384
    widths = [(m.in_features, m.out_features) for m in net.embedding if isinstance(m, torch.nn.Linear)]
    assert widths == [(384, 256), (256, 128)]
    assert (net.classifier.in_features, net.classifier.out_features) == (128, 4)
    assert not any(p.requires_grad for p in net.backbone.parameters())


@pytest.mark.parametrize("num_classes", [2, 5])
def test_shapes_slices_and_embeddings(num_classes):
    net = tiny_net(num_classes)
    slices = torch.randn(2, 3, 28, 28, 4)
    logits, emb, weights = net.forward_with_attention(slices)
    assert logits.shape == (2, num_classes) and emb.shape == (2, 8) and weights.shape == (2, 4)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    # the cached path (embeddings) gives the same logits as the slice path
    torch.testing.assert_close(net(net.embed_slices(slices)), logits)
    with pytest.raises(ValueError, match="expected slices"):
        net(torch.randn(2, 24))
    with pytest.raises(ValueError, match="24 channels"):
        net(torch.randn(2, 7, 4))


def test_gated_and_plain_attention():
    gated, plain = SliceAttention(24, 8, gated=True), SliceAttention(24, 8, gated=False)
    assert sum(p.numel() for p in gated.parameters()) == sum(p.numel() for p in plain.parameters()) + 24 * 8 + 8
    z = torch.randn(3, 5, 24)
    for m in (gated, plain):
        pooled, w = m(z, torch.ones(3, 5, dtype=torch.bool))
        torch.testing.assert_close(pooled, (w.unsqueeze(-1) * z).sum(1))


def test_zero_padding_gets_no_attention():
    net = tiny_net().eval()
    emb = torch.randn(1, 24, 3)
    padded = torch.cat([emb, torch.zeros(1, 24, 2)], dim=2)
    logits, _, w = net.forward_with_attention(padded)
    assert torch.all(w[:, 3:] == 0)
    torch.testing.assert_close(logits, net(emb))


def test_frozen_backbone_and_trainable_head():
    net = tiny_net().train()
    assert not net.backbone.training  # frozen backbone stays in eval mode
    loss = net(torch.randn(2, 3, 28, 28, 3)).sum()
    loss.backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    for m in (net.attention, net.embedding, net.classifier):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_torchscript():
    net = tiny_net().eval()
    x = torch.randn(1, 3, 28, 28, 3)
    scripted = torch.jit.script(net)
    torch.testing.assert_close(scripted(x), net(x))
    e = net.embed_slices(x)
    torch.testing.assert_close(scripted(e), net(e))


def test_learns_slice_level_signal():
    """One informative slice among eight: attention must find it, training accuracy reaches 100%."""
    torch.manual_seed(0)
    n, s, d = 64, 8, 24
    x = torch.randn(n, d, s)
    y = torch.arange(n) % 2
    pos = torch.randint(0, s, (n,))
    x[torch.arange(n), 0, pos] = torch.where(y == 1, 4.0, -4.0)
    net = tiny_net()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    logits, _, w = net.forward_with_attention(x)
    assert (logits.argmax(1) == y).float().mean() == 1.0
    # most attention lands on the informative slice
    assert w[torch.arange(n), pos].mean() > 1.0 / s


def test_batches_of_different_slice_counts_match_single_volumes():
    """The bundle's collate pads the slice axis at the end with zeros; padded batches give per-volume results."""
    import functools

    from monai.data import pad_list_data_collate

    net = tiny_net().eval()
    a, b = torch.randn(24, 3), torch.randn(24, 6)
    collate = functools.partial(pad_list_data_collate, method="end")
    batch = collate([{"image": a, "label": 0}, {"image": b, "label": 1}])["image"]
    assert batch.shape == (2, 24, 6)
    with torch.no_grad():
        torch.testing.assert_close(net(batch), torch.cat([net(a[None]), net(b[None])]))
