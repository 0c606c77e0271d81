# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""shared.bundle.requirements: what a bundle imports, which distributions those are, which versions to pin, and the
metadata rewrite. Offline: a fake package index stands in for PyPI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from shared.bundle.requirements import (
    PYTHONS,
    Pin,
    imported_modules,
    main,
    pick_versions,
    read_requirements,
    required_distributions,
)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


METADATA = {
    "schema": "https://example.org/meta_schema.json",
    "version": "0.1.0",
    "monai_version": "1.5.0",
    "pytorch_version": "2.4.0",
    "numpy_version": "1.24.0",
    "required_packages_version": {"einops": "0.7.0"},
    "supported_apps": {},
    "task": "a task",
}


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A bundle whose needs come through each route the scan follows, and two it must not follow."""
    config = {
        "imports": ["$import yaml", "$import os"],
        "network": {"_target_": "shared.pkg.impl.Thing"},  # the package, then shared/pkg/impl.py
        "load": {"_target_": "LoadImaged", "keys": "image", "reader": "ITKReader"},
        "save": {"_target_": "monai.transforms.SaveImaged", "keys": "pred"},  # default writer: nibabel
        "tb": {"_target_": "TensorBoardStatsHandler"},
        "expr": "$@network.to(@device)",
    }
    return _write(
        tmp_path / "b",
        {
            "configs/train.json": json.dumps(config),
            "configs/metadata.json": json.dumps(METADATA, indent=4) + "\n",
            "shared/__init__.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from . import unused  # for type checkers only: never run
                    import matplotlib
            """,
            "shared/pkg/__init__.py": "",
            "shared/pkg/impl.py": """
                import json
                from monai.networks.nets import SwinUNETR  # MONAI imports its einops backend for itself
                from . import helper

                class Thing:
                    def __init__(self):
                        from scipy import ndimage  # inside a function: still a run-time import
            """,
            "shared/pkg/helper.py": """
                import importlib.util
                HAVE = importlib.util.find_spec("einops") is not None
            """,
            "shared/unused.py": "import sklearn\n",
        },
    )


def test_scan_follows_configs_modules_and_backends(bundle):
    found = imported_modules(bundle)
    assert set(found) == {"yaml", "monai", "itk", "nibabel", "tensorboard", "scipy", "einops", "fire"}
    assert found["scipy"] == {"shared/pkg/impl.py"}
    assert found["einops"] == {"shared/pkg/helper.py", "shared/pkg/impl.py (SwinUNETR)"}
    assert found["itk"] == {"configs/train.json (LoadImaged)"} and found["yaml"] == {"configs/train.json"}


def test_distributions_as_requirements_spells_them(tmp_path):
    req = _write(
        tmp_path, {"requirements.txt": "PyYAML>=6.0  # configs\nitk>=5.3\n-r more.txt\n", "more.txt": "tqdm\n"}
    )
    reqs = read_requirements(req / "requirements.txt")
    got = required_distributions({"yaml": {"a"}, "itk": {"b"}, "tqdm": {"c"}}, reqs)
    assert got == {"PyYAML": {"a"}, "itk": {"b"}, "tqdm": {"c"}}  # itk: split over itk-core, itk-io, ...: the meta
    with pytest.raises(LookupError, match=r"'einops' \(imported by shared/x.py\).*does not list"):
        required_distributions({"einops": {"shared/x.py"}}, reqs)
    with pytest.raises(LookupError, match="'no_such_module_here' .* not installed"):
        required_distributions({"no_such_module_here": {"configs/train.json"}}, reqs)


class FakeIndex:
    """Releases -> the Pythons each has wheels for; answers as pip's finder would."""

    def __init__(self, releases: dict[str, dict[str, set[str]]], conflict: str = ""):
        self.releases, self.conflict = releases, conflict

    def newest(self, requirements, python):
        out = {}
        for requirement in requirements:
            name = next(n for n in self.releases if requirement.startswith(n))
            spec = SpecifierSet(requirement[len(name) :])
            ok = [v for v, pys in self.releases[name].items() if v in spec and python in pys]
            out[requirement] = max(ok, key=Version) if ok else None
        return out

    def resolve(self, pins, python):
        return self.conflict


