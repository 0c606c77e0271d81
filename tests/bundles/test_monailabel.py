# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Every bundle in bundles/ loads and serves in a real MONAI Label server (set up by shared.bundle.monailabel_app).

The app gets each bundle's tiny overrides (tests/bundles/tiny/<name>.json) written into its copy of the configs and
the tiny network's initial weights as models/model.pt, so the server answers in seconds on CPU.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from shared.bundle.monailabel_app import BundleCheckError, check_bundle, resolve_bundle, write_app
from tests.bundles.test_monailabel_load import stop_server
from tests.conftest import BUNDLES, REPO, run_env
from tests.crafted import claiming_nifti

START_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 180

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("monailabel") is None,
    reason="monailabel is not installed (pip install --no-deps monailabel==0.8.5 -r requirements-monailabel.txt)",
)


def _tiny(name: str) -> dict:
    path = REPO / "tests" / "bundles" / "tiny" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {"train": {}, "infer": {}}


def _set(config: dict, key: str, value) -> None:
    """Set a ``a#b#c`` config id in a JSON config (lists indexed by number)."""
    *parents, last = key.split("#")
    node = config
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _apply_overrides(config_file: Path, overrides: dict) -> None:
    config = json.loads(config_file.read_text())
    for key, value in overrides.items():
        _set(config, key, value)
    config_file.write_text(json.dumps(config, indent=2))


