# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import pytest
import torch

from shared.networks.acmca import ACMCA, FNetBlock, ResNetRegionEncoder

SNP, CLIN, SIZE = 40, 7, 64  # 64 px -> 2x2 feature-map regions


def _net(**kw):
    args = dict(snp_features=SNP, clinical_features=CLIN, img_size=(SIZE, SIZE), backbone="resnet10", dropout=0.0)
    args.update(kw)
    return ACMCA(**args)


def _inputs(net, b=2):
    n_img = len(net.image_modalities)
    image = torch.rand(b, n_img, SIZE, SIZE) if n_img else None
    return image, torch.randint(0, 3, (b, SNP)).float(), torch.randn(b, CLIN)


@pytest.mark.parametrize(
    "kw, blocks, tokens",
    [
        ({}, {"clinical_to_mri": (1, 4), "snp_to_pet": (1, 4)}, 2),
        (
            {"fusion": "symmetric"},
            {"clinical_to_mri": (1, 4), "mri_to_clinical": (4, 1), "snp_to_pet": (1, 4), "pet_to_snp": (4, 1)},
            4,
        ),
        ({"fusion": "concat"}, {}, 4),
        ({"deep_branches": "fnet"}, {"clinical_to_mri": (1, 4), "snp_to_pet": (1, 4)}, 2),
        ({"deep_branches": "transformer"}, {"clinical_to_mri": (1, 4), "snp_to_pet": (1, 4)}, 2),
        ({"modalities": ("mri", "clinical")}, {"clinical_to_mri": (1, 4)}, 1),
        ({"modalities": ("pet", "clinical")}, {}, 2),
        ({"modalities": ("snp", "clinical")}, {}, 2),
        ({"modalities": ("mri",)}, {}, 1),
        ({"vector_tokens": 3}, {"clinical_to_mri": (3, 4), "snp_to_pet": (3, 4)}, 6),
    ],
)
def test_shapes_and_attention(kw, blocks, tokens):
    net = _net(**kw).eval()
    logits, attn = net.forward_with_attention(*_inputs(net))
    assert logits.shape == (2, 3)
    assert net.num_tokens == tokens
    assert {k: tuple(v.shape[2:]) for k, v in attn.items()} == blocks
    for v in attn.values():
        assert v.shape[:2] == (2, 4)  # batch, heads
        torch.testing.assert_close(v.sum(-1), torch.ones_like(v.sum(-1)))  # softmax over the context tokens


def test_attention_follows_its_own_query():
    net = _net().eval()
    image, snp, clin = _inputs(net)
    _, a1 = net.forward_with_attention(image, snp, clin)
    _, a2 = net.forward_with_attention(image, snp, clin + 3.0)
    assert not torch.allclose(a1["clinical_to_mri"], a2["clinical_to_mri"])  # clinical queries MRI ...
    torch.testing.assert_close(a1["snp_to_pet"], a2["snp_to_pet"])  # ... and do not touch the genetic->PET weights


def test_gradients_reach_every_encoder():
    net = _net(fusion="symmetric")
    net(*_inputs(net)).sum().backward()
    for name in (
        "image_encoders.mri.proj",
        "image_encoders.pet.proj",
        "vector_encoders.snp",
        "vector_encoders.clinical",
        "fusion.clinical_to_mri",
        "fnet",
        "transformer",
        "classifier",
    ):
        # MONAI's TransformerBlock always holds a cross-attention norm that self-attention never uses
        grads = [
            p.grad
            for n, p in net.named_parameters()
            if n.startswith(name) and p.requires_grad and "norm_cross_attn" not in n
        ]
        assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name


def test_region_tokens_follow_feature_map():
    enc = ResNetRegionEncoder(1, 16, (96, 64), "resnet10")
    assert enc(torch.rand(1, 1, 96, 64)).shape == (1, 6, 16)  # 3 x 2 regions, row-major
    assert enc(torch.rand(1, 1, 128, 128)).shape == (1, 16, 16)  # region embedding resized to a 4 x 4 grid


def test_fnet_block_mixes_tokens():
    blk = FNetBlock(8, 16, 0.0).eval()
    x = torch.randn(1, 3, 8)
    y = blk(x)
    x2 = x.clone()
    x2[0, 2] += 1.0
    assert not torch.allclose(blk(x2)[0, 0], y[0, 0])  # token 0 sees token 2 through the Fourier mixing


