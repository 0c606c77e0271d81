import json
import logging
import struct

import pytest
import torch

from shared.networks import dinov2
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
