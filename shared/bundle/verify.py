# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Check a bundle the way the MONAI model zoo does, offline.

    python -m shared.bundle.verify bundles/spine_seg --schema /path/to/meta_schema_20240725.json

Checks: required files; ``version`` listed in ``changelog``; ``metadata.json`` against MONAI's schema; the config
properties MONAI defines for train and inference workflows; ``verify_net_in_out`` (output channels and dtype match
the metadata); TorchScript export (scripting, else tracing), compared with the eager network on the same input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out
from monai.bundle.properties import InferProperties, TrainProperties
from monai.utils import BundleProperty, BundlePropertyConfig

from shared.handlers.checkpoint import check_state_dict

__all__ = ["verify_bundle", "check_required_files", "check_config_properties", "export_torchscript"]

logger = logging.getLogger(__name__)

REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/inference.json",
    "configs/logging.conf",
    "LICENSE",
    "docs/README.md",
)


def check_required_files(bundle: Path) -> dict:
    """Return the parsed metadata after checking the files the zoo requires and that ``version`` is in ``changelog``."""
    missing = [f for f in REQUIRED_FILES if not (bundle / f).is_file()]
    if missing:
        raise FileNotFoundError(f"Bundle {bundle} lacks {missing}.")
    meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    if meta.get("version") not in meta.get("changelog", {}):
        raise ValueError(f"{bundle}/configs/metadata.json: version {meta.get('version')!r} is not in its changelog.")
    return meta


def check_config_properties(config_files: Sequence[str | os.PathLike], workflow_type: str) -> list[str]:
    """Return the ids of the required properties MONAI defines for ``workflow_type`` ("train" or "infer") that the
    configs lack (``[]`` when complete). Checks ids only: nothing is instantiated, no data is read."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    props = TrainProperties if workflow_type == "train" else InferProperties
    missing = []
    for name, prop in props.items():
        prop_id = prop.get(BundlePropertyConfig.ID)
        if prop.get(BundleProperty.REQUIRED, False) and prop_id and prop_id not in parser:
            missing.append(prop_id)
    if workflow_type == "train" and "ValidationHandler" in json.dumps(parser.get()) and "val_interval" not in parser:
        missing.append("val_interval")
    return missing


def _example_shape(meta: dict, n: int = 2, name: str = "image") -> list[int]:
    """Shape of input ``name`` from metadata, evaluating ``"32*n"`` / ``"2**p"`` style entries: ``[1, C, *spatial]``
    for images, ``[1, *spatial]`` for single-channel vectors (e.g. a SNP or clinical feature vector)."""
    image = meta["network_data_format"]["inputs"][name]
    sizes = []
    for s in image["spatial_shape"]:
        if isinstance(s, int):
            sizes.append(s)
        elif re.fullmatch(r"\d+\*n", str(s)):
            sizes.append(int(str(s).split("*")[0]) * n)
        elif re.fullmatch(r"\d+\*\*p", str(s)):
            sizes.append(int(str(s).split("**")[0]) ** n)
        else:
            sizes.append(n)  # "*": any size
    if image.get("type") == "vector" and int(image["num_channels"]) == 1:
        return [1, *sizes]
    return [1, int(image["num_channels"]), *sizes]


def _extra_inputs(meta: dict, n: int = 2) -> dict:
    """Random keyword tensors for the inputs listed after ``image`` in the metadata (multi-input networks)."""
    inputs = meta["network_data_format"]["inputs"]
    return {name: torch.rand(_example_shape(meta, n, name)) for name in inputs if name != "image"}


def export_torchscript(
    bundle: Path,
    meta: dict,
    out_file: str | os.PathLike,
    override: dict | None = None,
    checkpoint: str | os.PathLike | None = "auto",
    n: int = 2,
) -> str:
    """Export the inference network to TorchScript, scripting first and tracing where scripting fails, and check
    it reproduces the eager output. ``checkpoint``: weights to load; ``"auto"`` takes ``models/model.pt`` when
    present, ``None`` keeps the initial weights. Returns ``"script"`` or ``"trace"``."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle), **(override or {})})
    net = parser.get_parsed_content("network_def").eval()
    # a graph records no autocast region: it computes in fp32, so the eager reference must too
    for m in net.modules():
        if isinstance(getattr(m, "precision", None), str):
            m.precision = "fp32"
    ckpt = bundle / "models" / "model.pt" if checkpoint == "auto" else checkpoint
    if ckpt is not None and Path(ckpt).is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        check_state_dict(net, state, source=f"Checkpoint {ckpt}")
        net.load_state_dict(state)
    torch.manual_seed(0)
    example, extra = torch.rand(_example_shape(meta, n)), _extra_inputs(meta, n)
    try:
        ts, how = torch.jit.script(net), "script"
    except Exception as e:  # many transformer blocks cannot be scripted
        logger.info(f"Scripting failed ({type(e).__name__}); tracing instead.")
        with torch.no_grad():
            if extra:
                ts = torch.jit.trace(net, example_kwarg_inputs={"image": example, **extra}, check_trace=False)
            else:
                ts = torch.jit.trace(net, example, check_trace=False)
        how = "trace"
    torch.jit.save(ts, str(out_file), _extra_files={"metadata.json": json.dumps(meta).encode()})
    loaded = torch.jit.load(str(out_file))
    with torch.no_grad():
        expected, got = net(example, **extra), loaded(example, **extra)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    got = got[0] if isinstance(got, (tuple, list)) else got
    if not torch.allclose(expected, got, atol=1e-4, rtol=1e-3):
        raise RuntimeError(f"TorchScript ({how}) output differs from the eager network for {bundle.name}.")
    return how


