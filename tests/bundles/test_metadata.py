# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Each bundle's metadata.json, as the model zoo and MONAI Label read it: declared packages agree with what its runs
import, pins stay within requirements.txt, ``supported_apps`` agrees with what MONAI Label can serve, and the
version has its changelog entry. Offline: the pins' wheels are checked by ``python -m shared.bundle.requirements``."""

from __future__ import annotations

import json
import re

import pytest

from shared.bundle.monailabel_app import BundleCheckError, check_bundle
from shared.bundle.requirements import imported_modules, offline_problems, read_requirements, required_distributions
from tests.conftest import BUNDLES, REPO


def _meta(name: str) -> dict:
    return json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())


@pytest.mark.parametrize("name", BUNDLES)
def test_declared_packages_are_what_its_runs_import(name):
    requirements = read_requirements(REPO / "requirements.txt")
    needed = required_distributions(imported_modules(REPO / "bundles" / name), requirements)
    problems = offline_problems(_meta(name), needed, requirements)
    assert problems == [], f"{name}: {problems}; run `python -m shared.bundle.requirements bundles/{name}`"


def _monailabel_version() -> str:
    """The MONAI Label release CI installs and the bundles are tested with."""
    found = re.findall(r"monailabel==([\w.]+)", (REPO / ".ci" / "run").read_text())
    assert len(set(found)) == 1, f".ci/run should pin monailabel once, found {found}"
    return found[0]


@pytest.mark.parametrize("name", BUNDLES)
def test_supported_apps_agrees_with_what_monai_label_can_serve(name):
    try:
        check_bundle(REPO / "bundles" / name)
        servable = True
    except BundleCheckError:
        servable = False
    apps = _meta(name)["supported_apps"]
    assert ("monai-label" in apps) == servable, f"{name}: supported_apps {apps}, servable by MONAI Label: {servable}"
    if servable:
        assert apps["monai-label"] == _monailabel_version()


def test_monai_label_serves_every_single_input_bundle():
    """Not vacuous: three bundles are served, the multi-input one is not."""
    served = {name for name in BUNDLES if "monai-label" in _meta(name)["supported_apps"]}
    assert {"brain_mri_classification", "glaucoma_oct_classification", "spine_seg"} <= served
    assert "ad_multiomic_classification" not in served


@pytest.mark.parametrize("name", BUNDLES)
def test_version_has_a_changelog_entry_newest_first(name):
    meta = _meta(name)
    assert next(iter(meta["changelog"])) == meta["version"], f"{name}: the changelog should start at its version"
