# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""bench/demos.py: the demo commands it times are the model cards' own, and each gets its time and last line."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import demos  # noqa: E402


@pytest.mark.parametrize("name", sorted(demos.DEMOS))
def test_demo_commands_are_the_cards_verbatim(name):
    demo = demos.DEMOS[name]
    card = (REPO / demo["card"]).read_text()
    block = "\n".join(demo["lines"])
    assert f"```bash\n{block}\n```" in card, f"{demo['card']} no longer shows the commands bench/demos.py times"


def test_every_command_is_timed_and_its_last_line_kept(tmp_path):
    lines = ["X=1", "for I in a b; do", "  python -c \"print('x', '$I')\"", "done", "python -c \"print('end $X')\""]
    done = subprocess.run(["bash", "-c", demos.script(lines)], capture_output=True, text=True, check=True)
    marks = [line for line in done.stdout.splitlines() if line.startswith(demos.MARK)]
    assert [m.split()[-1] for m in marks] == ["2", "2", "4", "end"]  # the loop's command twice, then the last
    assert "x a" in done.stdout and "x b" in done.stdout and "end 1" in done.stdout


def test_the_spread_of_repeated_runs():
    runs = [{"seconds": 500.0, "held_out_numbers": [0.98, 0.97]}, {"seconds": 480.0, "held_out_numbers": [0.95, 0.99]}]
    assert demos.spread(runs) == {
        "seconds_min": 480.0,
        "seconds_max": 500.0,
        "held_out_min": [0.95, 0.97],
        "held_out_max": [0.98, 0.99],
    }
