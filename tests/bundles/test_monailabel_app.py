# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""shared.bundle.monailabel_app: the MONAI Label app set-up command (no MONAI Label install needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.bundle.monailabel_app import BundleCheckError, check_bundle, main, resolve_bundle, write_app
from tests.conftest import REPO, run_env

SEG_META = {
    "version": "0.1.0",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [32, 32, 32]}},
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "channel_def": {"0": "background", "1": "vertebra"},
            }
        },
    },
}
CLS_META = {
    "version": "0.1.0",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [32, 32, 32]}},
        "outputs": {
            "pred": {
                "type": "probabilities",
                "format": "classes",
                "num_channels": 2,
                "spatial_shape": [1, 2],
                "channel_def": {"0": "healthy", "1": "disease"},
            }
        },
    },
}


def _bundle(root: Path, name: str, meta: dict) -> Path:
    path = root / name
    (path / "configs").mkdir(parents=True)
    (path / "configs" / "metadata.json").write_text(json.dumps(meta))
    (path / "configs" / "inference.json").write_text(json.dumps({"bundle_root": "."}))
    return path


def test_valid_bundles_are_written_with_shared_copied(tmp_path):
    seg = _bundle(tmp_path / "src", "toy_segmentation", SEG_META)
    cls = _bundle(tmp_path / "src", "toy_classification", CLS_META)
    (seg / "models").mkdir()
    (seg / "models" / "model.pt").write_bytes(b"weights")
    (seg / "data").mkdir()  # demo data the bundle writes for itself: not copied
    (seg / "shared").symlink_to(REPO / "shared", target_is_directory=True)
    names = write_app(tmp_path / "app", [seg, cls])
    assert names == ["toy_segmentation", "toy_classification"]
    app = tmp_path / "app"
    assert "class MyApp(MONAILabelApp)" in (app / "main.py").read_text()
    copy = app / "model" / "toy_segmentation"
    assert (copy / "models" / "model.pt").read_bytes() == b"weights"
    assert not (copy / "data").exists()
    # the symlink is dereferenced: a real copy of the package, sub-packages named data/ included
    assert not (copy / "shared").is_symlink()
    assert (copy / "shared" / "spine" / "__init__.py").is_file()
    assert (copy / "shared" / "spine" / "spacing.py").is_file()
    assert (app / "shared" / "spine" / "spacing.py").read_bytes() == (
        REPO / "shared" / "spine" / "spacing.py"
    ).read_bytes()
    assert (app / "model" / "toy_classification" / "configs" / "metadata.json").is_file()
    compile((app / "main.py").read_text(), "main.py", "exec")


def test_the_app_imports_the_union_of_the_bundles_shared(tmp_path):
    """Each release zip carries only its bundle's part of ``shared`` and one process imports ``shared`` once: the
    app holds the union, and refuses copies of one file that differ (bundles of different releases)."""
    seg = _bundle(tmp_path / "src", "toy_segmentation", SEG_META)
    cls = _bundle(tmp_path / "src", "toy_classification", CLS_META)
    for bundle, room in ((seg, "spine"), (cls, "oct")):
        (bundle / "shared" / room).mkdir(parents=True)
        (bundle / "shared" / "__init__.py").write_text('"""same"""\n')
        (bundle / "shared" / room / "code.py").write_text(f"ROOM = {room!r}\n")
    write_app(tmp_path / "app", [seg, cls])
    union = sorted(
        p.relative_to(tmp_path / "app" / "shared").as_posix() for p in (tmp_path / "app" / "shared").rglob("*.py")
    )
    assert union == ["__init__.py", "oct/code.py", "spine/code.py"]
    (cls / "shared" / "__init__.py").write_text('"""another release"""\n')
    with pytest.raises(BundleCheckError, match=r"bundles differ in shared/__init__.py .*different releases"):
        write_app(tmp_path / "app2", [seg, cls])
    assert not (tmp_path / "app2").exists()  # refused before anything is written


