# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import urllib.error

import pytest
import torch

from shared.errors import InputError, MissingInputError
from shared.networks.dino_atten3d import DinoAtten3D, SliceAttention, dinov2_backbone
from shared.networks.dinov2 import DinoV2ViT


def tiny_backbone():
    torch.manual_seed(0)
    return DinoV2ViT(img_size=28, embed_dim=24, depth=1, num_heads=2)


def tiny_net(num_classes=2, gated=False):
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
    # the paper's plain tanh attention, 64 wide as in the authors' code: no gate
    assert not net.attention.gated and isinstance(net.attention.attention_u, torch.nn.Identity)
    assert (net.attention.attention_v.in_features, net.attention.attention_v.out_features) == (384, 64)
    trainable = sum(p.numel() for p in DinoAtten3D(2, backbone_weights=None).parameters() if p.requires_grad)
    assert trainable == (384 * 64 + 64 + 64 + 1) + (384 * 256 + 256 + 256 * 128 + 128) + (128 * 2 + 2) == 156_419


def test_default_attention_is_the_papers_equation():
    """alpha = softmax_j(w^T tanh(W_1 z_j)) over the valid slices, pooled = sum_j alpha_j z_j."""
    torch.manual_seed(0)
    att = SliceAttention(6, 4)
    z = torch.randn(2, 5, 6)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    pooled, w = att(z, mask)
    w1, b1 = att.attention_v.weight, att.attention_v.bias
    w2, b2 = att.score.weight, att.score.bias
    for b in range(2):
        n = int(mask[b].sum())
        e = torch.stack([(w2 @ torch.tanh(w1 @ z[b, j] + b1) + b2).squeeze() for j in range(n)])
        alpha = torch.softmax(e, 0)
        torch.testing.assert_close(w[b, :n], alpha)
        assert torch.all(w[b, n:] == 0)
        torch.testing.assert_close(pooled[b], (alpha[:, None] * z[b, :n]).sum(0))


def test_the_authors_head_ends_with_a_relu():
    """embedding_relu=True: z = ReLU(W_4 ReLU(W_3 h + b_3) + b_4), the embedding the losses see and the classifier
    reads; the default ends linear. Same parameters either way."""
    ours = DinoAtten3D(2, backbone=tiny_backbone(), embed_dim=24, attention_hidden=8, hidden_dims=(16, 8))
    public = DinoAtten3D(
        2, backbone=tiny_backbone(), embed_dim=24, attention_hidden=8, hidden_dims=(16, 8), embedding_relu=True
    )
    public.load_state_dict(ours.state_dict())
    h = torch.randn(3, 24)
    w3, b3, w4, b4 = (
        p.detach()
        for p in (ours.embedding[0].weight, ours.embedding[0].bias)
        + (ours.embedding[-1].weight, ours.embedding[-1].bias)
    )
    torch.testing.assert_close(public.embedding(h), torch.relu(torch.relu(h @ w3.t() + b3) @ w4.t() + b4))
    torch.testing.assert_close(ours.embedding(h), torch.relu(h @ w3.t() + b3) @ w4.t() + b4)


def test_backbone_weight_problems_name_the_id(tmp_path, monkeypatch):
    with pytest.raises(MissingInputError, match=r"config id 'backbone_weights': .*not found: .*none.pth; expected"):
        dinov2_backbone(str(tmp_path / "none.pth"))
    torch.save({"head.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="'backbone_weights': state dict is not a DINOv2 checkpoint"):
        dinov2_backbone(str(tmp_path / "other.pth"))
    (tmp_path / "cut.pth").write_bytes((tmp_path / "other.pth").read_bytes()[:64])
    with pytest.raises(InputError, match="cut.pth is truncated or not a PyTorch / safetensors weights file"):
        dinov2_backbone(str(tmp_path / "cut.pth"))
    # offline, not in torch's hub cache: the message says where to put the official file
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    offline = urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(offline))
    with pytest.raises(MissingInputError) as e:
        dinov2_backbone("official")
    message = str(e.value)
    assert message.startswith("config id 'backbone_weights' is 'official': DINOv2 ViT-S/14 weights are not available")
    assert str(tmp_path / "hub" / "checkpoints" / "dinov2_vits14_pretrain.pth") in message


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


def test_a_resnet_slice_encoder_swaps_in_for_the_vit(tmp_path):
    """The paper's backbone swap: a 2D ResNet-18 with ImageNet weights from a torchvision file (written here) as
    the slice encoder, its pooled 512-d features feeding the same attention and head."""
    from shared.networks.dino_atten3d import CNNSliceEncoder

    reference = CNNSliceEncoder("resnet18", weights="random")
    state = {
        k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v for k, v in reference.trunk.state_dict().items()
    }
    state = {k: v for k, v in state.items() if not k.endswith("downsample.0.bias")}  # torchvision has none
    state.update({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)})
    torch.save(state, tmp_path / "resnet18.pth")
    encoder = CNNSliceEncoder("resnet18", weights=str(tmp_path / "resnet18.pth"))
    assert encoder.embed_dim == 512
    assert torch.equal(encoder.trunk.state_dict()["layer2.0.conv1.weight"], state["layer2.0.conv1.weight"])
    net = DinoAtten3D(2, backbone=encoder, embed_dim=encoder.embed_dim, attention_hidden=8, hidden_dims=(16, 8))
    assert net(torch.rand(2, 3, 32, 32, 5)).shape == (2, 2)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    with pytest.raises(InputError, match="config id 'backbone_weights'.*does not hold torchvision resnet34"):
        CNNSliceEncoder("resnet34", weights=str(tmp_path / "resnet18.pth"))
