# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Run a bundle's workflows the way a user of the model zoo would, from whatever folder this is started in.

    python anywhere_probe.py <spec.json>

The spec names the bundle folder, its name, the tiny overrides and the paths to write into. The probe asserts that
``shared`` is not importable before it starts (the repository is not on the path), then runs with MONAI's own API:
``ConfigWorkflow`` of type train, eval (evaluate.json on top of train.json) and infer, each through
``initialize`` / ``check_properties() == []`` / ``run`` / ``finalize``; ``monai.bundle.run`` of the inference
config; and ``monai.bundle.load`` of the trained weights. It prints one JSON line with what it found, including
the third-party distributions the bundle's own code and configs imported (``import_recorder``). With ``allowed``
in the spec, only those distributions can be imported, as in a clean install of the bundle's metadata.
"""

import importlib.util
import json
import sys
from pathlib import Path

import import_recorder  # beside this script


def workflow(config, kind, overrides):
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(config_file=config, workflow_type=kind, **overrides)
    wf.initialize()
    missing = wf.check_properties()
    assert missing == [], f"{kind}: missing properties {missing}"
    wf.run()
    wf.finalize()
    return wf


def main(spec_file):
    spec = json.loads(Path(spec_file).read_text())
    import_recorder.install(spec["bundle"], spec.get("allowed"))  # before anything imports MONAI
    assert importlib.util.find_spec("shared") is None, "the repository is importable: the probe would prove nothing"
    bundle, work = Path(spec["bundle"]), Path(spec["work"])
    configs = bundle / "configs"
    paths = {k: str(work / v) for k, v in spec["paths"].items()}
    train = {**spec["train"], **paths, "output_dir": str(work / "eval_train")}
    found = {}
    if spec.get("train_eval", True):
        workflow(str(configs / "train.json"), "train", train)
        found["trained"] = sorted(p.name for p in (work / "models").iterdir())
        evaluate = {**train, "output_dir": str(work / "eval_test")}
        workflow([str(configs / "train.json"), str(configs / "evaluate.json")], "eval", evaluate)
        found["evaluated"] = sorted(p.name for p in (work / "eval_test").rglob("*") if p.is_file())
    infer = {**spec["infer"], **paths, "output_dir": str(work / "eval_infer")}
    workflow(str(configs / "inference.json"), "infer", infer)

    import monai.bundle

    monai.bundle.run(config_file=str(configs / "inference.json"), **{**infer, "output_dir": str(work / "eval_run")})
    found["inferred"] = sorted(p.name for p in (work / "eval_run").rglob("*") if p.is_file())

    net = monai.bundle.load(
        bundle.name,
        bundle_dir=str(bundle.parent),
        source="disk",
        model_file=str(work / "models" / "model.pt"),
        workflow_type="inference",
        net_override=spec["network"],
    )
    found["loaded"] = type(net).__name__
    found["shared_from"] = str(Path(sys.modules["shared"].__file__).parent.parent)
    found["imports"] = import_recorder.report()
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1])
