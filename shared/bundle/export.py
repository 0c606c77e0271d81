# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Export a bundle's network to ONNX with every input its metadata lists, checked against the eager network.

    python -m shared.bundle.export network_def --filepath models/model.onnx --ckpt_file models/model.pt \\
        --config_file configs/inference.json [--meta_file configs/metadata.json] [--id value ...]

The arguments are those of ``python -m monai.bundle onnx_export``, which feeds a network one random ``image``. This
command builds one example tensor for every entry of ``network_data_format.inputs`` (in the network's forward order,
e.g. ACMCA's ``image``, ``snp`` and ``clinical``), names the graph's inputs and outputs as the metadata does, makes
the batch axis and every ``"*"`` axis dynamic, and runs the exported graph with onnxruntime at two sizes of each
dynamic axis against the eager network before it replaces ``filepath`` (atomically). The metadata and the configs
are stored in the ONNX file's ``metadata_props``. Needs ``onnx``, ``onnxscript`` and ``onnxruntime``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser

from shared.handlers.checkpoint import check_state_dict

__all__ = ["example_inputs", "dynamic_axes", "export_onnx"]

logger = logging.getLogger(__name__)

# (batch, size of every "*" axis): the export example, then a second size for the check. The two must differ:
# torch.export treats equal sizes as one symbol and specialises sizes 0 and 1.
EXAMPLE_SIZES = (2, 3)
CHECK_SIZES = (1, 5)


def _inputs_meta(meta: Mapping) -> Mapping[str, Mapping]:
    try:
        return meta["network_data_format"]["inputs"]
    except (KeyError, TypeError):
        raise ValueError("metadata lacks network_data_format.inputs: no input to export with.") from None


def _lead(spec: Mapping) -> int:
    """Leading axes before the spatial ones: (B, C) for images, (B,) for single-channel vectors."""
    return 1 if spec.get("type") == "vector" and int(spec["num_channels"]) == 1 else 2


def example_inputs(meta: Mapping, batch: int = EXAMPLE_SIZES[0], free: int = EXAMPLE_SIZES[1]) -> dict:
    """Random float tensors ``{name: (batch, C, *spatial)}`` (``(batch, *spatial)`` for single-channel vectors)
    for every metadata input, in metadata order: ``"*"`` axes get ``free``, ``"k*n"`` / ``"k**p"`` axes ``k*2`` /
    ``k**2``."""
    out = {}
    for name, spec in _inputs_meta(meta).items():
        sizes = []
        for s in spec["spatial_shape"]:
            if isinstance(s, int):
                sizes.append(s)
            elif s == "*":
                sizes.append(free)
            elif re.fullmatch(r"\d+\*n", str(s)):
                sizes.append(int(str(s).split("*")[0]) * 2)
            elif re.fullmatch(r"\d+\*\*p", str(s)):
                sizes.append(int(str(s).split("**")[0]) ** 2)
            else:
                raise ValueError(f"metadata input {name!r}: unsupported spatial_shape entry {s!r}.")
        channels = [] if _lead(spec) == 1 else [int(spec["num_channels"])]
        out[name] = torch.rand(batch, *channels, *sizes)
    return out


def dynamic_axes(meta: Mapping) -> dict[str, dict[int, str]]:
    """``{input or output name: {axis: axis name}}``: axis 0 (``"batch"``) everywhere, and each ``"*"`` spatial
    axis of an input (``"<input>_<axis>"``)."""
    axes = {}
    for name, spec in _inputs_meta(meta).items():
        axes[name] = {0: "batch"}
        for i, s in enumerate(spec["spatial_shape"]):
            if s == "*":
                axes[name][_lead(spec) + i] = f"{name}_{_lead(spec) + i}"
    for name in meta["network_data_format"].get("outputs", {}):
        axes[name] = {0: "batch"}
    return axes


def _load_weights(net: torch.nn.Module, ckpt_file: str | os.PathLike, key_in_ckpt: str) -> None:
    if not Path(ckpt_file).is_file():
        raise FileNotFoundError(f"Checkpoint {ckpt_file} does not exist: train the bundle first or pass --ckpt_file.")
    state = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    if key_in_ckpt:
        if key_in_ckpt not in state:
            raise KeyError(f"Checkpoint {ckpt_file} has no {key_in_ckpt!r} entry (it has {sorted(state)[:5]}).")
        state = state[key_in_ckpt]
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}  # DDP-saved
    check_state_dict(net, state, source=f"Checkpoint {ckpt_file}")
    net.load_state_dict(state)


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _check(session: Any, net: torch.nn.Module, inputs: dict, rtol: float, atol: float) -> None:
    """Raise when onnxruntime's outputs differ from the eager network's on ``inputs``."""
    with torch.no_grad():
        expected = [t.numpy() for t in _as_tuple(net(*inputs.values()))]
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    for i, (e, g) in enumerate(zip(expected, got)):
        if e.shape != g.shape or not np.allclose(e, g, rtol=rtol, atol=atol):
            diff = float(np.abs(e - g).max()) if e.shape == g.shape else float("nan")
            raise RuntimeError(
                f"ONNX output {i} differs from the eager network for inputs {shapes}: shapes {list(e.shape)} vs "
                f"{list(g.shape)}, max abs difference {diff:.3g} (rtol {rtol}, atol {atol})."
            )


