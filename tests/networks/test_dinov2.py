# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
import logging
import struct

import pytest
import torch

from shared.networks import dinov2, precision
from shared.networks.dinov2 import (
    DinoV2ViT,
    convert_dinov2_state_dict,
    detect_dinov2_layout,
    dinov2_vits14,
    load_dinov2_weights,
    weights_fingerprint,
)

BLOCK_KEYS = [
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "ls1.gamma",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
    "ls2.gamma",
]


def official_keys(depth=12):
    keys = {"cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight", "patch_embed.proj.bias"}
    keys |= {f"blocks.{i}.{k}" for i in range(depth) for k in BLOCK_KEYS}
    return keys | {"norm.weight", "norm.bias"}


@pytest.fixture(scope="module")
def reference():
    """A ViT-S/14 with random values everywhere (LayerScale and norms too), in eval mode."""
    torch.manual_seed(0)
    net = DinoV2ViT().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.randn(2, 3, 28, 28)


def to_timm(sd):
    out = {k: v for k, v in sd.items() if k != "mask_token"}
    return out


def to_hf(sd):
    """Hugging Face ``facebook/dinov2-small`` file layout, written out independently of the converter."""
    out = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.mask_token": sd["mask_token"],
        "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"],
        "layernorm.bias": sd["norm.bias"],
    }
    for i in range(12):
        b, e = f"blocks.{i}.", f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            q, k, v = sd[b + f"attn.qkv.{p}"].chunk(3, dim=0)
            out[e + f"attention.attention.query.{p}"] = q.clone()
            out[e + f"attention.attention.key.{p}"] = k.clone()
            out[e + f"attention.attention.value.{p}"] = v.clone()
            out[e + f"attention.output.dense.{p}"] = sd[b + f"attn.proj.{p}"]
            out[e + f"norm1.{p}"] = sd[b + f"norm1.{p}"]
            out[e + f"norm2.{p}"] = sd[b + f"norm2.{p}"]
            out[e + f"mlp.fc1.{p}"] = sd[b + f"mlp.fc1.{p}"]
            out[e + f"mlp.fc2.{p}"] = sd[b + f"mlp.fc2.{p}"]
        out[e + "layer_scale1.lambda1"] = sd[b + "ls1.gamma"]
        out[e + "layer_scale2.lambda1"] = sd[b + "ls2.gamma"]
    return out


def write_safetensors(path, sd):
    header, blobs, offset = {}, [], 0
    for k, v in sd.items():
        b = v.detach().contiguous().float().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_official_architecture():
    net = DinoV2ViT()
    sd = net.state_dict()
    assert set(sd) == official_keys()
    assert sum(p.numel() for p in net.parameters()) == 22_056_576
    assert sd["pos_embed"].shape == (1, 1370, 384)
    assert sd["mask_token"].shape == (1, 384)
    assert sd["blocks.0.attn.qkv.weight"].shape == (1152, 384)


def test_forward_shapes_and_interpolation(reference):
    tokens = reference.forward_features(torch.zeros(1, 3, 224, 224))
    assert tokens.shape == (1, 1 + 16 * 16, 384)
    assert reference.interpolate_pos_encoding(37, 37) is reference.pos_embed  # native grid: untouched
    assert reference.interpolate_pos_encoding(16, 16).shape == (1, 257, 384)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        reference(torch.zeros(1, 3, 30, 28))


@pytest.mark.parametrize("layout", ["official", "timm", "hf", "hf_safetensors", "wrapped"])
def test_checkpoint_layouts_give_identical_outputs(tmp_path, reference, x, layout):
    sd = {k: v.clone() for k, v in reference.state_dict().items()}
    path = tmp_path / "w.pth"
    if layout == "official":
        torch.save(sd, path)
    elif layout == "timm":
        torch.save(to_timm(sd), path)
    elif layout == "hf":
        path = tmp_path / "pytorch_model.bin"
        torch.save(to_hf(sd), path)
    elif layout == "hf_safetensors":
        path = tmp_path / "model.safetensors"
        write_safetensors(path, to_hf(sd))
    else:  # a training checkpoint: {"model": {"module.<key>": ...}}
        torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, path)
    net = DinoV2ViT().eval()
    load_dinov2_weights(net, str(path))
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=0, atol=0)
    if layout != "timm":  # timm drops the mask token, which only pretraining uses
        assert torch.equal(net.mask_token, reference.mask_token)


