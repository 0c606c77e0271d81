import pytest
import torch
from monai.networks.nets import SwinUNETR

from shared.networks import AdaptiveSwinUNETR, AdaptiveWindowAttention, MultiScaleFusion, check_roi_size

SMALL = dict(in_channels=1, out_channels=3, feature_size=12)


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
    with pytest.raises(ValueError, match="multiple of 32"):
        check_roi_size([96, 80, 96])
    with pytest.raises(ValueError, match="at least 64"):
        check_roi_size([32, 64, 64])


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
