# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Every figure the README and the model cards quote comes from a results file a bench command rewrites.

A figure block is marked in the Markdown with the results file(s) it quotes,
``<!-- figures: bench/results/x.json [bench/results/y.json ...] -->``, and runs to the next blank line (a table or a
paragraph). Every decimal number in the block must be a value of those files, rounded as the block shows it
(``0.87`` matches 0.8712; ``1.09x`` matches 1.0921; ``87.1`` matches 0.8712 as a percentage); integers (sizes,
epochs, counts) and versions are left alone. A block whose file does not exist fails, and so does a card or README
without any marked block (each quotes measured figures).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "bundles").glob("*/docs/README.md"))]
MARK = re.compile(r"<!-- figures: ([^>]+?) -->")
# a sign belongs to the number where it stands alone (" -0.01", "(+0.02"), not in a range ("2.5-3.0")
DECIMAL = re.compile(r"(?<![\w.])([-+−]?\d+\.\d+)(?![\w.]*\d)")
# numbers that are names, not figures: software versions and paper identifiers
NOT_FIGURES = re.compile(r"(torch|Python|monai|MONAI|ignite) \d+(\.\d+)+|arXiv:\S+")


def _blocks(text: str) -> list[tuple[str, str]]:
    """``(results files, block text)`` of every marked block."""
    out = []
    for match in MARK.finditer(text):
        rest = text[match.end() :].lstrip("\n")
        out.append((match.group(1).split(), rest.split("\n\n", 1)[0]))
    return out


def _numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return []


def _held(shown: str, values: list[float]) -> bool:
    decimals = len(shown.split(".")[1])
    target = float(shown.replace("−", "-"))
    return any(round(v, decimals) == target or round(100 * v, decimals) == target for v in values)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_quoted_figure_is_in_its_results_file(doc):
    blocks = _blocks(doc.read_text())
    assert blocks, f"{doc.relative_to(REPO)} marks no figure block with the results file it quotes"
    for results, block in blocks:
        values = []
        for name in results:
            path = REPO / name
            assert path.is_file(), f"{doc.relative_to(REPO)} quotes {name}, which does not exist"
            values += _numbers(json.loads(path.read_text()))
        missing = [n for n in DECIMAL.findall(NOT_FIGURES.sub("", block)) if not _held(n, values)]
        assert not missing, f"{doc.relative_to(REPO)}: {missing} are not in {results}:\n{block[:400]}"


def test_the_marker_finds_blocks_and_numbers():
    text = "intro 1.5\n\n<!-- figures: a.json b.json -->\n| x | 0.87 | 1.09x |\n| y | 12 | 0.5 mm |\n\nafter 9.99"
    ((results, block),) = _blocks(text)
    assert results == ["a.json", "b.json"] and "after" not in block and "intro" not in block
    assert DECIMAL.findall(block) == ["0.87", "1.09", "0.5"]
    assert DECIMAL.findall(NOT_FIGURES.sub("", "torch 2.13, arXiv:2503.12853, 1.5 s")) == ["1.5"]
    assert _held("0.87", [0.8712]) and _held("1.09", [1.0921]) and not _held("0.88", [0.8712])
    assert _held("87.1", [0.8712])  # a percentage of a fraction
    assert DECIMAL.findall("a -0.012 gain, +0.02, 2.5-3.0 mm") == ["-0.012", "+0.02", "2.5", "3.0"]
    assert _held("-0.012", [-0.0121]) and not _held("+0.012", [-0.0121]) and _held("−0.012", [-0.0121])
