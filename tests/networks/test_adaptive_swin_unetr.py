# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import pytest
import torch
from monai.networks.nets import SwinUNETR

import shared.networks.adaptive_swin_unetr as asu
from shared.networks.adaptive_swin_unetr import (
    AdaptiveSwinUNETR,
    AdaptiveWindowAttention,
    FusedWindowAttention,
    MultiScaleFusion,
    check_roi_size,
    reference_window_attention,
    window_attention,
)

SMALL = dict(in_channels=1, out_channels=3, feature_size=12)
PINNED = {"swin_unetr": 4078077, "+msf": 4118049, "+adaptive": 4086281, "full": 4126253, "full+input": 4128248}


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_both_improvements_off_is_exactly_swin_unetr():
    torch.manual_seed(0)
    ref = SwinUNETR(**SMALL).eval()
    net = AdaptiveSwinUNETR(**SMALL, use_msf=False, adaptive_attention=False).eval()
    net.load_state_dict(ref.state_dict(), strict=True)  # same parameter names, nothing more
    x = torch.randn(1, 1, 64, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    assert _params(net) == _params(ref)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_starts_out_as_swin_unetr(spatial_dims):
    torch.manual_seed(0)
    ref = SwinUNETR(**SMALL, spatial_dims=spatial_dims).eval()
    net = AdaptiveSwinUNETR(**SMALL, spatial_dims=spatial_dims).eval()
    missing, unexpected = net.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and all(("msf" in k) or ("saliency" in k) or ("log_temperature" in k) for k in missing)
    x = torch.randn(1, 1, *([64] * spatial_dims))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-5)


def test_new_parameters_learn_and_change_the_output():
    torch.manual_seed(0)
    ref = SwinUNETR(**SMALL, spatial_dims=2).eval()
    net = AdaptiveSwinUNETR(**SMALL, spatial_dims=2, msf_stages=(0, 1, 2, 3, 4))
    missing, _ = net.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(2, 1, 64, 64)

    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(x).square().mean().backward()
    new_params = {n: p for n, p in net.named_parameters() if n in missing}
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in new_params.items() if "saliency" in n)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in new_params.items() if "msf" in n)
    assert all(p.grad is not None for n, p in new_params.items() if "log_temperature" in n)
    opt.step()
    net.eval()
    with torch.no_grad():
        assert not torch.allclose(net(x), ref(x), atol=1e-6)


def test_overheads_are_small():
    plain = _params(SwinUNETR(**SMALL))
    msf = _params(AdaptiveSwinUNETR(**SMALL, adaptive_attention=False)) - plain
    attn = _params(AdaptiveSwinUNETR(**SMALL, use_msf=False)) - plain
    assert 0 < msf < 0.15 * plain and 0 < attn < 0.15 * plain


def test_adaptive_attention_replaces_every_window_attention():
    net = AdaptiveSwinUNETR(**SMALL, use_msf=False)
    kinds = {type(m) for n, m in net.named_modules() if n.endswith(".attn")}
    assert kinds == {AdaptiveWindowAttention}


def test_saliency_bias_moves_attention_towards_salient_keys():
    torch.manual_seed(0)
    attn = AdaptiveWindowAttention(dim=8, num_heads=2, window_size=(2, 2, 2))
    x = torch.randn(3, 8, 8)
    base = attn(x, None)
    # a key token that deviates from its window (an edge) gets a positive bias for every head
    with torch.no_grad():
        attn.saliency[-1].bias.fill_(0.0)
        attn.saliency[-1].weight.fill_(1.0)
    assert not torch.allclose(attn(x, None), base)
    with torch.no_grad():
        attn.log_temperature.fill_(2.0)  # flatter attention
    assert torch.isfinite(attn(x, None)).all()


