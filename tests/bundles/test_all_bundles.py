# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Checks every bundle in bundles/ gets: the model zoo's verification, and every workflow type run from a folder
outside the repository, on the bundle folder and on its unpacked release zip.

A bundle provides tests/bundles/tiny/<name>.json with the overrides that make its training (one tiny epoch) and
inference fast ("train", "infer"), and optionally those for verification ("verify", default: "infer"), which must
keep the network consistent with the shapes its metadata declares."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared.bundle.package import package_bundle
from shared.bundle.paths import safe_extract
from shared.bundle.requirements import OWN_FIELDS, dependency_closure
from shared.bundle.verify import verify_bundle
from tests.conftest import BUNDLES, PYTHON, REPO, run_env

TINY = Path(__file__).parent / "tiny"


def _tiny(name: str) -> dict:
    path = TINY / f"{name}.json"
    assert path.is_file(), f"bundle {name} needs {path} with its tiny train/infer overrides"
    return json.loads(path.read_text())


def _cli(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


@pytest.mark.parametrize("name", BUNDLES)
def test_verify(name, schema_path):
    tiny = _tiny(name)
    summary = verify_bundle(
        REPO / "bundles" / name, schema=schema_path, override=tiny.get("verify", tiny["infer"]), checkpoint=None
    )
    assert summary["metadata"] == "valid" and summary["net_in_out"] == "ok"
    assert summary["torchscript"] in ("script", "trace")


def _network_overrides(name: str, infer: dict) -> dict:
    """The tiny overrides that shape the network, as ``monai.bundle.load(net_override=...)`` takes them."""
    network_def = json.loads((REPO / "bundles" / name / "configs" / "inference.json").read_text())["network_def"]
    out = {k.split("#", 1)[1]: v for k, v in infer.items() if k.startswith("network_def#")}
    for arg, value in network_def.items():
        if isinstance(value, str) and value.startswith("@") and value[1:] in infer:
            out.setdefault(arg, infer[value[1:]])
    return out


def _probe(bundle: Path, work: Path, tiny: dict, cwd: Path, train_eval: bool) -> dict:
    spec = {
        "bundle": str(bundle),
        "work": str(work),
        "paths": {k: v for k, v in PATHS.items()},
        "train": tiny["train"],
        "infer": tiny["infer"],
        "network": _network_overrides(bundle.name, tiny["infer"]),
        "train_eval": train_eval,
        "allowed": sorted(_declared(bundle.name)),  # everything else is blocked, as in a clean install
    }
    spec_file = cwd / "spec.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run(
        [PYTHON, str(Path(__file__).with_name("anywhere_probe.py")), str(spec_file)],
        cwd=cwd,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _declared(name: str) -> set[str]:
    """What a clean install of the bundle's metadata holds: its packages (torch, monai, numpy included) and their
    dependencies, as canonical distribution names."""
    meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
    return dependency_closure([*meta["required_packages_version"], *OWN_FIELDS])


def _undeclared(name: str, imported: dict[str, list[str]]) -> dict[str, list[str]]:
    """The distributions a run imported from the bundle's own code or configs (``import_recorder``) that a clean
    install of its metadata would not hold."""
    from packaging.utils import canonicalize_name

    return {dist: by for dist, by in imported.items() if canonicalize_name(dist) not in _declared(name)}


# every path a workflow writes to, inside the test's folder (never into the repository's bundles)
PATHS = {"ckpt_dir": "models", "dataset_dir": "data", "demo_dataset_dir": "data", "embedding_cache_dir": "cache"}


@pytest.mark.parametrize("name", BUNDLES)
def test_every_workflow_runs_from_anywhere(name, tmp_path):
    """From a folder outside the repository, with the repository not importable: train, eval and infer workflows,
    ``monai.bundle.run`` and ``monai.bundle.load`` on ``bundles/<name>``, then on its unpacked release zip. Each
    run can import only the packages the bundle's metadata declares and their dependencies (a clean install of
    them), and its own code and configs import none other."""
    tiny = _tiny(name)
    work, neutral = tmp_path / "work", tmp_path / "neutral"
    work.mkdir()
    neutral.mkdir()
    found = _probe(REPO / "bundles" / name, work, tiny, neutral, train_eval=True)
    assert "model.pt" in found["trained"] and found["evaluated"] and found["inferred"], found
    assert found["shared_from"] == str(REPO / "bundles" / name) and found["loaded"]
    assert {"pytorch-ignite", "torch"} <= set(found["imports"]), found["imports"]  # the configs' own imports
    assert _undeclared(name, found["imports"]) == {}, f"{name} imports undeclared packages: {found['imports']}"

    zip_path = package_bundle(REPO / "bundles" / name, tmp_path / "dist")
    meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
    assert zip_path.name == f"{name}_v{meta['version']}.zip"
    root = safe_extract(zip_path, tmp_path / "unpacked") / name
    assert (root / "shared" / "__init__.py").is_file() and not (root / "shared").is_symlink()
    found = _probe(root, work, tiny, neutral, train_eval=False)
    assert found["shared_from"] == str(root) and found["inferred"] and found["loaded"], found
    assert _undeclared(name, found["imports"]) == {}, f"{name} (zip) imports undeclared packages: {found['imports']}"

    # and the README's way: the runner started inside the unpacked bundle, outputs into it
    infer = [PYTHON, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    args = _cli({**tiny["infer"], **{k: str(work / v) for k, v in PATHS.items()}})
    done = subprocess.run(infer + args, cwd=root, env=run_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = [p for p in (root / "eval").rglob("*") if p.is_file() and not p.name.startswith("events.")]
    assert outputs, "inference wrote nothing to the bundle's eval/"


def test_safe_extract_refuses_zip_slip(tmp_path):
    import zipfile

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(evil, tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()


def _configs(name: str) -> dict[str, dict]:
    folder = REPO / "bundles" / name / "configs"
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "metadata.json"}


def test_configs_find_their_bundle_the_same_way():
    """One mechanism for all: the same self-locating ``bundle_root``, the bundle folder put on ``sys.path`` first
    thing in every ``initialize`` and the one-line error report installed next, and ``shared`` reached only through
    ``_target_`` (never imported by a config: an import that fails early would leave the parser a placeholder)."""
    roots, boots = set(), set()
    for name in BUNDLES:
        for file, config in _configs(name).items():
            text = json.dumps(config)
            assert "import shared" not in text and '"$shared.' not in text, f"{name}/{file}"
            if "bundle_root" in config:
                roots.add(config["bundle_root"])
            if "initialize" in config:
                boots.add(json.dumps(config["initialize"][:2]))
    assert len(roots) == 1 and "ConfigWorkflow" in roots.pop()
    assert len(boots) == 1
    path_first, hook = json.loads(boots.pop())
    assert "sys.path.insert" in path_first and hook == {"_target_": "shared.errors.install_excepthook"}


NETWORKS = {
    "spine_seg": (
        "adaptive_swin_unetr.AdaptiveSwinUNETR",
        dict(in_channels=1, out_channels=3, feature_size=12, depths=(1, 1, 1, 1)),
    ),
    "glaucoma_oct_classification": ("ai_cnet3d.AICNet3D", dict(in_channels=1, num_classes=2)),
    "brain_mri_classification": ("dino_atten3d.DinoAtten3D", dict(num_classes=2, backbone_weights="random")),
    "ad_multiomic_classification": ("acmca.ACMCA", dict(backbone="resnet10", snp_features=20, img_size=(64, 64))),
}
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
sys.meta_path.insert(0, Block())
import importlib
module, name = ("shared.networks." + {cls!r}).rsplit(".", 1)
net = getattr(importlib.import_module(module), name)(**{kwargs!r})
print(sorted({{m.split(".")[0] for m in sys.modules}} & {blocked!r}), sum(p.numel() for p in net.parameters()))
"""


@pytest.mark.parametrize("name", BUNDLES)
def test_network_imports_no_optional_dependency(name):
    """A bundle's network loads with scipy, scikit-learn, nilearn and matplotlib unavailable: importing a network
    module imports no other, and heavy optional dependencies are imported where they are used."""
    assert name in NETWORKS, f"add {name}'s network to NETWORKS"
    cls, kwargs = NETWORKS[name]
    blocked = {"scipy", "sklearn", "nilearn", "matplotlib"}
    code = BLOCK.format(blocked=blocked, cls=cls, kwargs=kwargs)
    done = subprocess.run([PYTHON, "-c", code], cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported, params = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert imported == "[]" and int(params) > 0