def export_onnx(
    net_id: str = "network_def",
    filepath: str | os.PathLike | None = None,
    ckpt_file: str | os.PathLike | None = None,
    meta_file: str | os.PathLike | None = None,
    config_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    key_in_ckpt: str = "",
    opset_version: int | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    **override: Any,
) -> str:
    """Export ``net_id`` of ``config_file`` with the weights of ``ckpt_file`` to ONNX at ``filepath``; return the
    path. ``meta_file`` defaults to ``metadata.json`` beside the first config file; ``override``: config ids to
    set (``"network_def#feature_size"``, ``"_meta_#network_data_format#inputs#snp#spatial_shape"``, ...).
    ``filepath`` is replaced only by an export that passed the onnxruntime check."""
    import onnx
    import onnxruntime

    if filepath is None or ckpt_file is None or config_file is None:
        raise ValueError("export_onnx needs filepath, ckpt_file and config_file.")
    configs = [str(c) for c in ([config_file] if isinstance(config_file, (str, os.PathLike)) else config_file)]
    meta_file = meta_file or Path(configs[0]).with_name("metadata.json")
    parser = ConfigParser()
    parser.read_config(configs)
    parser.read_meta(str(meta_file))
    for key, value in override.items():
        parser[key] = value
    meta = parser.get("_meta_")
    net = parser.get_parsed_content(net_id)
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"config id {net_id!r} of {configs[0]} is a {type(net).__name__}, not a torch.nn.Module.")
    _load_weights(net, ckpt_file, key_in_ckpt)
    net = net.cpu().eval()

    inputs = example_inputs(meta)
    axes = dynamic_axes(meta)
    dims = {a: torch.export.Dim(a) for spec in axes.values() for a in spec.values()}
    dynamic_shapes = tuple({i: dims[a] for i, a in axes[name].items()} for name in inputs)
    out_names = list(meta["network_data_format"].get("outputs", {})) or None

    filepath = Path(filepath)
    filepath.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{filepath.name}.", suffix=".tmp", dir=filepath.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                net,
                tuple(inputs.values()),  # metadata order is forward order
                tmp,
                input_names=list(inputs),
                output_names=out_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset_version,
                dynamo=True,
                external_data=False,  # one self-contained file (weights inline; fine below 2 GB)
            )
        model = onnx.load(tmp)
        extra = {"metadata.json": json.dumps(meta)}
        extra.update({Path(c).name: json.dumps(ConfigParser.load_config_file(c)) for c in configs})
        onnx.helper.set_model_props(model, extra)
        onnx.save(model, tmp)
        session = onnxruntime.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        for batch, free in (EXAMPLE_SIZES, CHECK_SIZES):
            _check(session, net, example_inputs(meta, batch, free), rtol, atol)
        os.replace(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    logger.info(
        f"Exported {net_id} to {filepath}: inputs {list(inputs)}, dynamic axes {axes}; onnxruntime matches the "
        f"eager network at batch/'*' sizes {EXAMPLE_SIZES} and {CHECK_SIZES}."
    )
    return str(filepath)


def main() -> None:
    import fire

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(message)s")
    logger.setLevel(logging.INFO)  # this command's summary; the exporter's passes stay at warnings
    fire.Fire(export_onnx)


if __name__ == "__main__":
    main()