def test_multiscale_fusion_weights_and_identity_start():
    msf = MultiScaleFusion(4, kernel_sizes=(1, 3, 5, 7))
    assert torch.allclose(msf.branch_weights.sum(), torch.tensor(1.0))
    x = torch.randn(2, 4, 8, 8, 8)
    assert torch.equal(msf(x), x)
    with pytest.raises(ValueError, match="odd"):
        MultiScaleFusion(4, kernel_sizes=(2, 3))
    with pytest.raises(ValueError, match="msf_stages"):
        AdaptiveSwinUNETR(**SMALL, msf_stages=(5,))


def test_roi_size_check():
    assert check_roi_size([96, 64, 128]) == [96, 64, 128]
    assert check_roi_size([32, 128, 128]) == [32, 128, 128]  # a thin sagittal slab
    assert check_roi_size([32, 32, 64]) == [32, 32, 64]
    with pytest.raises(ValueError, match="multiple of 32"):
        check_roi_size([96, 80, 96])
    with pytest.raises(ValueError, match="more than one voxel"):
        check_roi_size([32, 32, 32])
    with pytest.raises(ValueError, match="positive multiple"):
        check_roi_size([0, 64, 64])


def test_anisotropic_patch_trains():
    """The smallest sides check_roi_size accepts run forward and backward in training mode."""
    net = AdaptiveSwinUNETR(**SMALL).train()
    out = net(torch.randn(1, 1, 32, 32, 64))
    out.sum().backward()
    assert out.shape[2:] == (32, 32, 64)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_tiny_2d_model_learns_squares():
    """A trivially learnable task: segment bright squares in noise (2D keeps it fast on a CPU)."""
    torch.manual_seed(0)
    net = AdaptiveSwinUNETR(1, 2, feature_size=12, spatial_dims=2, depths=(1, 1, 1, 1), msf_stages=(0, 1, 2))
    x = torch.randn(4, 1, 64, 64) * 0.3
    y = torch.zeros(4, 64, 64, dtype=torch.long)
    for i, (r, c) in enumerate([(5, 9), (30, 20), (12, 40), (40, 44)]):
        x[i, 0, r : r + 16, c : c + 16] += 2.0
        y[i, r : r + 16, c : c + 16] = 1
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    acc = (net(x).argmax(1) == y).float().mean()
    assert acc > 0.95


def _attention_inputs(b=6, h=2, n=8, d=4, nw=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=g, dtype=dtype, requires_grad=True) for _ in range(3))
    rel = torch.randn(h, n, n, generator=g, dtype=dtype, requires_grad=True)
    key_bias = torch.randn(b, h, n, generator=g, dtype=dtype, requires_grad=True)
    mask = torch.where(torch.rand(nw, n, n, generator=g) > 0.7, -100.0, 0.0).to(dtype)
    return q, k, v, rel, key_bias, mask


