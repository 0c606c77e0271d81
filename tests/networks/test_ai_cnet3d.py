# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from shared.networks.ai_cnet3d import (
    AICNet3D,
    AnatomicalCrossAttentionBlock,
    ChannelCrossAttention,
    PublicCrossAttentionBlock,
    _channels_last,
    _MirrorStats,
)
from shared.oct.consistency import MultiTaskConsistencyLoss
from shared.oct.explain import ExplainInferer

SHAPE = (2, 1, 16, 12, 16)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "kind,count",
    [("hemiretinal", 241_682), ("onh_macula", 241_682), ("both", 291_266), ("none", 222_466), ("depth", 241_682)],
)
def test_parameter_counts(kind, count):
    assert n_params(AICNet3D(attention_type=kind)) == count


@pytest.mark.parametrize("kind,count", [("hemiretinal", 241_426), ("onh_macula", 241_426), ("both", 291_010)])
def test_parameter_counts_of_the_authors_block(kind, count):
    """The public code counts 256 more per network: two LayerNorms per block that its forward pass never uses."""
    assert n_params(AICNet3D(attention_type=kind, attention_block="public")) == count


@pytest.mark.parametrize("kind", ["hemiretinal", "onh_macula", "both", "none", "depth"])
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


def test_checkpoint_of_another_attention_type():
    src = AICNet3D(attention_type="hemiretinal")
    AICNet3D(attention_type="hemiretinal").load_state_dict(src.state_dict())
    with pytest.raises(ValueError, match="attention_type='hemiretinal'"):
        AICNet3D(attention_type="onh_macula").load_state_dict(src.state_dict())  # same keys and shapes
    with pytest.raises(ValueError, match="attention_positions"):
        AICNet3D(attention_positions=(2, 3)).load_state_dict(src.state_dict())


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


# --- today's network against our previous implementation (frozen in bench/reference) -------------------------

REFERENCE = Path(__file__).resolve().parents[2] / "bench" / "reference" / "ai_cnet3d_v0_1.py"
CASES = [((2, 1, 16, 12, 16), (2, 4)), ((1, 1, 18, 15, 22), (1, 3)), ((2, 1, 20, 8, 24), (2, 5))]


@pytest.fixture(scope="module")
def previous():
    spec = importlib.util.spec_from_file_location("ai_cnet3d_v0_1", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pair(previous, kind, positions):
    """The previous and today's network holding one perturbed state dict (random BN statistics too)."""
    torch.manual_seed(7)
    old = previous.AICNet3D(attention_type=kind, attention_positions=positions)
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for m in old.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    new = AICNet3D(attention_type=kind, attention_positions=positions)
    new.load_state_dict(old.state_dict())
    return old, new


def _assert_grads_match(old, new):
    grads = dict(old.named_parameters())
    scale = max(p.grad.abs().max() for p in grads.values() if p.grad is not None)
    for name, p in new.named_parameters():
        assert (p.grad is None) == (grads[name].grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, grads[name].grad, rtol=1e-3, atol=1e-5 * scale), name


@pytest.mark.parametrize("kind", ["hemiretinal", "onh_macula", "both", "none"])
@pytest.mark.parametrize("shape,positions", CASES, ids=["even", "odd", "attention_after_conv5"])
def test_same_function_as_previous_implementation(previous, kind, shape, positions):
    old, new = _pair(previous, kind, positions)
    x = torch.randn(*shape)
    y = torch.arange(shape[0]) % 2
    for net in (old, new):  # stage 1: logits, every gradient, BatchNorm statistics
        net.train().zero_grad()
        net.logits = net(x)
        F.cross_entropy(net.logits, y).backward()
    assert torch.allclose(new.logits, old.logits, atol=1e-5)
    _assert_grads_match(old, new)
    for name, buf in new.named_buffers():
        assert torch.allclose(buf.float(), dict(old.named_buffers())[name].float(), atol=1e-6), name
    with torch.no_grad():  # inference (BatchNorm folded into the convolutions)
        assert torch.allclose(new.eval()(x), old.eval()(x), atol=1e-5)
    if kind == "none":
        return
    loss = MultiTaskConsistencyLoss(lam=0.75)
    for net in (old, new):  # stage 2: CARE, Grad-CAM and the consistency loss's gradients
        net.train().zero_grad()
        net.maps = net.explain(x, create_graph=True)
        loss(net.maps, y).backward()
    for key in ("logits", "care", "gradcam", "care_up", "gradcam_up"):
        assert torch.allclose(new.maps[key], old.maps[key], atol=1e-5), key
    _assert_grads_match(old, new)
    with torch.no_grad():  # maps at inference
        maps_old, maps_new = old.eval().explain(x), new.eval().explain(x)
    for key in maps_new:
        assert torch.allclose(maps_new[key], maps_old[key], atol=1e-5), key


@pytest.mark.parametrize(
    "mirror_dims,shape", [([[1, 2]], (1, 2, 3, 2, 2, 3)), ([[1, 3], [2, 5]], (1, 2, 2, 2, 2, 1, 2, 3))]
)
def test_mirror_stats_backward(mirror_dims, shape):
    """The hand-written backward (one buffer, folded flips) equals the numerical gradient, twice differentiated."""
    parts = torch.randn(*shape, dtype=torch.double, requires_grad=True)
    fn = lambda t: _MirrorStats.apply(t, mirror_dims, 2 ** len(mirror_dims))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (parts,))
    assert torch.autograd.gradgradcheck(fn, (parts,))