def _save_initial_weights(bundle: Path) -> None:
    """Instantiate the (tiny-override) network of the app's copy and save its initial weights as models/model.pt."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def", instantiate=True)
    (bundle / "models").mkdir(exist_ok=True)
    torch.save(net.state_dict(), bundle / "models" / "model.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _servable() -> tuple[list[str], dict[str, str]]:
    """Bundles the app can serve, and those refused because their network takes more than one input."""
    ok, refused = [], {}
    for name in BUNDLES:
        try:
            check_bundle(resolve_bundle(name))
            ok.append(name)
        except BundleCheckError as err:
            if "network_data_format.inputs" not in str(err):
                raise
            refused[name] = str(err)
    return ok, refused


def _is_segmentation(name: str) -> bool:
    meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
    return next(iter(meta["network_data_format"]["outputs"].values()))["format"] == "segmentation"


def _write_studies(studies: Path) -> Path:
    """Two labelled spine phantoms (the MONAI Label local datastore layout: images + labels/final)."""
    from shared.spine.phantom import write_spine_phantom_dataset

    demo = write_spine_phantom_dataset(studies.parent / "phantoms", num_cases=2, shape=(48, 48, 64), spacing=(3, 3, 3))
    (studies / "labels" / "final").mkdir(parents=True)
    for image in sorted((demo / "images").glob("*.nii.gz")):
        shutil.copy(image, studies / image.name)
        shutil.copy(demo / "labels" / image.name, studies / "labels" / "final" / image.name)
    return studies / "spine_000.nii.gz"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import requests

    root = tmp_path_factory.mktemp("monailabel")
    names, refused = _servable()
    app = root / "app"
    write_app(app, [resolve_bundle(n) for n in names])
    for name in names:
        copy = app / "model" / name
        tiny = _tiny(name)
        _apply_overrides(copy / "configs" / "inference.json", tiny.get("infer", {}))
        if _is_segmentation(name):
            _apply_overrides(copy / "configs" / "train.json", tiny.get("train", {}))
        _save_initial_weights(copy)
    studies = root / "studies"
    sample = _write_studies(studies)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "w")
    env = run_env()
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--conf", "models", ",".join(names)]
    cmd += ["--conf", "zoo_source", "local", "--conf", "preload", "false"]
    # own process group so that the training subprocesses it spawns are stopped with it; cwd outside the repo so
    # the bundles can only import the shared/ copied into them
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"MONAI Label server exited ({proc.returncode}):\n{(root / 'server.log').read_text()[-6000:]}"
                )
            try:
                if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail(
                    f"MONAI Label server not up in {START_TIMEOUT_S}s:\n{(root / 'server.log').read_text()[-6000:]}"
                )
            time.sleep(1)
        yield {
            "url": url,
            "names": names,
            "refused": refused,
            "app": app,
            "sample": sample,
            "root": root,
            "pid": proc.pid,
        }
    finally:
        stop_server({"proc": proc, "log": log})


def _log(server) -> str:
    return (server["root"] / "server.log").read_text()[-8000:]


def test_info_lists_every_bundle_with_its_labels(server):
    import requests

    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    assert server["names"], "no bundle in bundles/ can be served"
    for name in server["names"]:
        assert name in info["models"], f"{name} not served:\n{_log(server)}"
        meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
        channel_def = next(iter(meta["network_data_format"]["outputs"].values()))["channel_def"]
        served = info["models"][name]["labels"]
        for k, label in channel_def.items():
            if label.lower() == "background":
                continue
            assert served[label.lower()] == int(k), (name, label, served)
        assert info["models"][name]["type"] == ("segmentation" if _is_segmentation(name) else "classification")
        assert info["models"][name]["version"] == meta["version"]
    for name in server["refused"]:
        assert name not in info["models"]


def _volume_for(name: str, server, tmp_path: Path) -> Path:
    """A NIfTI volume for a bundle: the spine phantom for segmentation, a small random volume otherwise."""
    if _is_segmentation(name):
        return server["sample"]
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 1.5, 1.0, 1.0])
    path = tmp_path / f"{name}_input.nii.gz"
    nib.save(nib.Nifti1Image(rng.uniform(0, 255, (24, 28, 20)).astype(np.float32), affine), str(path))
    return path


@pytest.mark.parametrize("name", BUNDLES)
def test_infer(server, name, tmp_path):
    import requests

    if name in server["refused"]:
        # not served: the set-up command refuses it with the reason (a network fed more than the one image)
        assert f"bundle '{name}'" in server["refused"][name] and "MONAI Label" in server["refused"][name]
        return
    volume = _volume_for(name, server, tmp_path)
    segmentation = _is_segmentation(name)
    with open(volume, "rb") as f:
        r = requests.post(
            f"{server['url']}/infer/{name}",
            params={"output": "image" if segmentation else "json"},
            files={"file": (volume.name, f)},
            data={"params": json.dumps({"device": "cpu"})},
            timeout=REQUEST_TIMEOUT_S,
        )
    assert r.status_code == 200, f"{r.status_code} {r.text[:2000]}\n{_log(server)}"
    if segmentation:
        out = tmp_path / "label.nii.gz"
        out.write_bytes(r.content)
        label, image = nib.load(str(out)), nib.load(str(volume))
        assert label.shape == image.shape
        np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
        values = np.unique(np.asarray(label.dataobj))
        num_classes = len(
            json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())["network_data_format"][
                "outputs"
            ]["pred"]["channel_def"]
        )
        assert values.min() >= 0 and values.max() < num_classes
    else:
        result = r.json()
        meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
        classes = next(iter(meta["network_data_format"]["outputs"].values()))["channel_def"]
        pred = result["prediction"]
        assert len(pred) == len(classes)
        scores = np.asarray([p["score"] for p in pred], dtype=float)
        assert np.all((scores >= 0) & (scores <= 1)) and abs(scores.sum() - 1.0) < 1e-3, pred
        assert {p["label"] for p in pred} == {c.lower() for c in classes.values()}


def test_train_segmentation_bundles(server):
    import requests

    names = [n for n in server["names"] if _is_segmentation(n)]
    if not names:
        pytest.skip("no segmentation bundle in bundles/")
    for name in names:
        models = server["app"] / "model" / name / "models"
        before = {p.name: p.stat().st_mtime for p in models.glob("*.pt")}
        r = requests.post(
            f"{server['url']}/train/{name}",
            params={"run_sync": "true"},
            json={"max_epochs": 1, "val_split": 0.5, "device": "cpu", "multi_gpu": False},
            timeout=REQUEST_TIMEOUT_S,
        )
        assert r.status_code == 200, f"{r.status_code} {r.text[:2000]}\n{_log(server)}"
        after = {p.name: p.stat().st_mtime for p in models.glob("*.pt")}
        written = [k for k, t in after.items() if before.get(k) != t]
        assert "checkpoint_last.pt" in written, (r.text[:2000], _log(server))


def _rss_mib(pid: int) -> float:
    """Resident memory of the server process (and its children, none at rest), in MiB."""
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def test_an_upload_claiming_16_gib_gets_413_and_the_server_stays_up(server, tmp_path):
    """The header claims 2048 x 2048 x 1024 float32 voxels: refused before anything is decoded, with a message; the
    server's memory does not grow, and it keeps answering."""
    import requests

    name = next(n for n in server["names"] if _is_segmentation(n))
    crafted = claiming_nifti(tmp_path / "huge.nii.gz")
    before = _rss_mib(server["pid"])
    with open(crafted, "rb") as f:
        r = requests.post(
            f"{server['url']}/infer/{name}",
            params={"output": "image"},
            files={"file": (crafted.name, f)},
            timeout=REQUEST_TIMEOUT_S,
        )
    assert r.status_code == 413, f"{r.status_code} {r.text[:2000]}\n{_log(server)}"
    assert "claims 2048 x 2048 x 1024 float32 voxels, 16.0 GiB" in r.json()["detail"]
    assert _rss_mib(server["pid"]) - before < 256  # nothing near 16 GiB was allocated
    assert requests.get(f"{server['url']}/info/", timeout=30).status_code == 200