def test_every_repo_bundle_is_accepted_or_refused_for_its_inputs():
    for path in sorted((REPO / "bundles").iterdir()):
        if not (path / "configs" / "metadata.json").is_file():
            continue
        try:
            check_bundle(resolve_bundle(path.name))
        except BundleCheckError as err:
            # the only accepted refusal: a network that takes more inputs than MONAI Label feeds it
            assert "network_data_format.inputs" in str(err) and path.name in str(err)


@pytest.mark.parametrize(
    "name, meta, field",
    [
        ("toy_segmentation", CLS_META, "network_data_format.outputs.pred.format"),
        ("toy_classification", SEG_META, "network_data_format.outputs.pred.format"),
    ],
)
def test_folder_name_must_match_task_type(tmp_path, name, meta, field):
    bundle = _bundle(tmp_path, name, meta)
    with pytest.raises(BundleCheckError) as err:
        write_app(tmp_path / "app", [bundle])
    assert f"'{name}'" in str(err.value) and field in str(err.value)
    assert not (tmp_path / "app").exists(), "nothing is written for a refused bundle"


@pytest.mark.parametrize("labels", [None, {}])
def test_missing_labels(tmp_path, labels):
    meta = json.loads(json.dumps(SEG_META))
    if labels is None:
        del meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    else:
        meta["network_data_format"]["outputs"]["pred"]["channel_def"] = labels
    bundle = _bundle(tmp_path, "toy_segmentation", meta)
    with pytest.raises(BundleCheckError, match=r"'toy_segmentation'.*network_data_format\.outputs\.pred\.channel_def"):
        check_bundle(bundle)


def test_missing_network_data_format_and_files(tmp_path):
    meta = {k: v for k, v in SEG_META.items() if k != "network_data_format"}
    with pytest.raises(BundleCheckError, match=r"'toy_segmentation'.*'network_data_format'"):
        check_bundle(_bundle(tmp_path / "a", "toy_segmentation", meta))
    bundle = _bundle(tmp_path / "b", "toy_segmentation", SEG_META)
    (bundle / "configs" / "inference.json").unlink()
    with pytest.raises(BundleCheckError, match=r"'toy_segmentation'.*configs/inference\.json"):
        check_bundle(bundle)


def test_multi_input_network_is_refused(tmp_path):
    meta = json.loads(json.dumps(CLS_META))
    meta["network_data_format"]["inputs"]["clinical"] = {"type": "vector", "spatial_shape": [7]}
    with pytest.raises(BundleCheckError, match=r"'toy_classification'.*network_data_format\.inputs.*2 inputs"):
        check_bundle(_bundle(tmp_path, "toy_classification", meta))


def test_unpacked_zip_folder_and_existing_target(tmp_path):
    unpacked = tmp_path / "unzipped"
    _bundle(unpacked, "toy_segmentation", SEG_META)
    bundle = resolve_bundle(str(unpacked))
    assert bundle.name == "toy_segmentation"
    write_app(tmp_path / "app", [bundle])
    with pytest.raises(BundleCheckError, match="--force"):
        write_app(tmp_path / "app", [bundle])
    write_app(tmp_path / "app", [bundle], force=True)
    with pytest.raises(BundleCheckError, match="no such folder"):
        resolve_bundle(str(tmp_path / "nowhere"))


def test_cli_exit_code_and_message(tmp_path, capsys):
    bundle = _bundle(tmp_path, "toy_segmentation", CLS_META)
    assert main(["--out", str(tmp_path / "app"), str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "toy_segmentation" in err and "network_data_format.outputs.pred.format" in err
    assert main(["--out", str(tmp_path / "app2"), str(_bundle(tmp_path / "ok", "toy_classification", CLS_META))]) == 0


def test_cli_as_module(tmp_path):
    bundle = _bundle(tmp_path, "toy_classification", SEG_META)
    res = subprocess.run(
        [sys.executable, "-m", "shared.bundle.monailabel_app", "--out", str(tmp_path / "app"), str(bundle)],
        cwd=REPO,
        env=run_env(),
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "error: bundle 'toy_classification'" in res.stderr