def test_layout_detection(reference):
    sd = reference.state_dict()
    assert detect_dinov2_layout(sd) == "official"
    assert detect_dinov2_layout(to_timm(sd)) == "timm"
    assert detect_dinov2_layout(to_hf(sd)) == "hf"
    assert set(convert_dinov2_state_dict(to_hf(sd))) == official_keys()
    with pytest.raises(ValueError, match="not a DINOv2 checkpoint"):
        detect_dinov2_layout({"conv.weight": torch.zeros(1)})


def test_missing_and_unexpected_keys_are_listed(tmp_path, reference):
    sd = dict(reference.state_dict())
    del sd["blocks.3.ls1.gamma"]
    sd["blocks.12.norm1.weight"] = torch.zeros(384)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(KeyError) as e:
        load_dinov2_weights(DinoV2ViT(), str(path))
    assert "blocks.3.ls1.gamma" in str(e.value) and "blocks.12.norm1.weight" in str(e.value)
    assert str(path) in str(e.value)


def test_wrong_shape_is_reported(tmp_path, reference):
    sd = dict(reference.state_dict())
    sd["pos_embed"] = torch.zeros(1, 257, 384)
    torch.save(sd, tmp_path / "small.pth")
    with pytest.raises(ValueError, match="pos_embed"):
        load_dinov2_weights(DinoV2ViT(), str(tmp_path / "small.pth"))


def test_missing_file_and_random_warning(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        dinov2_vits14(weights=str(tmp_path / "nope.pth"))
    with caplog.at_level(logging.WARNING):
        dinov2_vits14(weights="random")
    assert "RANDOM weights" in caplog.text


def test_official_weights_from_hub_cache_or_clear_offline_error(tmp_path, monkeypatch, reference, x):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, progress=True):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as e:
        dinov2_vits14(weights="official")
    msg = str(e.value)
    assert dinov2.DINOV2_VITS14_URL in msg and str(tmp_path / "hub" / "checkpoints") in msg
    # once the file is in the hub cache it is used without any download
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / dinov2.DINOV2_VITS14_FILENAME)
    net = dinov2_vits14(weights="official").eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=0, atol=0)


def test_torchscript_and_fingerprint(reference, x):
    scripted = torch.jit.script(reference)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), reference(x))
    fp = weights_fingerprint(reference)
    other = DinoV2ViT()
    other.load_state_dict(reference.state_dict())
    assert weights_fingerprint(other) == fp
    with torch.no_grad():
        other.norm.bias[0] += 1e-3
    assert weights_fingerprint(other) != fp


