import os

import pytest
import torch
import torch.nn.functional as F

from shared.networks.ai_cnet3d import (
    AICNet3D,
    AnatomicalCrossAttentionBlock,
    ChannelCrossAttention,
    ExplainInferer,
    load_aicnet3d_checkpoint,
)

SHAPE = (2, 1, 16, 12, 16)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "kind,count", [("hemiretinal", 241_682), ("onh_macula", 241_682), ("both", 291_266), ("none", 222_466)]
)
def test_parameter_counts(kind, count):
    assert n_params(AICNet3D(attention_type=kind)) == count


@pytest.mark.parametrize("kind", ["hemiretinal", "onh_macula", "both", "none"])
def test_forward_shapes_and_script(kind):
    torch.manual_seed(0)
    net = AICNet3D(attention_type=kind).eval()
    x = torch.randn(*SHAPE)
    y = net(x)
    assert y.shape == (2, 2)
    scripted = torch.jit.script(net)
    assert torch.allclose(scripted(x), y, atol=1e-5)
    # odd-sized halves (middle slice keeps only the skip path) and other positions
    net2 = AICNet3D(attention_type=kind, attention_positions=(1, 3)).eval()
    assert net2(torch.randn(1, 1, 18, 15, 22)).shape == (1, 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="attention_type"):
        AICNet3D(attention_type="spatial")
    with pytest.raises(ValueError, match="attention_positions"):
        AICNet3D(attention_positions=(2, 6))
    with pytest.raises(ValueError, match="B, C, S, A, L"):
        AICNet3D()(torch.randn(1, 32, 24, 28))


def test_gram_form_equals_direct_attention():
    torch.manual_seed(1)
    attn = ChannelCrossAttention(32, 4)
    with torch.no_grad():
        attn.temperature.uniform_(0.5, 3.0)
    q, k = torch.randn(2, 40, 32), torch.randn(2, 40, 32)
    b, n, c = q.shape
    qq = attn.q(q).reshape(b, n, 4, 8).permute(0, 2, 3, 1)
    kv = attn.kv(k).reshape(b, n, 2, 4, 8).permute(2, 0, 3, 4, 1)
    a = (F.normalize(qq, dim=-1) @ F.normalize(kv[0], dim=-1).transpose(-2, -1)) * attn.temperature
    ref = attn.proj((a.softmax(-1) @ kv[1]).permute(0, 3, 1, 2).reshape(b, n, c))
    assert torch.allclose(attn(q, k), ref, atol=1e-5)


def _uniform_attention_block(kind):
    torch.manual_seed(2)
    block = AnatomicalCrossAttentionBlock(8, kind, num_heads=2, layer_scale_init=1.0).eval()
    with torch.no_grad():
        for a in block.attn:
            a.temperature.zero_()  # uniform attention: each output voxel depends only on its paired partner voxel
    return block


@pytest.mark.parametrize(
    "kind,voxel,expected",
    [
        # (S, A, L) of the perturbed voxel in one part -> voxels whose output must change
        ("hemiretinal", (1, 2, 3), {(1, 2, 3), (6, 2, 3)}),  # superior half -> mirrored voxel in the inferior half
        ("onh_macula", (1, 2, 3), {(1, 2, 3), (1, 2, 6)}),  # macula half -> mirrored voxel in the ONH half
        ("both", (1, 2, 3), {(1, 2, 3), (6, 2, 3), (1, 2, 6)}),  # quadrant -> its two partners
    ],
)
def test_outputs_land_at_query_voxels(kind, voxel, expected):
    block = _uniform_attention_block(kind)
    x = torch.randn(1, 8, 8, 4, 10)
    x2 = x.clone()
    x2[0, :, voxel[0], voxel[1], voxel[2]] += 3.0 * torch.randn(8)  # not a constant: LayerNorm would cancel it
    with torch.no_grad():
        diff = (block(x2) - block(x)).abs().amax(dim=1)[0]
    changed = {tuple(int(i) for i in v) for v in torch.nonzero(diff > 1e-5)}
    assert changed == expected


def test_perturbing_one_half_changes_the_other_half():
    torch.manual_seed(3)
    block = AnatomicalCrossAttentionBlock(8, "hemiretinal", num_heads=2, layer_scale_init=1.0).eval()
    x = torch.randn(1, 8, 8, 4, 6)
    x2 = x.clone()
    x2[:, :, :4] += torch.randn(1, 8, 4, 4, 6)  # superior half only
    with torch.no_grad():
        d = (block(x2) - block(x)).abs()
    assert d[:, :, 4:].amax() > 1e-3  # the inferior half sees it through cross-attention
    block.gamma.data.zero_()
    with torch.no_grad():
        d = (block(x2) - block(x)).abs()
    assert d[:, :, 4:].amax() < 1e-6  # ... and only through it


