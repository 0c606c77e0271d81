# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import os

import pytest

from shared.errors import InputError, MissingInputError
from shared.oct.threshold import read_threshold, write_threshold


def test_threshold_file(tmp_path):
    path = str(tmp_path / "t" / "threshold.json")
    with pytest.raises(MissingInputError, match="threshold file .*threshold.json does not exist"):
        read_threshold(path)
    write_threshold(path, 0.37, epoch=3)
    assert read_threshold(path) == pytest.approx(0.37)
    assert not [p for p in os.listdir(tmp_path / "t") if p != "threshold.json"]  # no temporary file left
    with open(path, "w") as f:
        f.write('{"threshold": 1.7}')
    with pytest.raises(InputError, match="must hold .*a number in \\[0, 1\\].*1.7"):
        read_threshold(path)
