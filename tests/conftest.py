# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TEAM_FOLDER = REPO.parent / "shared"
SCHEMA = TEAM_FOLDER / "schemas" / "meta_schema_20240725.json"
SAMPLE_DATA = TEAM_FOLDER / "data"
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())

# single-threaded: several tests start subprocesses (torchrun ranks, bundle runs) that would oversubscribe the cores
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def schema_path() -> Path:
    """MONAI's bundle metadata schema, from the team folder beside the repo (no download in tests)."""
    if not SCHEMA.is_file():
        pytest.skip(f"metadata schema not found at {SCHEMA}")
    return SCHEMA


def run_env() -> dict:
    """Environment for subprocess runs: the same interpreter, no inherited PYTHONPATH, quiet threads."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


PYTHON = sys.executable


def error_chain(exc: BaseException) -> str:
    """All messages of an exception and its causes: MONAI's config parser wraps the error a bundle raises."""
    messages = []
    while exc is not None:
        messages.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(messages)
