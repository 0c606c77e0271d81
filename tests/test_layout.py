# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The layout of ``shared``: a file's path says who owns it, and imports run one way (common, networks, a method's
room, tooling); a bundle's release zip carries its own room, not the others'."""

import ast
from pathlib import Path

import pytest

from shared.bundle.package import bundle_files

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "shared"
ROOMS = {"spine_seg": "spine", "glaucoma_oct_classification": "oct", "brain_mri_classification": "brain"}
ROOMS["ad_multiomic_classification"] = "multiomic"
NETWORKS = {"spine_seg": "adaptive_swin_unetr", "glaucoma_oct_classification": "ai_cnet3d"}
NETWORKS.update(brain_mri_classification="dino_atten3d", ad_multiomic_classification="acmca")


def _place(module: str) -> tuple[int, str]:
    """(layer, room) of a ``shared`` module: 0 common, 1 networks, 2 a method's room, 3 tooling."""
    parts = module.split(".")[1:]
    if not parts or len(parts) == 1 and (SHARED / f"{parts[0]}.py").is_file() or parts[0] == "handlers":
        return 0, ""
    return {"networks": (1, ""), "bundle": (3, "")}.get(parts[0], (2, parts[0]))


def _imports(path: Path) -> set[str]:
    """Every ``shared`` module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "shared"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "shared":
            assert node.level == 0, f"{path}: a relative import (the layout reads absolute ones)"
            found.add(node.module)
    return found


def test_imports_run_one_way():
    wrong = []
    for path in sorted(SHARED.rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        layer, room = _place(module)
        for target in _imports(path):
            their_layer, their_room = _place(target)
            if their_layer > layer or (layer == their_layer == 2 and their_room != room):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_every_method_has_a_room_and_common_code_is_by_kind():
    rooms = sorted(p.name for p in SHARED.iterdir() if (p / "__init__.py").is_file())
    assert rooms == sorted(["networks", "handlers", "bundle", *ROOMS.values()])
    for bundle, network in NETWORKS.items():
        assert (SHARED / "networks" / f"{network}.py").is_file(), bundle


@pytest.mark.parametrize("bundle", sorted(ROOMS))
def test_a_zip_carries_its_own_room_and_network_only(bundle):
    carried = {arc.split("/shared/", 1)[1] for _, arc in bundle_files(REPO / "bundles" / bundle) if "/shared/" in arc}
    rooms = {path.split("/")[0] for path in carried if "/" in path}
    assert rooms - {"handlers", "networks", "bundle"} == {ROOMS[bundle]}
    networks = {path for path in carried if path.startswith("networks/")}
    assert f"networks/{NETWORKS[bundle]}.py" in networks
    assert not {f"networks/{n}.py" for b, n in NETWORKS.items() if b != bundle} & networks
    assert not {path for path in carried if path.startswith("bundle/")}  # no tooling
    assert all((SHARED / path).is_file() for path in carried)
