# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import json
import os

from ignite.engine import Engine, Events

from shared.handlers.run_record import RecordWriter


def _validate(writer, best_epochs, on_epoch=None):
    """Validation passes of epochs 1..n; the key metric improves at ``best_epochs``."""
    engine = Engine(lambda e, b: None)
    best = {"epoch": -1}

    def judge(e):
        if e.state.epoch in best_epochs:
            best["epoch"] = e.state.epoch
        e.state.best_metric_epoch = best["epoch"]

    engine.add_event_handler(Events.EPOCH_COMPLETED, judge)  # as the best-model saver before it
    writer.attach(engine)
    if on_epoch:
        engine.add_event_handler(Events.EPOCH_COMPLETED, on_epoch)
    engine.run([0], max_epochs=max(best_epochs | {1}) + 1)


def test_the_record_is_written_with_the_best_model_only(tmp_path):
    record = {"format": "x", "epoch": 0}
    writer = RecordWriter(record, str(tmp_path / "training_record.json"))
    _validate(writer, {1}, on_epoch=lambda e: record.update(epoch=e.state.epoch))
    assert json.loads((tmp_path / "training_record.json").read_text()) == {"format": "x", "epoch": 0}


def test_an_object_is_written_by_its_state_and_an_unchanged_file_is_left_alone(tmp_path):
    class Fitted:
        def state_dict(self):
            return {"subjects": ["a"]}

    path = tmp_path / "preprocessing.json"
    _validate(RecordWriter(Fitted(), str(path)), {1})
    os.utime(path, (0, 0))
    _validate(RecordWriter(Fitted(), str(path)), {1, 2})  # the same content: not rewritten
    assert json.loads(path.read_text()) == {"subjects": ["a"]} and path.stat().st_mtime == 0
    path.write_text("{broken")
    _validate(RecordWriter(Fitted(), str(path)), {1})  # an unreadable file is replaced
    assert json.loads(path.read_text()) == {"subjects": ["a"]}