def test_matches_hugging_face_dinov2_when_installed():
    """Independent reference: transformers' Dinov2Model on the same random weights (skipped without transformers)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        image_size=518,
        patch_size=14,
        layerscale_value=1.0,
    )
    hf = transformers.Dinov2Model(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    net = DinoV2ViT(interpolate_offset=0.0).eval()  # recent transformers interpolate to the exact grid size
    net.load_state_dict(convert_dinov2_state_dict(hf.state_dict()), strict=True)
    with torch.no_grad():
        x = torch.randn(1, 3, 518, 518)
        torch.testing.assert_close(net.forward_features(x), hf(pixel_values=x).last_hidden_state, rtol=1e-4, atol=1e-4)
        x = torch.randn(2, 3, 224, 224)
        torch.testing.assert_close(net(x), hf(pixel_values=x).pooler_output, rtol=1e-4, atol=1e-4)


def plain_vit_cls(net, x):
    """An unfused DINOv2 forward written from the definitions (explicit softmax attention, separate LayerScale):
    the reference the fused fp32 path must match to float tolerance."""
    sd = net.state_dict()
    b, _, h, w = x.shape
    p, d, heads = net.patch_size, net.embed_dim, net.blocks[0].attn.num_heads
    t = torch.nn.functional.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=p)
    t = torch.cat([sd["cls_token"].expand(b, -1, -1), t.flatten(2).transpose(1, 2)], 1)
    t = t + net.interpolate_pos_encoding(h // p, w // p)
    for i in range(len(net.blocks)):
        k = f"blocks.{i}."
        y = torch.nn.functional.layer_norm(t, (d,), sd[k + "norm1.weight"], sd[k + "norm1.bias"], 1e-6)
        q, kk, v = (y @ sd[k + "attn.qkv.weight"].t() + sd[k + "attn.qkv.bias"]).chunk(3, -1)
        q, kk, v = (z.reshape(b, -1, heads, d // heads).transpose(1, 2) for z in (q, kk, v))
        a = torch.softmax(q @ kk.transpose(-1, -2) / (d // heads) ** 0.5, -1) @ v
        a = a.transpose(1, 2).reshape(b, -1, d) @ sd[k + "attn.proj.weight"].t() + sd[k + "attn.proj.bias"]
        t = t + a * sd[k + "ls1.gamma"]
        y = torch.nn.functional.layer_norm(t, (d,), sd[k + "norm2.weight"], sd[k + "norm2.bias"], 1e-6)
        y = torch.nn.functional.gelu(y @ sd[k + "mlp.fc1.weight"].t() + sd[k + "mlp.fc1.bias"])
        t = t + (y @ sd[k + "mlp.fc2.weight"].t() + sd[k + "mlp.fc2.bias"]) * sd[k + "ls2.gamma"]
    return torch.nn.functional.layer_norm(t, (d,), sd["norm.weight"], sd["norm.bias"], 1e-6)[:, 0]


def test_fp32_forward_matches_unfused_reference(reference, x):
    with torch.no_grad():
        torch.testing.assert_close(reference(x), plain_vit_cls(reference, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bf16_attention_kernel", [True, False])
def test_bf16_cls_features_match_fp32(reference, monkeypatch, bf16_attention_kernel):
    """Full ViT-S/14 depth and width, random weights: bf16 autocast really runs (bf16 projections) and its CLS
    features keep cosine similarity >= 0.999 to fp32, with either attention kernel."""
    monkeypatch.setattr(dinov2, "_bf16_attention_is_fast", lambda device: bf16_attention_kernel)
    torch.manual_seed(2)
    slices = torch.randn(4, 3, 56, 56)
    seen = []
    hook = reference.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        with torch.no_grad():
            fp32 = reference(slices)
            reference.precision = "bf16"
            bf16 = reference(slices)
    finally:
        reference.precision = "fp32"
        hook.remove()
    assert seen == [torch.float32, torch.bfloat16] and bf16.dtype == torch.float32
    assert not torch.equal(bf16, fp32)
    assert torch.nn.functional.cosine_similarity(bf16, fp32, dim=1).min() >= 0.999


def test_fp32_precision_is_kept_under_an_enclosing_autocast(reference, x):
    with torch.no_grad():
        plain = reference(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = reference(x)
    torch.testing.assert_close(inside, plain, rtol=0, atol=0)


def test_precision_names_and_auto(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert dinov2.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert dinov2.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert dinov2.resolve_precision("bf16", "cpu") == "bf16" and dinov2.resolve_precision("fp32", "cpu") == "fp32"
    net = DinoV2ViT(img_size=28, embed_dim=24, depth=1, num_heads=2, precision="auto")
    assert net.compute_precision("cpu") == "fp32"
    with pytest.raises(ValueError, match="'auto', 'bf16', 'fp32'.*'fp16'"):
        DinoV2ViT(img_size=28, embed_dim=24, depth=1, num_heads=2, precision="fp16")
    with pytest.raises(ValueError, match="got 'half'"):
        dinov2.resolve_precision("half", "cpu")


def test_precision_reaches_the_default_backbone_and_keeps_the_key_layout():
    from shared.networks.dino_atten3d import DinoAtten3D

    net = DinoAtten3D(num_classes=2, backbone_weights=None, backbone_precision="bf16")
    assert net.backbone.precision == "bf16"
    assert {k[len("backbone.") :] for k in net.state_dict() if k.startswith("backbone.")} == official_keys()