def verify_bundle(
    bundle: str | os.PathLike,
    schema: str | os.PathLike | None = None,
    export: bool = True,
    override: dict | None = None,
    checkpoint: str | os.PathLike | None = "auto",
) -> dict:
    """Run every check on ``bundle``; raise on the first failure; return a summary dict."""
    bundle = Path(bundle).absolute()
    meta = check_required_files(bundle)
    meta_file = str(bundle / "configs" / "metadata.json")
    if schema is None:
        schema = Path(tempfile.gettempdir()) / "monai_bundle_schema" / Path(meta["schema"]).name
    verify_metadata(meta_file=meta_file, filepath=str(schema))
    summary: dict = {"bundle": bundle.name, "metadata": "valid"}
    workflows = {"infer": [bundle / "configs" / "inference.json"]}
    if (bundle / "configs" / "train.json").is_file():
        workflows["train"] = [bundle / "configs" / "train.json"]
    for workflow_type, files in workflows.items():
        missing = check_config_properties(files, workflow_type)
        if missing:
            raise ValueError(f"{bundle.name}: {files[0].name} lacks the {workflow_type} properties {missing}.")
    summary["properties"] = sorted(workflows)
    overrides = {"bundle_root": str(bundle), **(override or {})}
    verify_net_in_out(
        net_id="network_def",
        meta_file=meta_file,
        config_file=str(bundle / "configs" / "inference.json"),
        device="cpu",
        n=2,
        p=1,
        any=2,
        extra_forward_args=_extra_inputs(meta) or None,
        **overrides,
    )
    summary["net_in_out"] = "ok"
    if export:
        with tempfile.TemporaryDirectory() as tmp:
            summary["torchscript"] = export_torchscript(bundle, meta, Path(tmp) / "model.ts", override, checkpoint)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", help="bundle folders, e.g. bundles/spine_seg")
    parser.add_argument("--schema", default=None, help="local copy of the metadata schema (else downloaded)")
    parser.add_argument("--no-export", action="store_true", help="skip the TorchScript export")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    for b in args.bundles:
        print(json.dumps(verify_bundle(b, schema=args.schema, export=not args.no_export)))


if __name__ == "__main__":
    main()
