# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import os
import stat

import pytest
import torch
from ignite.engine import Engine, Events

from shared.errors import InputError
from shared.handlers.checkpoint import AtomicCheckpointSaver, CheckedCheckpointLoader, ResumeCheckpointLoader


def _trainer(net, opt, fail_at_epoch=None):
    def step(engine, batch):
        opt.zero_grad()
        loss = net(batch).square().mean()
        loss.backward()
        opt.step()
        if fail_at_epoch is not None and engine.state.epoch == fail_at_epoch:
            raise KeyboardInterrupt("interrupted")
        return loss.item()

    return Engine(step)


def _parts(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    return net, torch.optim.SGD(net.parameters(), lr=0.1)


def test_interrupted_training_resumes_without_losing_epochs(tmp_path):
    data = [torch.randn(4, 3) for _ in range(3)]
    net, opt = _parts()
    trainer = _trainer(net, opt, fail_at_epoch=3)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path),
        save_dict={"model": net, "optimizer": opt},
        engine_key="trainer",
        save_interval=1,
        n_saved=1,
        interval_filename="checkpoint_last.pt",
    )
    saver.attach(trainer)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(data, max_epochs=5)
    ckpt = tmp_path / "checkpoint_last.pt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["trainer"]["iteration"] == 2 * len(data)  # up to the last finished epoch
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_last.pt"]  # no temp files left behind
    assert os.stat(ckpt).st_mode & stat.S_IRGRP  # readable by the group, unlike a raw temp file

    net2, opt2 = _parts(seed=1)
    trainer2 = _trainer(net2, opt2)
    epochs_run = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    ResumeCheckpointLoader(load_path=str(ckpt), load_dict={"model": net2, "optimizer": opt2}).attach(trainer2)
    assert torch.equal(net2.weight, _parts(seed=1)[0].weight)  # nothing loaded before the run starts
    trainer2.run(data, max_epochs=5)
    assert epochs_run == [3, 4, 5]


def test_resume_starts_fresh_without_checkpoint(tmp_path):
    net, opt = _parts()
    trainer = _trainer(net, opt)
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    ResumeCheckpointLoader(load_path=str(tmp_path / "none.pt"), load_dict={"model": net}).attach(trainer)
    trainer.run([torch.randn(2, 3)], max_epochs=2)
    assert epochs == [1, 2]


def test_checkpoint_of_another_network_is_a_clear_error(tmp_path):
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "model.pt")
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    loader = CheckedCheckpointLoader(load_path=str(tmp_path / "model.pt"), load_dict={"model": net})
    with pytest.raises(ValueError, match=r"was not made for this network.*missing keys: 0.weight"):
        loader(Engine(lambda e, b: None))
    missing = CheckedCheckpointLoader(load_path=str(tmp_path / "absent.pt"), load_dict={"model": net})
    with pytest.raises(FileNotFoundError, match="absent.pt does not exist"):
        missing(Engine(lambda e, b: None))
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "ok.pt")
    CheckedCheckpointLoader(load_path=str(tmp_path / "ok.pt"), load_dict={"model": torch.nn.Linear(3, 2)})(
        Engine(lambda e, b: None)
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is truncated or not a PyTorch checkpoint"),
        (b"PK\x03\x04 not really a zip", "is truncated or not a PyTorch checkpoint"),
        ("truncated", "is truncated or not a PyTorch checkpoint"),
        ("pickled module", "is not a plain state dict"),
        ("a tensor", "holds a Tensor, not a state dict"),
    ],
)
def test_unusable_checkpoint_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "model.pt"
    if content == "truncated":
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "pickled module":
        torch.save(torch.nn.Linear(3, 2), path)  # a whole module: weights-only loading refuses to unpickle it
    elif content == "a tensor":
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(content)
    loader = CheckedCheckpointLoader(load_path=str(path), load_dict={"model": torch.nn.Linear(3, 2)})
    with pytest.raises(InputError, match=message) as e:
        loader(Engine(lambda e, b: None))
    assert str(path) in str(e.value)


def test_a_resumed_run_replaces_the_best_model_only_with_a_better_one(tmp_path):
    """The best score is part of the training checkpoint; after resuming, a worse validation keeps model.pt."""
    net = torch.nn.Linear(3, 2)
    scores = iter([0.8, 0.5])  # the first run's validation, then the resumed run's (worse)

    def evaluator():
        ev = Engine(lambda e, b: None)
        ev.state.best_metric, ev.state.best_metric_epoch = -1, -1

        @ev.on(Events.EPOCH_COMPLETED)
        def score(engine):
            engine.state.metrics["val_dice"] = next(scores)

        ev.state.key_metric_name = "val_dice"
        return ev

    def saver():
        return AtomicCheckpointSaver(
            save_dir=str(tmp_path), save_dict={"model": net}, save_key_metric=True, key_metric_filename="model.pt"
        )

    first, best = evaluator(), saver()
    best.attach(first)
    first.run([0], max_epochs=1)
    state = best.state_dict()
    assert [score for score, _ in state["_saved"]] == [0.8]
    before = (tmp_path / "model.pt").read_bytes()

    with torch.no_grad():
        net.weight.add_(1.0)  # the resumed run's network differs
    second, restored = evaluator(), saver()
    restored.attach(second)
    restored.load_state_dict(torch.load(_roundtrip(tmp_path, state), weights_only=True))
    second.run([0], max_epochs=1)
    assert (tmp_path / "model.pt").read_bytes() == before  # 0.5 did not beat the restored 0.8


def _roundtrip(tmp_path, state):
    path = tmp_path / "state.pt"
    torch.save(state, path)  # through weights-only loading, as checkpoint_last.pt is
    return path