def test_activations_stay_channels_last():
    x = torch.randn(2, 1, 16, 12, 16)
    view = _channels_last(x)
    assert view.data_ptr() == x.data_ptr() and view.is_contiguous(memory_format=torch.channels_last_3d)
    net = AICNet3D(attention_type="both", channels=8, num_heads=2)
    seen = []
    for stage in net.stages:
        for m in (stage.conv, stage.block):
            m.register_forward_hook(lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last_3d)))
    for mode in (True, False):
        net.train(mode)(x)
    assert len(seen) == 20 and all(seen)


def test_explain_grad_cam_without_backward(monkeypatch):
    """Conv 5 feeds pooling + linear: the Grad-CAM weights are the classifier row, so no backward is run (and no
    graph kept at inference). With attention after conv 5 the gradient is taken by autograd."""
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k))
    x = torch.randn(*SHAPE)
    net = AICNet3D(attention_type="hemiretinal").eval()
    with torch.no_grad():
        out = net.explain(x)
    assert not calls and not any(t.requires_grad for t in out.values())
    AICNet3D(attention_positions=(2, 5)).eval().explain(x)
    assert calls


def test_bf16_autocast_trains():
    """Mixed precision (an option, not the default): both stages run and give finite gradients."""
    torch.manual_seed(8)
    net = AICNet3D(attention_type="both", attention_positions=(2, 5), channels=8, num_heads=2).train()
    x, y = torch.randn(*SHAPE), torch.tensor([0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        stage1 = F.cross_entropy(net(x), y)
    stage1.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        stage2 = MultiTaskConsistencyLoss()(ExplainInferer(create_graph=True)(x, net), y)
    stage2.backward()
    assert torch.isfinite(stage1) and torch.isfinite(stage2)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def _public_equations(block: PublicCrossAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """The authors' hemiretinal block written out step by step, token by token (direct q, k, v; no Gram form)."""
    b, c, depth = x.shape[0], x.shape[1], x.shape[2]
    xt = x.permute(0, 2, 3, 4, 1)
    sup, inf = xt[:, : depth // 2].reshape(b, -1, c), xt[:, depth // 2 :].reshape(b, -1, c)
    n_sup, n_inf = block.norms[0](sup), block.norms[1](inf)

    def cross(attn, query, context):
        h = attn.num_heads
        d = c // h
        q, kv = query @ attn.q.weight.t(), context @ attn.kv.weight.t()
        k, v = kv[..., :c], kv[..., c:]
        heads = []
        for j in range(h):
            qh, kh, vh = (t[..., j * d : (j + 1) * d] for t in (q, k, v))  # (B, N, d)
            qh, kh = F.normalize(qh, dim=1), F.normalize(kh, dim=1)  # L2 over the tokens
            a = torch.softmax(attn.temperature[j] * qh.transpose(1, 2) @ kh, dim=-1)  # (B, d, d) channels
            heads.append((a @ vh.transpose(1, 2)).transpose(1, 2))  # token n: mix of v at the partner's token n
        return torch.cat(heads, dim=-1) @ attn.proj.weight.t() + attn.proj.bias

    update = torch.cat([cross(block.attn[0], n_sup, n_inf), cross(block.attn[1], n_inf, n_sup)], dim=1)
    a = xt + block.gamma * update.reshape(xt.shape)  # sup outputs at sup voxels: the first half of the tokens
    a = a.permute(0, 4, 1, 2, 3)
    return a + block.conv(a)


def test_the_authors_block_is_their_equations():
    """A hand-sized input (4 channels, 2 heads, 4 x 2 x 3 voxels): translation pairing, channel attention with
    L2-normalised q and k over the tokens, LayerScale gamma (1e-6 at start, set larger here to see it), and the
    1x1-conv residual."""
    torch.manual_seed(0)
    block = PublicCrossAttentionBlock(channels=4, attention_type="hemiretinal", num_heads=2).eval()
    assert torch.allclose(block.gamma, torch.full((4,), 1e-6))
    assert block.attn[0].attn_drop.p == 0.15 and block.drop.p == 0.1
    with torch.no_grad():
        block.gamma.fill_(0.7)
        for attn in block.attn:
            attn.temperature.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, 4, 2, 3)
    torch.testing.assert_close(block(x), _public_equations(block, x))


def test_the_authors_combined_block_pairs_each_quarter_with_two_partners():
    """Quarters (superior/inferior x macula/ONH) numbered 2 * S-half + L-half: each attends to its hemiretinal
    partner (S flipped) and its ONH/macula partner (L flipped); norms per ONH/macula side."""
    block = PublicCrossAttentionBlock(channels=4, attention_type="both", num_heads=2)
    assert block.pairs == [(0, 2), (0, 1), (1, 3), (1, 0), (2, 0), (2, 3), (3, 1), (3, 2)]
    x = torch.randn(1, 4, 4, 2, 4)
    assert block.eval()(x).shape == x.shape


def test_public_gradcam_uses_pre_norm_activations_and_constant_weights():
    """gradcam="public": the map is ReLU(sum_c mean(d logit / d Z_c) Z_c) of conv 5's output Z before its
    BatchNorm, max-normalised; its channel weights are constants, so a loss on the map does not reach the
    classifier, while ours (weights in the graph) does."""
    torch.manual_seed(0)
    net = AICNet3D(gradcam="public").eval()
    x = torch.randn(*SHAPE)
    captured = {}
    hook = net.stages[-1].conv.conv.register_forward_hook(lambda m, i, o: captured.update(z=o))
    out = net.explain(x, target=1, upsample=False)
    hook.remove()
    z = captured["z"]
    logit = net.classifier(net.stages[-1].post(net.stages[-1].conv.adn(z)).mean(dim=(2, 3, 4)))[:, 1].sum()
    (grad,) = torch.autograd.grad(logit, z)
    cam = F.relu((grad.mean(dim=(2, 3, 4), keepdim=True) * z).sum(1, keepdim=True))
    cam = cam / (cam.flatten(1).amax(1).view(-1, 1, 1, 1, 1) + 1e-8)
    torch.testing.assert_close(out["gradcam"], cam)
    for form, reaches in (("public", False), ("ours", True)):
        net = AICNet3D(gradcam=form).train()
        net.explain(x, create_graph=True, upsample=False)["gradcam"].sum().backward()
        grad = net.classifier.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches, form


def test_spatial_channel_attention_is_its_equations():
    """The paper's spatial + channel comparison (UNETR++'s paired attention, as the authors' code builds it) on a
    hand-sized map: 4 channels, 2 heads, 2 x 3 x 2 voxels projected to 5 tokens."""
    from shared.networks.ai_cnet3d import SpatialChannelAttentionBlock

    torch.manual_seed(0)
    block = SpatialChannelAttentionBlock(channels=4, num_tokens=12, proj_size=5, num_heads=2).eval()
    with torch.no_grad():
        block.gamma.fill_(0.5)
        block.temperature_channel.uniform_(0.5, 2.0)
        block.temperature_spatial.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, 2, 3, 2)
    b, c, n, h, d = 2, 4, 12, 2, 2
    t = block.norm(x.flatten(2).transpose(1, 2))  # (B, N, C)
    w = block.qkvv.weight  # (4C, C): rows q, k, v_channel, v_spatial, each head-major
    parts = [(t @ w[i * c : (i + 1) * c].t()).reshape(b, n, h, d).permute(0, 2, 3, 1) for i in range(4)]
    q, k, v_c, v_s = parts  # (B, h, d, N)
    e = block.token_proj
    k_p, v_p = k @ e.weight.t() + e.bias, v_s @ e.weight.t() + e.bias  # (B, h, d, P): the token axis projected
    qn, kn = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    a_c = torch.softmax(block.temperature_channel * (qn @ kn.transpose(-2, -1)), dim=-1)
    x_c = (a_c @ v_c).permute(0, 3, 1, 2).reshape(b, n, c)
    a_s = torch.softmax(block.temperature_spatial * (qn.transpose(-2, -1) @ k_p), dim=-1)
    x_s = (a_s @ v_p.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(b, n, c)
    epa = torch.cat([block.out_spatial(x_s), block.out_channel(x_c)], dim=-1)
    a = (x.flatten(2).transpose(1, 2) + block.gamma * epa).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(block(x), a + block.conv(a))
    with pytest.raises(ValueError, match="made for 12 voxels"):
        block(torch.randn(1, 4, 2, 2, 2))


def test_spatial_channel_network_sizes_its_blocks_from_the_input():
    net = AICNet3D(attention_type="spatial_channel", input_size=SHAPE[2:]).eval()
    assert [s.block.num_tokens for s in net.stages if s.has_attention] == [8 * 6 * 8, 4 * 3 * 4]
    x = torch.randn(*SHAPE)
    assert net(x).shape == (2, 2) and net.explain(x)["care"].shape[:2] == (2, 1)
    with pytest.raises(ValueError, match="needs input_size"):
        AICNet3D(attention_type="spatial_channel")
