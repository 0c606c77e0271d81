# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Set up a MONAI Label app folder that serves bundles of this collection.

    python -m shared.bundle.monailabel_app --out <app dir> [bundle names or bundle folders ...]

writes ``<app dir>/main.py`` (a ``monaibundle``-style app), copies each bundle, symlinks dereferenced so that its
``shared/`` package travels with it, to ``<app dir>/model/<name>/``, and writes ``<app dir>/shared/``: the union of the
bundles' copies, which the app imports once for every bundle it serves (a release zip carries only the part of
``shared`` its bundle reaches, and one process holds one ``shared``). Then::

    monailabel start_server --app <app dir> --studies <images dir> --conf models <name>[,<name>...] \
        --conf zoo_source local

With no bundle given, every folder in the repository's ``bundles/`` is used. A bundle MONAI Label cannot serve is
refused before anything is written, with the bundle and the metadata field named.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BundleCheckError", "check_bundle", "resolve_bundle", "write_app", "main"]

REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
# never copied into the app: caches anywhere, and at the bundle's top level the evaluation outputs and demo data
# the bundle writes for itself
_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")
_TOP_LEVEL_OUTPUTS = {"eval", "data", "runs"}


class BundleCheckError(ValueError):
    """A bundle that MONAI Label cannot serve as it is."""


def resolve_bundle(spec: str) -> Path:
    """Folder of a bundle given as a path (a bundle folder, or a folder a bundle zip was unpacked into holding one
    ``<name>/`` bundle) or as the name of a folder in the repository's ``bundles/``."""
    path = Path(spec)
    if not path.is_dir() and (REPO_BUNDLES / spec).is_dir():
        path = REPO_BUNDLES / spec
    if not path.is_dir():
        raise BundleCheckError(f"bundle '{spec}': no such folder (nor {REPO_BUNDLES / spec}).")
    if not (path / "configs").is_dir():
        inner = [p for p in path.iterdir() if (p / "configs" / "metadata.json").is_file()]
        if len(inner) == 1:
            path = inner[0]
    return path.resolve()


