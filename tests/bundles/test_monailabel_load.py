# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""MONAI Label under load: a bounded burst of concurrent ``/infer`` requests with a malformed upload in the middle.

The real MONAI Label server (started as in ``test_monailabel.py``, tiny network settings, weights written here)
serves the bundles; 16 requests are kept in flight, 64 in all, each a different small volume, across the served
bundles. Every good request must return a correct result (a label map on the input's grid and affine with labels
of the bundle's classes, or one probability per class); the malformed upload gets a 4xx whose message says what
is wrong; the server stays up; and its resident memory after the burst is within ``RSS_MARGIN`` of before (after
one warm-up request per bundle, which loads the models).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from shared.bundle.monailabel_app import resolve_bundle, write_app
from tests.conftest import REPO, run_env

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("monailabel") is None,
    reason="monailabel is not installed (pip install --no-deps monailabel==0.8.5 -r requirements-monailabel.txt)",
)

IN_FLIGHT = 16
REQUESTS = 64
RSS_MARGIN = 0.25  # resident memory after the burst may exceed the warmed-up value by at most this fraction
START_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 300


def _helpers():
    from tests.bundles import test_monailabel as ml  # the set-up the MONAI Label tests share

    return ml


def _rss(pid: int) -> int:
    """Resident memory of a process and its children (MONAI Label runs nothing in children for inference)."""
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def start_server(root: Path, env: dict | None = None) -> dict:
    """An app with every servable bundle (tiny overrides, weights of the tiny network), studies, and a running server;
    returns ``url``, ``names``, ``proc``, ``log`` and ``root``. Stop it with :func:`stop_server`."""
    import requests

    ml = _helpers()
    names, _ = ml._servable()
    app = root / "app"
    write_app(app, [resolve_bundle(n) for n in names])
    for name in names:
        copy = app / "model" / name
        ml._apply_overrides(copy / "configs" / "inference.json", ml._tiny(name).get("infer", {}))
        ml._save_initial_weights(copy)
    studies = root / "studies"
    studies.mkdir()
    port = ml._free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "w")
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--conf", "models", ",".join(names)]
    cmd += ["--conf", "zoo_source", "local", "--conf", "preload", "false", "--conf", "skip_trainers", "true"]
    proc = subprocess.Popen(
        cmd, cwd=root, env={**run_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = {"url": url, "names": names, "proc": proc, "log": log, "root": root}
    deadline = time.time() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None or time.time() > deadline:
            stop_server(server)
            raise RuntimeError(f"MONAI Label server not up:\n{(root / 'server.log').read_text()[-6000:]}")
        try:
            if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.5)


def stop_server(server: dict) -> None:
    proc = server["proc"]
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    server["log"].close()


def _is_segmentation(name: str) -> bool:
    return _helpers()._is_segmentation(name)


def _classes(name: str) -> dict:
    meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
    return next(iter(meta["network_data_format"]["outputs"].values()))["channel_def"]


def make_volume(name: str, i: int, folder: Path) -> Path:
    """Volume ``i`` for a bundle: a spine phantom of its own size and spacing for segmentation, a random volume of
    its own shape and affine otherwise (every request of the burst sends different data)."""
    path = folder / f"{name}_{i:03d}.nii.gz"
    if _is_segmentation(name):
        from shared.spine.phantom import spine_phantom

        shape, spacing = (36 + i % 5, 36 + i % 3, 48 + 2 * (i % 4)), (3.0, 3.0 - 0.1 * (i % 3), 3.0)
        image, _, affine = spine_phantom(shape, spacing, seed=i)
    else:
        rng = np.random.default_rng(i)
        image = rng.uniform(0, 255, (20 + i % 5, 24 + i % 4, 16 + i % 3)).astype(np.float32)
        affine = np.diag([2.0, 1.5 + 0.1 * (i % 2), 1.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), str(path))
    return path


def infer(url: str, name: str, volume: Path, timeout: float = REQUEST_TIMEOUT_S):
    import requests

    segmentation = (REPO / "bundles" / name).is_dir() and _is_segmentation(name)
    with open(volume, "rb") as f:
        return requests.post(
            f"{url}/infer/{name}",
            params={"output": "image" if segmentation else "json"},
            files={"file": (volume.name, f)},
            data={"params": json.dumps({"device": "cpu"})},
            timeout=timeout,
        )


def check_result(name: str, volume: Path, response, out: Path) -> None:
    """The result is correct for this volume: a label map on its grid, or one probability per class."""
    assert response.status_code == 200, f"{name} {volume.name}: {response.status_code} {response.text[:1000]}"
    classes = _classes(name)
    if _is_segmentation(name):
        out.write_bytes(response.content)
        label, image = nib.load(str(out)), nib.load(str(volume))
        assert label.shape == image.shape, (volume.name, label.shape, image.shape)
        np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
        values = np.unique(np.asarray(label.dataobj))
        assert values.min() >= 0 and values.max() < len(classes), (volume.name, values)
    else:
        pred = response.json()["prediction"]
        scores = np.asarray([p["score"] for p in pred], dtype=float)
        assert len(pred) == len(classes) and {p["label"] for p in pred} == {c.lower() for c in classes.values()}
        assert np.all((scores >= 0) & (scores <= 1)) and abs(scores.sum() - 1.0) < 1e-3, pred


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("monailabel_load")
    try:
        server = start_server(root)
    except RuntimeError as err:
        pytest.fail(str(err))
    try:
        yield server
    finally:
        stop_server(server)


def _log(server) -> str:
    return (server["root"] / "server.log").read_text()[-6000:]


def test_a_burst_with_a_malformed_upload(server, tmp_path):
    import requests

    names = server["names"]
    assert names, "no bundle in bundles/ can be served"
    for name in names:  # warm-up: each model is loaded by its first request
        volume = make_volume(name, 999, tmp_path)
        check_result(name, volume, infer(server["url"], name, volume), tmp_path / "warm-up.nii.gz")
    rss_before = _rss(server["proc"].pid)

    jobs = [(names[i % len(names)], i) for i in range(REQUESTS)]
    volumes = {job: make_volume(job[0], job[1], tmp_path) for job in jobs}
    bad = tmp_path / "malformed.nii.gz"
    bad.write_bytes(volumes[jobs[0]].read_bytes()[:300])  # a truncated upload
    bad_at = REQUESTS // 2

    def send(k: int):
        if k == bad_at:
            return "bad", infer(server["url"], names[0], bad)
        return jobs[k], infer(server["url"], jobs[k][0], volumes[jobs[k]])

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        results = list(pool.map(send, range(REQUESTS)))

    for job, response in results:
        if job == "bad":
            assert 400 <= response.status_code < 500, f"{response.status_code} {response.text[:2000]}\n{_log(server)}"
            detail = response.json()["detail"]
            assert "cannot be read" in detail and "Traceback" not in detail, detail
        else:
            check_result(job[0], volumes[job], response, tmp_path / f"out_{job[1]}.nii.gz")
    unknown = infer(server["url"], "no_such_model", volumes[jobs[1]])
    assert unknown.status_code == 400 and "no_such_model" in unknown.json()["detail"], unknown.text[:2000]
    assert server["proc"].poll() is None, _log(server)
    assert requests.get(f"{server['url']}/info/", timeout=30).status_code == 200
    rss_after = _rss(server["proc"].pid)
    assert rss_after <= rss_before * (1 + RSS_MARGIN), (rss_before / 2**20, rss_after / 2**20)