ALL = set(PYTHONS)
RELEASES = {
    "scipy": {"1.15.3": ALL - {"3.14"}, "1.17.1": ALL - {"3.10"}, "1.14.1": ALL - {"3.14"}},
    "numpy": {"2.2.6": ALL - {"3.14"}, "2.4.6": ALL - {"3.10"}},
    "torch": {"2.13.0": ALL, "2.14.1": ALL},
    "monai": {"1.6.1": ALL},
    "nibabel": {"5.4.2": ALL},
    "einops": {"0.8.2": ALL},
    "PyYAML": {"6.0.4": ALL},
    "tensorboard": {"2.21.0": ALL},
    "fire": {"0.7.1": ALL},
    "itk": {"5.4.7": ALL},
}


def test_pick_versions_newest_in_range_with_a_wheel_for_the_oldest_python():
    index = FakeIndex(RELEASES)
    pins = pick_versions({"scipy": ">=1.10", "torch": ">=2.4", "numpy": "<2.3"}, PYTHONS, index)
    assert pins == {"numpy": Pin("2.2.6", ("3.14",)), "scipy": Pin("1.15.3", ("3.14",)), "torch": Pin("2.14.1")}
    assert pick_versions({"scipy": "<1.15"}, PYTHONS, index) == {"scipy": Pin("1.14.1", ("3.14",))}
    # the tested release wins where it is in range and has a wheel for the oldest Python, else the newest does
    tested = {"torch": "2.13.0", "numpy": "2.4.6", "scipy": "1.0"}
    pins = pick_versions({"scipy": ">=1.10", "torch": ">=2.4", "numpy": ""}, PYTHONS, index, tested)
    assert pins == {"numpy": Pin("2.2.6", ("3.14",)), "scipy": Pin("1.15.3", ("3.14",)), "torch": Pin("2.13.0")}
    with pytest.raises(LookupError, match=r"scipy>=1.16 has a wheel for Python 3.10"):
        pick_versions({"scipy": ">=1.16", "torch": ""}, PYTHONS, index)


def _requirements(tmp_path) -> Path:
    reqs = (
        "torch>=2.4\nmonai>=1.5\nnumpy>=1.24\nnibabel>=5\nscipy>=1.10\neinops>=0.7\nPyYAML>=6\ntensorboard\nfire\nitk\n"
    )
    return _write(tmp_path, {"requirements.txt": reqs}) / "requirements.txt"


def test_main_rewrites_the_fields_in_place_and_check_compares(bundle, tmp_path, monkeypatch):
    # the tested (installed) release is preferred: pin what this test says is installed, not this machine's
    monkeypatch.setattr("shared.bundle.requirements._installed", lambda names: {"torch": "2.13.0"})
    meta_file = bundle / "configs" / "metadata.json"
    before = meta_file.read_text()
    args = [str(bundle), "--requirements", str(_requirements(tmp_path))]
    lines = []
    assert main([*args, "--check"], index=FakeIndex(RELEASES), out=lines.append) == 1
    assert meta_file.read_text() == before and "numpy_version: 1.24.0 -> 2.2.6" in lines[-1]
    assert any("scipy 1.15.3" in line and "3.14" in line for line in lines)  # the wheel gap is reported

    assert main(args, index=FakeIndex(RELEASES), out=lines.append) == 0
    meta = json.loads(meta_file.read_text())
    assert list(meta) == list(METADATA)  # every field kept, in place
    assert meta["required_packages_version"] == {
        "einops": "0.8.2",
        "fire": "0.7.1",
        "itk": "5.4.7",
        "nibabel": "5.4.2",
        "PyYAML": "6.0.4",
        "scipy": "1.15.3",
        "tensorboard": "2.21.0",
    }
    assert (meta["monai_version"], meta["pytorch_version"], meta["numpy_version"]) == ("1.6.1", "2.13.0", "2.2.6")
    assert meta_file.read_text() == json.dumps(meta, indent=4) + "\n"  # the file's own formatting
    assert main([*args, "--check"], index=FakeIndex(RELEASES), out=lines.append) == 0

    after = meta_file.read_text()
    assert main(args, index=FakeIndex(RELEASES, conflict="ResolutionImpossible"), out=lines.append) == 2
    assert "do not install together" in lines[-1] and meta_file.read_text() == after


def test_offline_check_compares_names_and_ranges(bundle, tmp_path):
    args = [str(bundle), "--requirements", str(_requirements(tmp_path)), "--offline"]
    lines = []
    assert main(args, out=lines.append) == 1
    assert "lacks fire" in lines[-1] and "numpy" not in lines[-1]  # 1.24.0 is within numpy>=1.24
    main([str(bundle), "--requirements", args[2]], index=FakeIndex(RELEASES), out=lines.append)
    assert main(args, out=lines.append) == 0, lines[-1]