@pytest.mark.parametrize("chunk", [1, 2, 64])  # windows per chunk: 2 does not divide the 3 windows of an image
@pytest.mark.parametrize("with_mask", [True, False])
def test_fused_window_attention_matches_reference(monkeypatch, chunk, with_mask):
    q, k, v, rel, key_bias, mask = _attention_inputs()
    mask = mask if with_mask else None
    monkeypatch.setitem(asu._CHUNK_ELEMENTS, "cpu", chunk * rel.numel())
    inputs = (q, k, v, rel, key_bias, mask)
    out = window_attention(*inputs)
    ref = reference_window_attention(*inputs)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v, rel, key_bias), grad)
    want = torch.autograd.grad(ref, (q, k, v, rel, key_bias), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert torch.autograd.gradcheck(lambda *t: window_attention(*t, mask), (q, k, v, rel, key_bias))


def test_fused_window_attention_without_key_bias_and_in_float32():
    q, k, v, rel, _, mask = (t.detach().float().requires_grad_(t.requires_grad) for t in _attention_inputs())
    out = window_attention(q, k, v, rel, None, mask)
    ref = reference_window_attention(q, k, v, rel, None, mask)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    (g_rel,) = torch.autograd.grad(out.square().sum(), rel)
    (w_rel,) = torch.autograd.grad(ref.square().sum(), rel)
    torch.testing.assert_close(g_rel, w_rel, rtol=1e-4, atol=1e-5)


def _perturb(net: torch.nn.Module) -> None:
    """Give the zero-initialised additions (saliency, temperature, fusion) values, so they count."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "saliency" in name or "log_temperature" in name or "msf" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def test_adaptive_attention_fused_matches_step_by_step():
    torch.manual_seed(0)
    fused = AdaptiveWindowAttention(dim=16, num_heads=2, window_size=(2, 2, 2), qkv_bias=True)
    _perturb(fused)
    plain = AdaptiveWindowAttention(dim=16, num_heads=2, window_size=(2, 2, 2), qkv_bias=True)
    plain.load_state_dict(fused.state_dict())
    plain.fused = False
    x = torch.randn(4, 8, 16)
    mask = torch.where(torch.rand(2, 8, 8) > 0.5, -100.0, 0.0)
    out, ref = fused(x, mask), plain(x, mask)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_fast_path_computes_the_same_network():
    """The full network with its fast path (fused attention and fusion kernel, channels-last) against the same
    weights run step by step: same output and gradients to float precision."""
    torch.manual_seed(0)
    kw = dict(SMALL, depths=(1, 1, 1, 1), msf_stages=(0, 1, 2, 3, 4), msf_on_input=True)
    fast = AdaptiveSwinUNETR(**kw)
    _perturb(fast)
    slow = AdaptiveSwinUNETR(**kw, fast_path=False)
    slow.load_state_dict(fast.state_dict(), strict=True)
    for m in slow.modules():
        if isinstance(m, MultiScaleFusion):
            m.fused = False
    assert fast.fast_path and not slow.fast_path
    x = torch.randn(1, 1, 64, 64, 64)
    out, ref = fast(x), slow(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    out.square().mean().backward()
    ref.square().mean().backward()
    grads = dict(slow.named_parameters())
    for name, p in fast.named_parameters():
        if "saliency" in name or "log_temperature" in name or "relative_position" in name or "msf" in name:
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-3, atol=1e-5, msg=name)


def test_fast_path_on_plain_swin_unetr_loads_its_weights_strictly():
    torch.manual_seed(0)
    ref = SwinUNETR(**SMALL, depths=(1, 1, 1, 1)).eval()
    net = AdaptiveSwinUNETR(**SMALL, depths=(1, 1, 1, 1), use_msf=False, adaptive_attention=False, fast_path=True)
    net.load_state_dict(ref.state_dict(), strict=True)
    assert {type(m) for n, m in net.named_modules() if n.endswith(".attn")} == {FusedWindowAttention}
    x = torch.randn(1, 1, 64, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_fusion_kernel_is_the_weighted_branches(spatial_dims):
    torch.manual_seed(0)
    msf = MultiScaleFusion(4, kernel_sizes=(1, 3, 5), spatial_dims=spatial_dims)
    _perturb(torch.nn.ModuleDict({"msf": msf}))
    x = torch.randn(2, 4, *([9] * spatial_dims), requires_grad=True)
    fused = msf(x)
    msf.fused = False
    branches = msf(x)
    torch.testing.assert_close(fused, branches, rtol=1e-5, atol=1e-5)
    grads = [
        torch.autograd.grad(y.square().sum(), [x, msf.branch_logits, msf.branches[0].weight]) for y in (fused, branches)
    ]
    for g, w in zip(*grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_fusion_on_the_input_features():
    torch.manual_seed(0)
    ref = SwinUNETR(**SMALL, spatial_dims=2).eval()
    net = AdaptiveSwinUNETR(**SMALL, spatial_dims=2, msf_stages=(), msf_on_input=True, adaptive_attention=False)
    missing, unexpected = net.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("msf_input.") for k in missing)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), ref(x), rtol=1e-5, atol=1e-5)  # zero-initialised: identity
    net.train()
    net(x).square().mean().backward()
    assert net.msf_input.project.weight.grad.abs().sum() > 0  # the Swin encoder and skip 1 read it
    # off by default, and nothing to load then
    assert not any("msf_input" in k for k in AdaptiveSwinUNETR(**SMALL).state_dict())


def test_parameter_counts_are_pinned():
    """Fusing kernels and attention changes no parameter: counts as before (feature size 12)."""
    counts = {
        "swin_unetr": _params(SwinUNETR(**SMALL)),
        "+msf": _params(AdaptiveSwinUNETR(**SMALL, adaptive_attention=False)),
        "+adaptive": _params(AdaptiveSwinUNETR(**SMALL, use_msf=False)),
        "full": _params(AdaptiveSwinUNETR(**SMALL)),
        "full+input": _params(AdaptiveSwinUNETR(**SMALL, msf_on_input=True)),
    }
    assert counts == PINNED


def test_traces_for_export():
    torch.manual_seed(0)
    net = AdaptiveSwinUNETR(**SMALL, spatial_dims=2).eval()
    _perturb(net)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        traced = torch.jit.trace(net, x, check_trace=False)
        torch.testing.assert_close(traced(x), net(x), rtol=1e-4, atol=1e-4)


def test_takes_meta_tensors_from_monai_pipelines():
    from monai.data import MetaTensor, list_data_collate

    torch.manual_seed(0)
    net = AdaptiveSwinUNETR(**SMALL, spatial_dims=2).eval()
    _perturb(net)
    batch = list_data_collate([{"image": MetaTensor(torch.randn(1, 64, 64), meta={"id": i})} for i in range(2)])
    with torch.no_grad():
        torch.testing.assert_close(net(batch["image"]).as_tensor(), net(batch["image"].as_tensor()))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def test_bf16_precision_follows_fp32_in_output_and_every_gradient():
    """bf16 autocast (weights fp32, output fp32) against fp32 on the same weights. At a 64-voxel side the
    bottleneck is 2 voxels deep, where oneDNN's bf16 convolution backward returns garbage: the network runs that
    block in fp32, so its gradients must follow fp32's too."""
    torch.manual_seed(0)
    kw = dict(SMALL, depths=(1, 1, 1, 1))
    ref = AdaptiveSwinUNETR(**kw)
    _perturb(ref)
    bf16 = AdaptiveSwinUNETR(**kw, precision="bf16")
    bf16.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 1, 64, 64, 64)
    outs = [net(x) for net in (ref, bf16)]
    assert outs[1].dtype == torch.float32 and _cosine(*outs) > 0.999
    for net, out in zip((ref, bf16), outs):
        out.square().mean().backward()
    grads = {name: p.grad for name, p in ref.named_parameters()}
    scale = max(g.norm() for g in grads.values())
    for name, p in bf16.named_parameters():
        # bf16 noise stays inside this (some gradients are zero in exact arithmetic, e.g. a bias before a softmax,
        # hence the absolute term); the garbage of the failure mode is orders of magnitude beyond it
        assert (p.grad - grads[name]).norm() <= 0.5 * grads[name].norm() + 1e-3 * scale, name
    flat = [torch.cat([p.grad.flatten() for p in net.parameters()]) for net in (bf16, ref)]
    assert _cosine(*flat) > 0.99


def test_precision_names_auto_and_an_enclosing_autocast(monkeypatch):
    from shared.networks import precision

    net = AdaptiveSwinUNETR(**SMALL, depths=(1, 1, 1, 1), precision="auto").eval()
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert net.compute_precision("cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert net.compute_precision("cpu") == "bf16"
    x = torch.randn(1, 1, 64, 64, 64)
    with torch.no_grad():
        assert net(x).dtype == torch.float32
        net.precision = "fp32"  # sets no precision of its own: a bundle's AMP still applies
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert net(x).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="got 'fp16'"):
        AdaptiveSwinUNETR(**SMALL, precision="fp16")