def test_explain_maps_and_gradcam_from_logit():
    torch.manual_seed(4)
    net = AICNet3D(attention_type="both").eval()
    x = torch.randn(*SHAPE)
    with torch.no_grad():  # evaluators run under no_grad; explain must still work
        out = net.explain(x, target=1, upsample=True)
    assert out["care"].shape == out["gradcam"].shape == (2, 1, 2, 1, 2)
    assert out["care_up"].shape == out["gradcam_up"].shape == (2, 1, 16, 12, 16)
    for k in ("care", "gradcam"):
        assert out[k].min() >= 0 and out[k].amax(dim=(1, 2, 3, 4)).le(1 + 1e-6).all()
    # Grad-CAM of the class logit: for GAP + linear the weights are the classifier row of the class
    feats = {}
    h = net.stages[-1].conv.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    with torch.no_grad():
        net(x)
    h.remove()
    cam = F.relu((net.classifier.weight[1].view(1, -1, 1, 1, 1) * feats["a"]).sum(1, keepdim=True))
    cam = cam / cam.flatten(1).amax(1).view(-1, 1, 1, 1, 1)
    assert torch.allclose(out["gradcam"], cam, atol=1e-5)
    assert torch.allclose(out["logits"], net(x))


def test_consistency_gradient_reaches_the_network():
    torch.manual_seed(5)
    net = AICNet3D(attention_type="hemiretinal").train()
    x = torch.randn(*SHAPE)
    out = net.explain(x, create_graph=True)
    (out["care"] - out["gradcam"]).pow(2).mean().backward()
    assert net.stages[1].block.attn[0].q.weight.grad.abs().sum() > 0  # through CARE
    assert net.classifier.weight.grad.abs().sum() > 0  # only through Grad-CAM (the loss has no logit term)
    net.zero_grad()
    out = net.explain(x, create_graph=False)
    assert not out["gradcam"].requires_grad


def test_explain_inferer_and_none_type():
    net = AICNet3D(attention_type="onh_macula")
    out = ExplainInferer(upsample=True)(torch.randn(*SHAPE), net)
    assert set(out) == {"logits", "care", "gradcam", "care_up", "gradcam_up"}
    with pytest.raises(ValueError, match="CARE"):
        AICNet3D(attention_type="none").explain(torch.randn(*SHAPE))


def test_checkpoint_of_another_attention_type(tmp_path):
    src = AICNet3D(attention_type="hemiretinal")
    path = os.path.join(tmp_path, "model.pt")
    torch.save({"model": src.state_dict()}, path)
    load_aicnet3d_checkpoint(AICNet3D(attention_type="hemiretinal"), path)
    with pytest.raises(ValueError, match="attention_type='hemiretinal'"):
        load_aicnet3d_checkpoint(AICNet3D(attention_type="onh_macula"), path)  # same keys and shapes
    with pytest.raises(ValueError, match="attention_positions"):
        AICNet3D(attention_positions=(2, 3)).load_state_dict(src.state_dict())
    with pytest.raises(FileNotFoundError, match="stage-1 checkpoint not found: .*missing.pt"):
        load_aicnet3d_checkpoint(src, os.path.join(tmp_path, "missing.pt"))


def test_tiny_model_learns_hemiretinal_asymmetry():
    # class 1: bright band in the superior half only; class 0: the same band in both halves
    torch.manual_seed(6)
    x = torch.rand(8, 1, 12, 8, 8) * 0.2
    y = torch.arange(8) % 2
    x[:, :, :, 3:5] += 0.8
    x[y == 1, :, 6:, 3:5] -= 0.8
    net = AICNet3D(attention_type="hemiretinal", channels=8, num_heads=2)
    opt = torch.optim.NAdam(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean() == 1.0


def test_stage2_refuses_ddp(tmp_path):
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already running")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(AICNet3D(channels=8, num_heads=2))
        with pytest.raises(RuntimeError, match="single process"):
            ExplainInferer(create_graph=True)(torch.randn(*SHAPE), ddp)
        assert ExplainInferer()(torch.randn(*SHAPE), ddp)["logits"].shape == (2, 2)  # inference is fine
    finally:
        dist.destroy_process_group()
