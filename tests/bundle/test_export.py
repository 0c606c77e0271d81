# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ONNX export: the command each model card gives, run as written (tiny network settings, random weights), then the
exported graph checked against the eager network with onnxruntime at sizes other than the export example."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import fire
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, onnx_export

from shared.bundle.export import dynamic_axes, example_inputs, export_onnx
from tests.conftest import BUNDLES, REPO

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Tiny network settings; "shape": the export example (batch 2, distinct from every other dynamic size); "checks":
# the inputs onnxruntime is run on. brain_mri_classification embeds 2 slices per backbone call, so a graph that kept
# the eager chunking loop could not pass the 3 x 7 slice check.
TINY = {
    "spine_seg": {
        "override": {"network_def#feature_size": 12, "network_def#depths": [1, 1, 1, 1], "precision": "fp32"},
        "shape": [2, 1, 64, 64, 64],
        "checks": [{"image": [1, 1, 64, 64, 64]}, {"image": [3, 1, 64, 64, 64]}],
    },
    "brain_mri_classification": {
        "override": {"slice_batch_size": 2, "precision": "fp32"},  # the graph is fp32: compare with fp32
        "shape": [2, 3, 28, 28, 4],
        "checks": [{"image": [1, 3, 28, 28, 3]}, {"image": [3, 3, 28, 28, 7]}],
    },
    "glaucoma_oct_classification": {
        "override": {},
        "shape": [2, 1, 16, 24, 16],
        "checks": [{"image": [1, 1, 16, 24, 16]}, {"image": [3, 1, 16, 24, 16]}],
    },
    "ad_multiomic_classification": {
        "override": {
            "network_def#backbone": "resnet10",
            "snp_features": 200,
            "image_size": [64, 64],
            "_meta_#network_data_format#inputs#image#spatial_shape": [64, 64],
            "_meta_#network_data_format#inputs#snp#spatial_shape": [200],
        },
        "shape": None,  # every input from the metadata
        "checks": [
            {"image": [1, 2, 64, 64], "snp": [1, 200], "clinical": [1, 7]},
            {"image": [3, 2, 64, 64], "snp": [3, 200], "clinical": [3, 7]},
        ],
    },
}


def _card_command(name: str) -> list[str]:
    """The ONNX export command of the model card, as tokens (continuation lines joined)."""
    text = (REPO / "bundles" / name / "docs" / "README.md").read_text()
    match = re.search(r"^python -m (?:monai\.bundle onnx_export|shared\.bundle\.export) (?:.*\\\n)*.*$", text, re.M)
    assert match, f"{name}'s model card gives no ONNX export command"
    return shlex.split(match.group(0).replace("\\\n", " "))


def _run(tokens: list[str]) -> None:
    """Run ``python -m monai.bundle onnx_export ...`` / ``python -m shared.bundle.export ...`` in this process: the
    same fire command-line parsing as the modules' ``__main__``, without a second interpreter start."""
    assert tokens[:2] == ["python", "-m"], tokens
    if tokens[2] == "monai.bundle":
        fire.Fire({"onnx_export": onnx_export}, command=tokens[3:])
    else:
        fire.Fire(export_onnx, command=tokens[3:])


def _set(tokens: list[str], flag: str, value: str) -> list[str]:
    assert flag in tokens, f"the command lacks {flag}"
    i = tokens.index(flag)
    return tokens[: i + 1] + [value] + tokens[i + 2 :]


def _network(name: str, override: dict) -> torch.nn.Module:
    configs = REPO / "bundles" / name / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    parser.read_meta(str(configs / "metadata.json"))
    for key, value in override.items():
        parser[key] = value
    if name == "brain_mri_classification":
        parser["network_def#backbone_weights"] = "random"  # the config builds it uninitialised (weights come later)
    return parser.get_parsed_content("network_def").eval()


def _assert_matches(onnx_file: Path, net: torch.nn.Module, checks: list[dict]) -> None:
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(checks[0]) and session.get_outputs()[0].name == "pred"
    for shapes in checks:
        inputs = {k: torch.rand(s) for k, s in shapes.items()}
        with torch.no_grad():
            expected = net(*inputs.values()).numpy()
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        assert got.shape == expected.shape, shapes
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4, err_msg=str(shapes))


@pytest.mark.parametrize("name", BUNDLES)
def test_model_card_export_command(name, tmp_path, monkeypatch):
    """The model card's command, run from the repository root on random weights, gives a graph that onnxruntime
    runs at other batch sizes (and, for brain_mri_classification, other slice counts) with the eager outputs."""
    assert name in TINY, f"add {name}'s tiny export settings to TINY"
    monkeypatch.chdir(REPO)
    tiny = TINY[name]
    net = _network(name, tiny["override"])
    torch.save(net.state_dict(), tmp_path / "model.pt")
    cmd = _set(_card_command(name), "--ckpt_file", str(tmp_path / "model.pt"))
    cmd = _set(cmd, "--filepath", str(tmp_path / "model.onnx"))
    if tiny["shape"] is not None:
        cmd = _set(cmd, "--input_shape", json.dumps(tiny["shape"]))
    for key, value in tiny["override"].items():
        cmd += [f"--{key}", json.dumps(value)]
    _run(cmd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.pt"], "weights inside the .onnx file"
    _assert_matches(tmp_path / "model.onnx", net, tiny["checks"])
    if cmd[2] == "shared.bundle.export":  # the project command also stores the metadata and config in the file
        import onnx

        props = {p.key: p.value for p in onnx.load(tmp_path / "model.onnx").metadata_props}
        assert set(props) == {"metadata.json", "inference.json"}
        assert json.loads(props["metadata.json"])["network_data_format"]["inputs"]["snp"]["spatial_shape"] == [200]
        assert json.loads(props["inference.json"])["network_def"]["_target_"].endswith("ACMCA")


def test_metadata_gives_every_input_and_its_dynamic_axes():
    meta = json.loads((REPO / "bundles" / "ad_multiomic_classification" / "configs" / "metadata.json").read_text())
    shapes = {k: list(v.shape) for k, v in example_inputs(meta).items()}
    assert shapes == {"image": [2, 2, 224, 224], "snp": [2, 15000], "clinical": [2, 7]}
    assert dynamic_axes(meta) == {
        "image": {0: "batch"},
        "snp": {0: "batch"},
        "clinical": {0: "batch"},
        "pred": {0: "batch"},
    }
    meta = json.loads((REPO / "bundles" / "brain_mri_classification" / "configs" / "metadata.json").read_text())
    assert list(example_inputs(meta, batch=1, free=5)["image"].shape) == [1, 3, 224, 224, 5]
    assert dynamic_axes(meta)["image"] == {0: "batch", 4: "image_4"}  # the slice axis ("*")
    meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = [224, "any"]
    with pytest.raises(ValueError, match="'image': unsupported spatial_shape entry 'any'"):
        example_inputs(meta)


def test_bad_checkpoint_is_named_and_leaves_the_existing_export(tmp_path):
    name = "ad_multiomic_classification"
    override = TINY[name]["override"]
    config = REPO / "bundles" / name / "configs" / "inference.json"
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous export")
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        export_onnx(filepath=target, ckpt_file=tmp_path / "missing.pt", config_file=config, **override)
    other = _network(name, {**override, "snp_features": 300})  # trained for another SNP count
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt was not made for this network.*shape mismatches"):
        export_onnx(filepath=target, ckpt_file=tmp_path / "other.pt", config_file=config, **override)
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "other.pt"]  # no temporary file left
