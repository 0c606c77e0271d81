# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import os

import pytest
import torch

from shared.atomic import atomic_save, atomic_write, remove_stale_partials, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"dice": 0.9})
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write('{"dice": 0.')
            raise RuntimeError("killed mid-write")
    assert target.read_text() == '{\n  "dice": 0.9\n}\n' and os.listdir(tmp_path) == ["metrics.json"]


def test_saved_file_is_complete_and_readable_by_the_group(tmp_path):
    atomic_save({"w": torch.arange(3)}, tmp_path / "sub" / "model.pt")
    assert torch.equal(torch.load(tmp_path / "sub" / "model.pt", weights_only=True)["w"], torch.arange(3))
    assert os.stat(tmp_path / "sub" / "model.pt").st_mode & 0o040


def test_only_hidden_partials_are_stale(tmp_path):
    for name in (".model.pt.x1.partial", "notes.partial", "model.pt"):
        (tmp_path / name).write_text("x")
    assert remove_stale_partials(tmp_path) == [".model.pt.x1.partial"]
    assert sorted(os.listdir(tmp_path)) == ["model.pt", "notes.partial"]
