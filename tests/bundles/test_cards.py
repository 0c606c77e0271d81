# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The model cards say what the configs do: every default a card's paper / public code / bundle table quotes as
`` `id: value` `` is that id's value in train.json, and the parameter count each card quotes is that of the network
train.json builds."""

from __future__ import annotations

import json
import re

import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import BUNDLES, REPO

# `id: value` in a table cell: a config id, then a JSON literal
QUOTED = re.compile(r"`([A-Za-z_][\w#]*): ([^`]+)`")
# what keeps building the default network offline (weights are not part of its parameter count)
OFFLINE = {
    "brain_mri_classification": {"backbone_weights": None},
    "ad_multiomic_classification": {"image_weights": "random"},
}


def _card(name: str) -> str:
    return (REPO / "bundles" / name / "docs" / "README.md").read_text()


def _parser(name: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / name / "configs" / "train.json"))
    for key, value in overrides.items():
        parser[key] = value
    return parser


def _switch_cells(card: str) -> list[str]:
    """The cells of the "switch" column of every table that has one."""
    cells, column = [], None
    for line in card.splitlines():
        if not line.startswith("|"):
            column = None
            continue
        row = [c.strip() for c in line.strip().strip("|").split("|")]
        if column is None:
            column = row.index("switch") if "switch" in row else -1
        elif column >= 0 and not set(line) <= set("|-: "):
            cells.append(row[column])
    return cells


@pytest.mark.parametrize("name", BUNDLES)
def test_every_default_a_card_quotes_is_the_configs(name):
    parser = _parser(name)
    quoted = [m.groups() for cell in _switch_cells(_card(name)) for m in QUOTED.finditer(cell)]
    assert quoted, f"{name}: its card has no paper / public code / bundle table with a switch column"
    for key, literal in quoted:
        assert key in parser, f"{name}: the card quotes `{key}`, which train.json does not have"
        assert parser.get_parsed_content(key) == json.loads(literal), f"{name}: `{key}: {literal}` in the card"


def _parameters(name: str) -> tuple[int, int]:
    """Trainable and total parameters of the network train.json builds."""
    net = _parser(name, **OFFLINE.get(name, {})).get_parsed_content("network_def")
    params = list(net.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@pytest.mark.parametrize("name", BUNDLES)
def test_the_parameter_count_a_card_quotes_is_the_networks(name):
    torch.manual_seed(0)
    trainable, total = _parameters(name)
    card = _card(name)
    quoted = {f"{trainable:,}", f"{total:,}", f"{total / 1e6:.1f} M"}
    assert any(q in card for q in quoted), f"{name}: the card quotes none of {sorted(quoted)}"


WORKFLOW_CONFIGS = {"train.json", "evaluate.json", "inference.json", "metadata.json", "finetune.json"}
OVERRIDES = sorted(
    p.relative_to(REPO / "bundles")
    for p in (REPO / "bundles").glob("*/configs/*.json")
    if p.name not in WORKFLOW_CONFIGS and not p.name.startswith("multi_gpu")
)


@pytest.mark.parametrize("path", OVERRIDES, ids=[str(p) for p in OVERRIDES])
def test_named_override_files_set_ids_the_training_config_has(path):
    """demo.json, public.json, ce_only.json, ...: overrides only, each key an id of train.json (or a new argument of
    one of its components), so a renamed id cannot leave an override silently doing nothing."""
    parser = _parser(path.parts[0])
    overrides = json.loads((REPO / "bundles" / path).read_text())
    new_argument = lambda k: "#" in k and isinstance(parser.get(k.rpartition("#")[0]), dict)  # noqa: E731
    assert [k for k in overrides if k not in parser and not new_argument(k)] == []
