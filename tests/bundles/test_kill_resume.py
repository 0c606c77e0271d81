# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Nothing lost: spine_seg training killed with SIGKILL in the middle of epoch 2, then rerun with the same command.

The real ``python -m monai.bundle run training`` command runs in a subprocess with the tiny settings. It is killed
(no handler, no cleanup: what the OOM killer or a pulled plug does) once epoch 2 has logged its first iteration.
Rerunning the same command resumes at epoch 2 with the best score restored, and ``model.pt`` (written by epoch 1's
validation) is byte-identical after the kill. A fresh run into the same folder refuses to replace it, and so does
a run whose data is broken. Stale ``.partial`` files (what a kill during a save leaves) are gone after the next start.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from shared.spine.phantom import write_spine_phantom_dataset
from tests.conftest import PYTHON, REPO, run_env
from tests.runner import run_bundle

CONFIGS = REPO / "bundles" / "spine_seg" / "configs"
TINY = json.loads((Path(__file__).parent / "tiny" / "spine_seg.json").read_text())["train"]
KILL_AT = "Epoch: 2/2, Iter: 1/3"  # 4 phantoms: 3 training iterations per epoch, 1 validation case
RUN_TIMEOUT_S = 300


def _cli(overrides: dict) -> list[str]:
    """Overrides as a user types them (the runner reads Python literals: ``True``, not ``true``)."""
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", repr(value) if isinstance(value, bool) else json.dumps(value)]
    return args


def _args(work: Path, **overrides) -> list[str]:
    settings = {**TINY, "max_epochs": 2, "val_fraction": 0.25, "test_fraction": 0.0, **overrides}
    settings.update(dataset_dir=str(work / "data"), ckpt_dir=str(work / "models"), output_dir=str(work / "eval"))
    return ["run", "training", "--config_file", str(CONFIGS / "train.json"), *_cli(settings)]


def _start(work: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [PYTHON, "-m", "monai.bundle", *_args(work)], cwd=REPO, env=run_env(), stdout=out, stderr=subprocess.STDOUT
        )


def _kill_when_logged(proc: subprocess.Popen, log: Path, line: str) -> None:
    deadline = time.time() + RUN_TIMEOUT_S
    while line not in log.read_text():
        if proc.poll() is not None:
            pytest.fail(f"training ended ({proc.returncode}) before '{line}':\n{log.read_text()[-4000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no '{line}' within {RUN_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _checkpoint(work: Path) -> dict:
    return torch.load(work / "models" / "checkpoint_last.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> dict:
    """A run killed in epoch 2, and what its folder held at the kill."""
    work = tmp_path_factory.mktemp("kill")
    write_spine_phantom_dataset(work / "data", num_cases=4, shape=(40, 40, 56), spacing=(3.0, 3.0, 3.0))
    proc = _start(work, work / "first.log")
    _kill_when_logged(proc, work / "first.log", KILL_AT)
    model = (work / "models" / "model.pt").read_bytes()
    state = _checkpoint(work)
    # what a kill in the middle of a save leaves: the temporary files of atomic_save, never a truncated target
    for name in ("checkpoint_last.pt", "model.pt"):
        (work / "models" / f".{name}.k1ll3d.partial").write_bytes(model[: len(model) // 3])
    return {"work": work, "model": model, "state": state}


def test_the_kill_landed_in_epoch_2_and_left_epoch_1_whole(killed):
    work, state = killed["work"], killed["state"]
    # ignite saves the finished iterations: one epoch of 3, epoch 2 was cut short
    assert (state["trainer"]["iteration"], state["trainer"]["epoch_length"]) == (3, 3)
    assert state["best_model"]["_saved"], "epoch 1's validation saved no best model"
    torch.load(work / "models" / "model.pt", map_location="cpu", weights_only=True)  # complete, loadable
    assert "Iter: 1/3" in (work / "first.log").read_text().split("Epoch: 2/2")[1]


@pytest.fixture(scope="module")
def resumed(killed) -> dict:
    work = killed["work"]
    run = subprocess.run(
        [PYTHON, "-m", "monai.bundle", *_args(work)],
        cwd=REPO,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return {**killed, "log": run.stdout + run.stderr}


def test_rerunning_resumes_at_epoch_2_with_the_best_score(resumed):
    work, log, before = resumed["work"], resumed["log"], resumed["state"]["best_model"]
    assert f"Resumed from {work / 'models' / 'checkpoint_last.pt'} after epoch 1." in log
    assert f"restored best score {before['_saved'][-1][0]:.6g}" in log
    iterations = re.findall(r"Epoch: (\d+)/2, Iter: (\d+)/3", log)
    assert iterations and iterations[0] == ("2", "1") and {e for e, _ in iterations} == {"2"}, iterations
    after = _checkpoint(work)
    assert after["trainer"]["iteration"] == 6
    best_before, best_after = before["_saved"][-1][0], after["best_model"]["_saved"][-1][0]
    model = (work / "models" / "model.pt").read_bytes()
    if model == resumed["model"]:  # epoch 2 was not better: epoch 1's model and score stand
        assert best_after == best_before and after["best_model"]["best_metric_epoch"] == 1
    else:  # replaced only by a better model
        assert best_after > best_before and after["best_model"]["best_metric_epoch"] == 2


def test_no_partial_file_survives_the_next_start(resumed):
    assert not list((resumed["work"] / "models").glob("*.partial"))
    assert not list((resumed["work"] / "eval").glob("*.partial"))


def test_a_fresh_run_into_the_same_folder_refuses(resumed):
    work = resumed["work"]
    model = (work / "models" / "model.pt").read_bytes()
    run = run_bundle(_args(work, resume=False), cwd=REPO)
    assert run.returncode != 0 and run.last_line.startswith("ERROR: "), run.output[-3000:]
    assert str(work / "models" / "model.pt") in run.last_line and "--overwrite True" in run.last_line
    assert "Iter:" not in run.output
    assert (work / "models" / "model.pt").read_bytes() == model


def test_a_run_with_bad_data_leaves_the_model(resumed):
    work = resumed["work"]
    model = (work / "models" / "model.pt").read_bytes()
    broken = work / "data" / "images" / "spine_002.nii.gz"
    good = broken.read_bytes()
    try:
        broken.write_bytes(good[: len(good) // 2])
        run = run_bundle(_args(work, overwrite=True, resume=False), cwd=REPO)
    finally:
        broken.write_bytes(good)
    assert run.returncode != 0 and run.last_line.startswith("ERROR: "), run.output[-3000:]
    assert str(broken) in run.last_line and "truncated" in run.last_line
    assert "Iter:" not in run.output
    assert (work / "models" / "model.pt").read_bytes() == model
    assert not list((work / "models").glob("*.partial"))