def test_bad_inputs_and_arguments():
    net = _net()
    image, snp, clin = _inputs(net)
    with pytest.raises(ValueError, match="'snp' is required"):
        net(image, None, clin)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        net(image[:, :1], snp, clin)
    with pytest.raises(ValueError, match="must be a multiple of 32"):
        net(torch.rand(2, 2, 70, 64), snp, clin)
    with pytest.raises(ValueError, match=r"\(B, 40\)"):
        net(image, snp[:, :10], clin)
    with pytest.raises(ValueError, match="subset"):
        _net(modalities=("mri", "ct"))
    with pytest.raises(ValueError, match="fusion"):
        _net(fusion="bilinear")
    with pytest.raises(ValueError, match="non-imaging query"):
        _net(attention_pairs=(("mri", "clinical"),))
    with pytest.raises(ValueError, match="multiples of 32"):
        _net(img_size=(60, 60))


def test_torchscript_matches_eager():
    net = _net(fusion="symmetric").eval()
    scripted = torch.jit.script(net)
    args = _inputs(net)
    torch.testing.assert_close(scripted(*args), net(*args))


def test_learns_genotype_dependent_task():
    """The label is the dosage at one SNP; clinical values are noise: the model must read the genotype."""
    torch.manual_seed(0)
    net = _net(modalities=("snp", "clinical"), num_heads=2, hidden_size=16, classifier_hidden=(32, 16, 16))
    n = 48
    snp = torch.randint(0, 3, (n, SNP)).float()
    y = snp[:, 5].long()
    clin = torch.randn(n, CLIN)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(None, snp, clin), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(None, snp, clin).argmax(1) == y).float().mean()
    assert acc == 1.0, float(loss)


def _torchvision_layout(encoder: ResNetRegionEncoder) -> dict:
    """The encoder's trunk in torchvision's names, as torchvision's ImageNet files hold it (RGB stem, no
    downsampling bias, a classifier), with values of its own to recognise."""
    out = {"fc.weight": torch.zeros(1000, encoder.out_channels), "fc.bias": torch.zeros(1000)}
    for key, value in encoder.state_dict().items():
        value = torch.randn_like(value) if value.is_floating_point() else value
        if key == "stem.0.weight":
            out["conv1.weight"] = torch.randn(value.shape[0], 3, *value.shape[2:])
        elif key.startswith("stem.1."):
            out["bn1." + key[len("stem.1.") :]] = value
        elif key.startswith("layers.") and not key.endswith("downsample.0.bias"):
            layer, rest = key[len("layers.") :].split(".", 1)
            out[f"layer{int(layer) + 1}.{rest}"] = value
    return out


def test_imagenet_weights_of_a_torchvision_file_start_the_trunk(tmp_path):
    """A torchvision ResNet-18 state dict (written here) loads into the grey-level trunk: RGB stem kernels summed,
    layers as they are, MONAI's downsampling bias at 0; the region projection keeps its own start."""
    reference = ResNetRegionEncoder(1, 16, (64, 64), "resnet18")
    state = _torchvision_layout(reference)
    torch.save(state, tmp_path / "resnet18.pth")
    encoder = ResNetRegionEncoder(1, 16, (64, 64), "resnet18", weights=str(tmp_path / "resnet18.pth"))
    own = encoder.state_dict()
    assert torch.allclose(own["stem.0.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(own["layers.3.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.equal(own["stem.1.running_var"], state["bn1.running_var"])
    assert torch.equal(own["layers.1.0.downsample.0.bias"], torch.zeros_like(own["layers.1.0.downsample.0.bias"]))
    assert encoder(torch.rand(1, 1, 64, 64)).shape == (1, 4, 16)


def test_imagenet_weights_errors_name_the_id(tmp_path, monkeypatch):
    from shared.errors import InputError, MissingInputError

    with pytest.raises(InputError, match="resnet10 has no ImageNet weights"):
        ResNetRegionEncoder(1, 16, (64, 64), "resnet10", weights="imagenet")
    state = _torchvision_layout(ResNetRegionEncoder(1, 16, (64, 64), "resnet18"))
    torch.save(state, tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="the file does not hold torchvision resnet34 weights"):
        ResNetRegionEncoder(1, 16, (64, 64), "resnet34", weights=str(tmp_path / "resnet18.pth"))

    def offline(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MissingInputError) as e:
        ResNetRegionEncoder(1, 16, (64, 64), "resnet18", weights="imagenet")
    message = str(e.value)
    assert "config id 'image_weights' is 'imagenet'" in message and "not available offline" in message
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "torch") in message