def check_bundle(path: Path) -> dict:
    """Check what MONAI Label needs from a bundle; return its metadata. Raises :class:`BundleCheckError` naming the
    bundle and the field."""
    name = path.name
    for rel in ("configs/metadata.json", "configs/inference.json"):
        if not (path / rel).is_file():
            raise BundleCheckError(f"bundle '{name}' ({path}): missing {rel}.")
    try:
        meta = json.loads((path / "configs" / "metadata.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BundleCheckError(f"bundle '{name}': configs/metadata.json is not valid JSON ({err}).") from err
    fmt = meta.get("network_data_format")
    if not isinstance(fmt, dict):
        raise BundleCheckError(f"bundle '{name}': metadata field 'network_data_format' is missing.")
    inputs, outputs = fmt.get("inputs"), fmt.get("outputs")
    if not isinstance(inputs, dict) or not inputs:
        raise BundleCheckError(f"bundle '{name}': metadata field 'network_data_format.inputs' is missing or empty.")
    if len(inputs) != 1:
        # MONAI Label's bundle infer task feeds the network one tensor: the image it loaded
        raise BundleCheckError(
            f"bundle '{name}': metadata field 'network_data_format.inputs' declares {len(inputs)} inputs "
            f"({', '.join(inputs)}); MONAI Label's bundle inference feeds a network exactly one image, so this "
            "bundle cannot be served by MONAI Label. Run it with `python -m monai.bundle run` instead."
        )
    if not isinstance(outputs, dict) or not outputs:
        raise BundleCheckError(f"bundle '{name}': metadata field 'network_data_format.outputs' is missing or empty.")
    out_name, out = next(iter(outputs.items()))
    field = f"network_data_format.outputs.{out_name}"
    labels = out.get("channel_def") if isinstance(out, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise BundleCheckError(
            f"bundle '{name}': metadata field '{field}.channel_def' (the label names MONAI Label serves) is missing "
            "or empty."
        )
    bad = [k for k in labels if not str(k).isdigit()]
    if bad:
        raise BundleCheckError(f"bundle '{name}': metadata field '{field}.channel_def' has non-integer keys {bad}.")
    kind = out.get("format")
    if kind == "segmentation":
        if "classification" in name.lower():
            raise BundleCheckError(
                f"bundle '{name}': metadata field '{field}.format' is 'segmentation' but the folder name contains "
                "'classification', which makes MONAI Label treat it as a classifier; rename the folder."
            )
    elif kind == "classes":
        if "classification" not in name.lower():
            raise BundleCheckError(
                f"bundle '{name}': metadata field '{field}.format' is 'classes' (a classifier) but MONAI Label takes "
                "the task type from the folder name, which must contain 'classification'; rename the folder."
            )
    else:
        raise BundleCheckError(
            f"bundle '{name}': metadata field '{field}.format' is {kind!r}; MONAI Label bundles served here must be "
            "'segmentation' or 'classes'."
        )
    return meta


def _shared_files(bundles: Sequence[Path]) -> dict[Path, Path]:
    """``shared`` file (relative) -> the bundle file to copy, over every bundle; two bundles that carry the same file
    with different contents come from different releases and cannot share one process."""
    files: dict[Path, Path] = {}
    for b in bundles:
        root = (b / "shared").resolve()
        if not root.is_dir():
            continue  # a bundle of MONAI's own components only
        for f in sorted(root.rglob("*.py")):
            relative = f.relative_to(root)
            if "__pycache__" in relative.parts:
                continue
            other = files.setdefault(relative, f)
            if other != f and other.read_bytes() != f.read_bytes():
                raise BundleCheckError(
                    f"bundles differ in shared/{relative.as_posix()} ({other} and {f}): they come from different "
                    "releases of the collection; serve bundles of one release together."
                )
    return files


def write_app(out: Path, bundles: Sequence[Path], force: bool = False) -> list[str]:
    """Check every bundle, then write the app folder; returns the model names."""
    names = [b.name for b in bundles]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BundleCheckError(f"bundle names given twice: {dup}.")
    for b in bundles:
        check_bundle(b)
    model_dir = out / "model"
    for b in bundles:
        dst = model_dir / b.name
        if dst.exists():
            if not force:
                raise BundleCheckError(f"bundle '{b.name}': {dst} exists; pass --force to replace it.")
            shutil.rmtree(dst)
    sources = _shared_files(bundles)
    model_dir.mkdir(parents=True, exist_ok=True)
    (out / "main.py").write_text(APP_MAIN)
    if (out / "shared").exists():
        shutil.rmtree(out / "shared")
    for relative, source in sources.items():
        (out / "shared" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / "shared" / relative)
    for b in bundles:
        top = str(b)

        def ignore(folder: str, entries: list[str], top: str = top) -> set:
            skip = set(_CACHES(folder, entries))
            return skip | (_TOP_LEVEL_OUTPUTS & set(entries)) if folder == top else skip

        shutil.copytree(b, model_dir / b.name, symlinks=False, ignore=ignore)
        if not any((model_dir / b.name / "models" / f).is_file() for f in ("model.pt", "model.ts")):
            print(
                f"warning: bundle '{b.name}' has no models/model.pt nor models/model.ts; MONAI Label skips it "
                f"until you put weights in {model_dir / b.name / 'models'}.",
                file=sys.stderr,
            )
    return names


APP_MAIN = '''"""MONAI Label app serving the bundles under model/ (written by shared.bundle.monailabel_app)."""

import logging
import os
import sys

import torch

logger = logging.getLogger(__name__)


def _import_torchvision():
    """MONAI Label's post transforms import torchvision. A CUDA build of torchvision over a CPU build of torch cannot
    load its compiled operators, and then fails at import registering shapes for two of them; declaring those two
    operators lets its pure-Python parts (the only ones MONAI Label uses here) import. Its detection operators stay
    unavailable."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        globals()["_TORCHVISION_SCHEMAS"] = lib  # keep the definitions alive
        import torchvision  # noqa: F401


_import_torchvision()

import monailabel  # noqa: E402
from fastapi import HTTPException  # noqa: E402
from monailabel.interfaces.app import MONAILabelApp  # noqa: E402
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException  # noqa: E402
from monailabel.tasks.activelearning.first import First  # noqa: E402
from monailabel.tasks.activelearning.random import Random  # noqa: E402
from monailabel.tasks.infer.bundle import BundleInferTask  # noqa: E402
from monailabel.tasks.train.bundle import BundleTrainTask  # noqa: E402
from monailabel.utils.others.generic import strtobool  # noqa: E402


class FineTuneTask(BundleTrainTask):
    """MONAI Label's training updates the served model, starting from its ``models/model.pt``: that is the explicit
    overwrite the bundles otherwise refuse for a run from scratch into a folder holding a trained model."""

    def _update_overrides(self, overrides):
        overrides["overwrite"] = True


def _unreadable(path, model):
    """Why the image at ``path`` cannot be what a request to ``model`` needs (None when it reads as a volume)."""
    from monai.transforms import LoadImage

    what = f"The image sent to /infer/{model} ({os.path.basename(path)}, {os.path.getsize(path)} bytes)"
    try:
        image = LoadImage(image_only=True)(path)
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        return (
            f"{what} cannot be read as a medical image ({reason}); expected a complete NIfTI (.nii, .nii.gz), "
            "NRRD or DICOM volume."
        )
    if image.ndim < 3:
        return f"{what} has {image.ndim} dimension(s); expected a 3D volume."
    return None


class MyApp(MONAILabelApp):
    """Serves the bundles named by ``--conf models a,b`` (default: every folder in model/), from local folders
    only: nothing is downloaded."""

    def __init__(self, app_dir, studies, conf):
        self.model_dir = os.path.join(app_dir, "model")
        available = sorted(
            d
            for d in os.listdir(self.model_dir)
            if os.path.isfile(os.path.join(self.model_dir, d, "configs", "metadata.json"))
        )
        wanted = [m.strip() for m in (conf.get("models") or "").split(",") if m.strip()] or available
        missing = [m for m in wanted if m not in available]
        if missing:
            raise ValueError(f"--conf models names {missing}, not in {self.model_dir} (available: {available})")
        self.models = {m: os.path.join(self.model_dir, m) for m in wanted}
        # one `shared` for every bundle (the union of theirs, written beside this file), imported before any bundle
        # puts its own folder first on sys.path
        if os.path.abspath(app_dir) not in sys.path:
            sys.path.insert(0, os.path.abspath(app_dir))
        import shared  # noqa: F401
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"MONAI bundle collection ({monailabel.__version__})",
            description="MONAI bundles of this collection served by MONAI Label",
            version=monailabel.__version__,
        )

    def _image_file(self, request, datastore=None):
        """The local file of the request's image (an upload, or an image of the datastore), or None."""
        image = request.get("image")
        if isinstance(image, str) and not os.path.isfile(image):
            try:
                image = (datastore or self.datastore()).get_image_uri(image)
            except Exception:  # not an image of the datastore either
                image = None
        return image if isinstance(image, str) and os.path.isfile(image) else None

    def infer(self, request, datastore=None):
        """MONAI Label's inference, with a client error (4xx and what is wrong) instead of a server error for a
        request that names no served model, sends an image larger than ``--conf max_image_gib`` allows (413,
        refused from its header before anything is decoded) or one that cannot be read (422)."""
        image = self._image_file(request, datastore)
        if image is not None:
            from shared.errors import InputError
            from shared.inputs import MAX_IMAGE_GIB, check_image_size

            limit = float(self.conf.get("max_image_gib", MAX_IMAGE_GIB))
            try:
                check_image_size(image, limit, name=os.path.basename(image))
            except InputError as err:
                logger.warning(str(err))
                raise HTTPException(status_code=413, detail=f"/infer/{request.get('model')}: {err}") from err
        try:
            return super().infer(request, datastore)
        except MONAILabelException as err:
            if err.error != MONAILabelError.INVALID_INPUT:
                raise
            raise HTTPException(status_code=400, detail=err.msg) from err
        except Exception as err:
            problem = _unreadable(image, request.get("model")) if image else None
            if problem is None:
                raise  # not the input's fault: a server error
            logger.warning(problem)
            raise HTTPException(status_code=422, detail=problem) from err

    def init_infers(self):
        infers = {}
        for name, path in self.models.items():
            task = BundleInferTask(path, self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Inferer:: {name} => {task}")
                infers[name] = task
            else:
                logger.warning(f"bundle {name} is not served: no configs/inference.json or no weights in models/")
        return infers

    def init_trainers(self):
        trainers = {}
        if strtobool(self.conf.get("skip_trainers", "false")):
            return trainers
        for name, path in self.models.items():
            if "classification" in name.lower():
                continue  # MONAI Label's bundle training feeds image/label-map pairs: segmentation only
            task = FineTuneTask(path, self.conf)
            if task.is_valid():
                logger.info(f"+++ Adding Trainer:: {name} => {task}")
                trainers[name] = task
        return trainers

    def init_strategies(self):
        return {"random": Random(), "first": First()}
'''


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="app folder to write")
    parser.add_argument("bundles", nargs="*", help="bundle names (folders of bundles/) or bundle folders")
    parser.add_argument("--force", action="store_true", help="replace bundles already in <out>/model/")
    args = parser.parse_args(argv)
    try:
        specs = args.bundles or sorted(p.name for p in REPO_BUNDLES.iterdir() if (p / "configs").is_dir())
        names = write_app(Path(args.out), [resolve_bundle(s) for s in specs], force=args.force)
    except BundleCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"MONAI Label app written to {args.out} with models: {','.join(names)}")
    print(
        f"start it with: monailabel start_server --app {args.out} --studies <images dir> "
        f"--conf models {','.join(names)} --conf zoo_source local"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
