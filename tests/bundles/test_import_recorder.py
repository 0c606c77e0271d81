# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""import_recorder (used by anywhere_probe.py): imports are attributed to the bundle's code and configs, not to the
libraries that make them for themselves."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from tests.conftest import PYTHON, run_env

SCRIPT = """
import json, sys
import import_recorder
import_recorder.install({bundle!r})
sys.path.insert(0, {bundle!r})
import monai.metrics  # MONAI imports many optional packages for itself: none counts
from monai.bundle import ConfigParser

config = {{
    "imports": ["$import nibabel"],
    "fire": {{"_target_": "fire.Fire", "_mode_": "callable"}},
    "use": {{"_target_": "shared.use", "_mode_": "callable"}},
}}
parser = ConfigParser(config)
parser.get_parsed_content("fire")
parser.get_parsed_content("use")()
libraries = sorted(m for m in ("scipy", "sklearn", "yaml") if m in sys.modules)
print(json.dumps({{"report": import_recorder.report(), "loaded": libraries}}))
"""


def test_imports_are_attributed_to_their_importer(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "shared").mkdir(parents=True)
    (bundle / "shared" / "__init__.py").write_text(textwrap.dedent("""
            import importlib
            import importlib.util
            import json  # the standard library never counts


            def use():
                import tqdm  # inside a function
                importlib.import_module("einops")
                return importlib.util.find_spec("matplotlib")  # the package's files, without importing it
            """))
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(bundle=str(bundle)))
    env = {**run_env(), "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run([PYTHON, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["report"] == {
        "einops": ["shared"],
        "fire": ["config"],
        "matplotlib": ["shared"],
        "monai": ["config"],
        "nibabel": ["config"],
        "numpy": ["config"],  # MONAI's config parser offers numpy to "$" expressions
        "tqdm": ["shared"],
    }
    assert out["loaded"], "MONAI should have imported some of scipy, scikit-learn, PyYAML for itself"


BLOCKING = """
import json, sys
import import_recorder
import_recorder.install({bundle!r}, allowed=["numpy"])
import numpy, json  # declared, and the standard library
try:
    import tqdm
except ModuleNotFoundError as err:
    print(json.dumps(str(err)))
"""


def test_undeclared_distributions_are_blocked(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "shared").mkdir(parents=True)
    (bundle / "shared" / "__init__.py").write_text("")
    script = tmp_path / "run.py"
    script.write_text(BLOCKING.format(bundle=str(bundle)))
    env = {**run_env(), "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run([PYTHON, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "No module named 'tqdm' (tqdm is not declared)"
