"""Checks every bundle in bundles/ gets: the model zoo's verification, and a release zip that trains and infers
outside this repository. A bundle provides tests/bundles/tiny/<name>.json with the overrides that make its
training (one tiny epoch) and inference fast ("train", "infer"), and optionally those for verification ("verify",
default: "infer"), which must keep the network consistent with the shapes its metadata declares."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared.bundle import safe_extract
from shared.bundle.package import package_bundle
from shared.bundle.verify import verify_bundle
from tests.conftest import BUNDLES, PYTHON, REPO, run_env

TINY = Path(__file__).parent / "tiny"


def _tiny(name: str) -> dict:
    path = TINY / f"{name}.json"
    assert path.is_file(), f"bundle {name} needs {path} with its tiny train/infer overrides"
    return json.loads(path.read_text())


def _cli(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


@pytest.mark.parametrize("name", BUNDLES)
def test_verify(name, schema_path):
    tiny = _tiny(name)
    summary = verify_bundle(
        REPO / "bundles" / name, schema=schema_path, override=tiny.get("verify", tiny["infer"]), checkpoint=None
    )
    assert summary["metadata"] == "valid" and summary["net_in_out"] == "ok"
    assert summary["torchscript"] in ("script", "trace")


@pytest.mark.parametrize("name", BUNDLES)
def test_zip_runs_outside_the_repo(name, tmp_path):
    tiny = _tiny(name)
    zip_path = package_bundle(REPO / "bundles" / name, tmp_path / "dist")
    meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
    assert zip_path.name == f"{name}_v{meta['version']}.zip"
    root = safe_extract(zip_path, tmp_path / "unpacked") / name
    assert (root / "shared" / "__init__.py").is_file() and not (root / "shared").is_symlink()

    # the repository must not be importable from there: run from inside the bundle, no PYTHONPATH
    env = run_env()
    probe = subprocess.run(
        [PYTHON, "-c", "import shared; print(shared.__file__)"], cwd=root, env=env, capture_output=True, text=True
    )
    assert probe.stdout.strip().startswith(str(root)), probe.stdout + probe.stderr

    train = [PYTHON, "-m", "monai.bundle", "run", "training", "--config_file", "configs/train.json"]
    done = subprocess.run(train + _cli(tiny["train"]), cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (root / "models" / "model.pt").is_file()

    infer = [PYTHON, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    done = subprocess.run(infer + _cli(tiny["infer"]), cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = [p for p in (root / "eval").rglob("*") if p.is_file() and not p.name.startswith("events.")]
    assert outputs, "inference wrote nothing to eval/"


def test_safe_extract_refuses_zip_slip(tmp_path):
    import zipfile

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(evil, tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()
