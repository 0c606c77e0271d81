# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Derive the third-party packages a bundle's runs import, and pin them, installable, in its metadata.

    python -m shared.bundle.requirements [bundles/<name> ...]            # rewrite the fields in place
    python -m shared.bundle.requirements --check [bundles/<name> ...]    # compare only; exit 1 on a difference
    python -m shared.bundle.requirements --offline [bundles/<name> ...]  # names and ranges only, no package index

What a bundle needs is read from its own files: the modules its configs name (``$import`` statements and
``_target_`` components), every first-party module (``shared``, ``scripts``) those reach, followed through each
module's imports wherever they are (functions included; ``if TYPE_CHECKING:`` blocks excluded), and the optional
backends that MONAI and Ignite components import for themselves at run time (:data:`BACKENDS`, :data:`IMAGE_IO`,
:data:`RUNNER`). Modules map to distributions through ``importlib.metadata`` (so the tool runs in an environment where
the bundles run); each distribution must be listed in ``requirements.txt``.

Versions: for each distribution, the release installed here (the one the tests ran with) when it satisfies its
``requirements.txt`` range and has a wheel for the oldest Python the README promises (3.10, which the model zoo's CI
runs), else the newest release in range with such a wheel; the newer promised Pythons that
release has no wheel for are reported (e.g. no numpy or scipy release has wheels for both 3.10 and 3.14). torch, monai
and numpy go in ``pytorch_version`` / ``monai_version`` / ``numpy_version``, the rest in ``required_packages_version``.
The index (PyPI) is asked with pip's own finder, ``pip install --dry-run --no-deps --only-binary=:all:
--python-version X``: the same choice as ``pip download`` but reading only the wheel's metadata (a torch wheel is
about 900 MB), with this machine's pip configuration ignored (find-links, mirrors and constraints would answer for
this machine, not for the zoo's CI). Last, all the pins resolve together, dependencies included, on the oldest Python.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = [
    "first_party_modules",
    "BACKENDS",
    "IMAGE_IO",
    "RUNNER",
    "PYTHONS",
    "OWN_FIELDS",
    "Pin",
    "PipIndex",
    "imported_modules",
    "read_requirements",
    "required_distributions",
    "dependency_closure",
    "pick_versions",
    "derive_fields",
    "offline_problems",
    "write_metadata",
    "main",
]

REPO = Path(__file__).resolve().parents[2]
# the README's promise, Python >= 3.10, up to the newest CPython release; the first is the zoo CI's
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
# distributions with a metadata field of their own; every other one goes into required_packages_version
OWN_FIELDS = {"monai": "monai_version", "torch": "pytorch_version", "numpy": "numpy_version"}

# Optional backends (import names) that MONAI and Ignite components import for themselves at run time, by
# component: "<top-level package>.<Name>", however a config or a module spells the path to it.
BACKENDS: dict[str, tuple[str, ...]] = {
    "monai.TensorBoardStatsHandler": ("tensorboard",),
    "monai.TensorBoardImageHandler": ("tensorboard",),
    "ignite.ProgressBar": ("tqdm",),
    "monai.SwinUNETR": ("einops",),  # rearrange() in its feature normalisation
    "monai.SABlock": ("einops",),  # Rearrange layers in the attention blocks
    "monai.CrossAttentionBlock": ("einops",),
    "monai.TransformerBlock": ("einops",),
}
# Image readers and writers: the backend of the class a ``reader`` / ``writer`` argument names; without one, the
# backend MONAI picks for NIfTI, the format every bundle documents.
IMAGE_IO: dict[str, str] = {
    "monai.LoadImage": "reader",
    "monai.LoadImaged": "reader",
    "monai.SaveImage": "writer",
    "monai.SaveImaged": "writer",
}
IO_BACKENDS: dict[str, str | None] = {
    "nibabelreader": "nibabel",
    "nibabelwriter": "nibabel",
    "itkreader": "itk",
    "itkwriter": "itk",
    "pydicomreader": "pydicom",
    "nrrdreader": "nrrd",
    "pilreader": "PIL",
    "pilwriter": "PIL",
    "numpyreader": None,
}
DEFAULT_IO = "nibabel"
# every bundle runs through MONAI's runner, `python -m monai.bundle run`, whose command line is python-fire
RUNNER = ("fire",)

_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_IO_CLASS = re.compile(r"[a-z]+(?:reader|writer)")


# ---------------------------------------------------------------------------------------------------- what is imported
def _config_files(bundle: Path) -> list[Path]:
    return sorted(
        p
        for p in (bundle / "configs").iterdir()
        if p.suffix in (".json", ".yaml", ".yml") and p.name != "metadata.json"
    )


def _load_config(path: Path):
    """A JSON or YAML config, read as MONAI's parser reads it."""
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _first_party(bundle: Path) -> set[str]:
    """Top-level modules a bundle carries itself (``shared``, ``scripts``, ...)."""
    return {
        p.stem if p.suffix == ".py" else p.name
        for p in bundle.iterdir()
        if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file()
    }


@dataclass
class _Scan:
    """Collects the third-party modules a bundle imports, with where each comes from."""

    bundle: Path
    first_party: set[str]
    found: dict[str, set[str]] = field(default_factory=dict)  # top-level import name -> where
    _seen: set[str] = field(default_factory=set)
    _queue: list[str] = field(default_factory=list)

    def note(self, module: str, where: str) -> None:
        self.found.setdefault(module.split(".")[0], set()).add(where)

    def component(self, top: str, name: str, where: str, args: Mapping | None = None) -> None:
        """A third-party component: its package, plus the backends it imports for itself."""
        key = f"{top}.{name}"
        self.note(top, where)
        for backend in BACKENDS.get(key, ()):
            self.note(backend, f"{where} ({name})")
        if key in IMAGE_IO:
            spec = (args or {}).get(IMAGE_IO[key])
            classes = _IO_CLASS.findall(json.dumps(spec).lower()) if spec is not None else []
            backends = [IO_BACKENDS.get(c) for c in classes if c in IO_BACKENDS] if classes else [DEFAULT_IO]
            for backend in filter(None, backends):
                self.note(backend, f"{where} ({name})")

    # first-party modules ------------------------------------------------------------------------------------------
    def _file(self, module: str) -> Path | None:
        base = self.bundle.joinpath(*module.split("."))
        for f in (base / "__init__.py", base.with_suffix(".py")):
            if f.is_file():
                return f
        return None

    def reach(self, dotted: str, where: str) -> None:
        """Queue the first-party modules that importing ``dotted`` (a module, or an attribute path inside one, like
        ``shared.handlers.progress.ProgressBar`` or ``shared.multiomic.preprocessing.FeaturePreprocessor.load``)
        executes."""
        parts = dotted.split(".")
        module = parts[0]
        self._queue.append(module)
        for part in parts[1:]:
            if self._file(f"{module}.{part}") is not None:
                module = f"{module}.{part}"
            else:
                break  # an attribute of ``module``
            self._queue.append(module)

    def imports(self, module: str | None, names: Sequence[str], where: str) -> None:
        """``import module`` (``names`` empty) or ``from module import names``, absolute."""
        if not module:
            return
        top = module.split(".")[0]
        if top in self.first_party:
            self.reach(module, where)
            for name in names:
                self.reach(f"{module}.{name}", where)
        elif top not in sys.stdlib_module_names:
            self.note(top, where)
            for name in names:
                self.component(top, name, where)

    def scan_modules(self) -> None:
        while self._queue:
            module = self._queue.pop()
            if module in self._seen:
                continue
            self._seen.add(module)
            f = self._file(module)
            where = f.relative_to(self.bundle).as_posix()
            package = module if f.name == "__init__.py" else module.rpartition(".")[0]
            for node in _runtime_imports(ast.parse(f.read_text(encoding="utf-8"), str(f))):
                if isinstance(node, str):
                    self.imports(node, (), where)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        self.imports(alias.name, (), where)
                else:
                    base = node.module
                    if node.level:
                        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(anchor + ([node.module] if node.module else []))
                    self.imports(base, [a.name for a in node.names if a.name != "*"], where)

    # configs --------------------------------------------------------------------------------------------------------
    def scan_config(self, node, where: str) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str) and _TARGET.fullmatch(target):
                top = target.split(".")[0]
                if "." not in target:  # a short name: MONAI's component locator finds it in monai
                    self.component("monai", target, where, node)
                elif top in self.first_party:
                    self.reach(target, where)
                elif top not in sys.stdlib_module_names:
                    self.component(top, target.rsplit(".", 1)[1], where, node)
            for value in node.values():
                self.scan_config(value, where)
        elif isinstance(node, list):
            for value in node:
                self.scan_config(value, where)
        elif isinstance(node, str) and node.startswith("$") and "import" in node:
            try:  # MONAI runs a "$" string that is an import statement as one
                statements = ast.parse(node[1:]).body
            except SyntaxError:
                return
            for stmt in statements:
                if isinstance(stmt, ast.Import):
                    for alias in stmt.names:
                        self.imports(alias.name, (), where)
                elif isinstance(stmt, ast.ImportFrom) and not stmt.level:
                    self.imports(stmt.module, [a.name for a in stmt.names], where)


# calls that import a module, or use its files, named by their first argument
_DYNAMIC_IMPORTS = ("import_module", "find_spec", "optional_import", "__import__", "resources.files")


def _runtime_imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom | str]:
    """Every import statement a module can run, anywhere in it (``if TYPE_CHECKING:`` blocks excepted), and the
    module named by a string literal in a dynamic import (``importlib.import_module("x")``,
    ``importlib.util.find_spec("x")``, ``importlib.resources.files("x.data")``, MONAI's ``optional_import("x")``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
        else:
            if isinstance(node, ast.Call) and node.args and ast.unparse(node.func).endswith(_DYNAMIC_IMPORTS):
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str) and _TARGET.fullmatch(first.value):
                    yield first.value
            stack.extend(ast.iter_child_nodes(node))


def _scan(bundle: Path) -> _Scan:
    scan = _Scan(bundle, _first_party(bundle))
    for f in _config_files(bundle):
        scan.scan_config(_load_config(f), f.relative_to(bundle).as_posix())
    scan.scan_modules()
    return scan


def imported_modules(bundle: str | os.PathLike) -> dict[str, set[str]]:
    """Third-party top-level modules a bundle's runs import -> where each comes from (paths relative to the bundle).

    Includes monai, torch and numpy, the backends its components need and the runner's command-line library."""
    scan = _scan(Path(bundle))
    for module in RUNNER:
        scan.note(module, "python -m monai.bundle (the runner)")
    return scan.found


def first_party_modules(bundle: str | os.PathLike) -> set[str]:
    """The bundle's own modules (``shared.spine.datalist``, ...) that its configs reach, directly or through imports:
    what a release of the bundle must carry."""
    return set(_scan(Path(bundle))._seen)


# ---------------------------------------------------------------------------------------------------- distributions
def read_requirements(path: str | os.PathLike) -> dict:
    """``requirements.txt`` as {canonical name: packaging Requirement}; ``-r`` includes are followed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    path = Path(path)
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            out.update(read_requirements(path.parent / line.split(None, 1)[1]))
        elif line and not line.startswith("-"):
            req = Requirement(line)
            out[canonicalize_name(req.name)] = req
    return out


@lru_cache(maxsize=None)
def _providers() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


@lru_cache(maxsize=None)
def _requires(name: str) -> tuple[str, ...]:
    """Canonical names of what an installed distribution depends on (its extras not included)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return ()
    deps = []
    for line in requires:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            deps.append(canonicalize_name(req.name))
    return tuple(deps)


def dependency_closure(names: Iterable[str]) -> set[str]:
    """Canonical names of ``names`` and everything they depend on, transitively, as installed here."""
    from packaging.utils import canonicalize_name

    todo, seen = [canonicalize_name(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_requires(name))
    return seen


def required_distributions(modules: Mapping[str, Iterable[str]], requirements: Mapping) -> dict[str, set[str]]:
    """Map import names to the distributions that provide them, spelled as ``requirements.txt`` spells them
    -> where each is needed. A module that is not installed here, or whose distribution ``requirements.txt`` does
    not list, is an error naming the module and where it is imported."""
    from packaging.utils import canonicalize_name

    providers = _providers()
    out: dict[str, set[str]] = {}
    for module, where in sorted(modules.items()):
        where = sorted(where)
        candidates = sorted({canonicalize_name(d) for d in providers.get(module, ())})
        if not candidates:
            raise LookupError(f"module '{module}' (imported by {', '.join(where)}) is not installed here.")
        if len(candidates) == 1 and candidates[0] in requirements:
            listed = candidates
        else:  # a package split over distributions (itk): the listed one that is, or pulls in, all of them
            listed = [r for r in requirements if set(candidates) <= dependency_closure([r]) or r in candidates]
            listed = [r for r in listed if r in candidates] or listed
        if len(listed) != 1:
            raise LookupError(
                f"module '{module}' (imported by {', '.join(where)}) comes from {', '.join(candidates)}, which "
                f"requirements.txt {'does not list' if not listed else 'lists ambiguously: ' + ', '.join(listed)}."
            )
        out.setdefault(requirements[listed[0]].name, set()).update(where)
    return out


# ---------------------------------------------------------------------------------------------------- versions
@dataclass(frozen=True)
class Pin:
    """The version chosen for a distribution, and the promised Pythons it has no wheel for."""

    version: str
    no_wheel: tuple[str, ...] = ()


class PipIndex:
    """Asks pip which releases it would install from ``index_url`` for a given Python, downloading no wheel."""

    def __init__(self, index_url: str = "https://pypi.org/simple", pip: Sequence[str] = (sys.executable, "-m", "pip")):
        self.index_url, self.pip = index_url, list(pip)

    def _env(self) -> dict:
        # only the transport settings of this machine's pip: no config file, mirrors, find-links or constraints
        keep = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_TRUSTED_HOST"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in keep}
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
        return env

    def _dry_run(self, requirements: Sequence[str], python: str, deps: bool) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [*self.pip, "install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--quiet"]
            cmd += ["--python-version", python, "--target", tmp, "--index-url", self.index_url, "--report", "-"]
            cmd += [] if deps else ["--no-deps"]
            return subprocess.run(cmd + list(requirements), capture_output=True, text=True, env=self._env())

    def newest(self, requirements: Sequence[str], python: str) -> dict[str, str | None]:
        """The version pip picks for each requirement (``scipy>=1.10``, ``numpy==2.2.6``) on ``python`` from wheels
        alone, ``None`` where no release has one. One pip run for all; split up only when one of them fails."""
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        if not requirements:
            return {}
        done = self._dry_run(requirements, python, deps=False)
        if done.returncode == 0:
            picked = {
                canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                for i in json.loads(done.stdout)["install"]
            }
            return {r: picked[canonicalize_name(Requirement(r).name)] for r in requirements}
        if "No matching distribution" not in done.stderr and "Could not find a version" not in done.stderr:
            raise RuntimeError(f"pip could not query {self.index_url}: {done.stderr.strip()[-2000:]}")
        if len(requirements) == 1:
            return {requirements[0]: None}
        half = len(requirements) // 2
        return {**self.newest(requirements[:half], python), **self.newest(requirements[half:], python)}

    def resolve(self, pins: Sequence[str], python: str) -> str:
        """``""`` when ``pins`` install together, dependencies included, on ``python``; else pip's complaint."""
        done = self._dry_run(pins, python, deps=True)
        return "" if done.returncode == 0 else done.stderr.strip()[-2000:] or f"pip exited {done.returncode}"


def pick_versions(
    specifiers: Mapping[str, str], pythons: Sequence[str], index, tested: Mapping[str, str] | None = None
) -> dict[str, Pin]:
    """For each distribution (name -> specifier): its ``tested`` release when that is in range and has a wheel for
    ``pythons[0]``, else the newest release in range with one; and the other ``pythons`` the pin has no wheel for.
    ``index`` answers ``newest(requirements, python)``."""
    from packaging.specifiers import SpecifierSet

    tested = {n: v for n, v in (tested or {}).items() if n in specifiers and v in SpecifierSet(specifiers[n])}
    wanted = {n: f"=={tested[n]}" if n in tested else s for n, s in specifiers.items()}
    first = index.newest([f"{n}{s}" for n, s in wanted.items()], pythons[0])
    untested = {n: specifiers[n] for n, s in wanted.items() if n in tested and first[f"{n}{s}"] is None}
    if untested:  # the tested release has no wheel for the oldest Python: the newest one that has
        newest = index.newest([f"{n}{s}" for n, s in untested.items()], pythons[0])
        first.update({f"{n}{wanted[n]}": newest[f"{n}{s}"] for n, s in untested.items()})
    versions = {n: first[f"{n}{s}"] for n, s in wanted.items()}
    lacking = sorted(f"{n}{specifiers[n]}" for n, v in versions.items() if v is None)
    if lacking:
        raise LookupError(f"no release of {', '.join(lacking)} has a wheel for Python {pythons[0]}.")
    pins = [f"{n}=={v}" for n, v in versions.items()]
    with ThreadPoolExecutor(max_workers=4) as pool:  # the queries wait on the network
        found = dict(zip(pythons[1:], pool.map(lambda p: index.newest(pins, p), pythons[1:])))
    return {
        n: Pin(v, tuple(p for p in pythons[1:] if found[p][f"{n}=={v}"] is None)) for n, v in sorted(versions.items())
    }


# ---------------------------------------------------------------------------------------------------- metadata
def _fields(distributions: Iterable[str], pins: Mapping[str, Pin]) -> dict:
    """The four metadata fields for a bundle needing ``distributions``; torch, monai and numpy always."""
    from packaging.utils import canonicalize_name

    own = {canonicalize_name(n): f for n, f in OWN_FIELDS.items()}
    versions = {canonicalize_name(n): p.version for n, p in pins.items()}
    out = {f: versions[n] for n, f in own.items()}
    packages = sorted((n for n in distributions if canonicalize_name(n) not in own), key=str.lower)
    out["required_packages_version"] = {n: versions[canonicalize_name(n)] for n in packages}
    return out


def _installed(names: Iterable[str]) -> dict[str, str]:
    """name -> the version installed here, without a local label (``2.13.0+cpu`` -> ``2.13.0``)."""
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n).split("+")[0]
        except metadata.PackageNotFoundError:
            pass
    return out


def derive_fields(
    bundles: Sequence[str | os.PathLike], requirements: Mapping, pythons: Sequence[str] = PYTHONS, index=None
) -> tuple[dict[Path, dict], dict[str, Pin], dict[Path, dict[str, set[str]]]]:
    """For each bundle: the metadata fields it should have; the pins chosen; the distributions and their reasons."""
    from packaging.utils import canonicalize_name

    index = index or PipIndex()
    needs = {Path(b): required_distributions(imported_modules(b), requirements) for b in bundles}
    names = {n for d in needs.values() for n in d} | {requirements[n].name for n in OWN_FIELDS}
    pins = pick_versions(
        {n: str(requirements[canonicalize_name(n)].specifier) for n in sorted(names)}, pythons, index, _installed(names)
    )
    return {b: _fields(d, pins) for b, d in needs.items()}, pins, needs


def offline_problems(meta: Mapping, distributions: Iterable[str], requirements: Mapping) -> list[str]:
    """What is wrong with a bundle's metadata that needs no package index to see: the packages it declares
    against those it needs, and each pin against its ``requirements.txt`` range."""
    from packaging.utils import canonicalize_name

    own = {canonicalize_name(n) for n in OWN_FIELDS}
    needed = {canonicalize_name(n) for n in distributions} - own
    declared = {canonicalize_name(n): v for n, v in (meta.get("required_packages_version") or {}).items()}
    problems = [f"required_packages_version lacks {n}" for n in sorted(needed - set(declared))]
    problems += [
        f"required_packages_version declares {n}, which its runs do not import" for n in sorted(set(declared) - needed)
    ]
    pinned = {**declared, **{canonicalize_name(n): meta.get(f) for n, f in OWN_FIELDS.items()}}
    for name, version in sorted(pinned.items()):
        req = requirements.get(name)
        if req is not None and (not isinstance(version, str) or not req.specifier.contains(version, prereleases=True)):
            problems.append(f"{name} {version!r} is outside requirements.txt's {req}")
    return problems


def _dump_like(data: dict, original: str) -> str:
    """``data`` as JSON in the style ``original`` was written in (indent, escaping, final newline)."""
    parsed = json.loads(original)
    for indent in (4, 2):
        for ascii_only in (False, True):
            text = json.dumps(parsed, indent=indent, ensure_ascii=ascii_only)
            if original.rstrip("\n") == text:
                return json.dumps(data, indent=indent, ensure_ascii=ascii_only) + original[len(text) :]
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def write_metadata(path: str | os.PathLike, fields: Mapping) -> bool:
    """Update ``fields`` of a metadata file in place (order and formatting kept, written atomically); ``True`` if
    the file changed."""
    path = Path(path)
    original = path.read_text(encoding="utf-8")
    meta = json.loads(original)
    meta.update(fields)
    text = _dump_like(meta, original)
    if text == original:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def _diff(meta: Mapping, fields: Mapping) -> list[str]:
    out = []
    for key, want in fields.items():
        have = meta.get(key)
        if isinstance(want, dict):
            have = have if isinstance(have, dict) else {}
            for name in sorted(set(want) | set(have), key=str.lower):
                if have.get(name) != want.get(name):
                    out.append(f"{key}.{name}: {have.get(name)} -> {want.get(name)}")
        elif have != want:
            out.append(f"{key}: {have} -> {want}")
    return out


def main(argv: Sequence[str] | None = None, index=None, out: Callable[[str], None] = print) -> int:
    """The command line; ``index`` replaces the :class:`PipIndex` (tests). Returns the exit status: 0 done or up to
    date, 1 ``--check`` / ``--offline`` found differences, 2 an error (printed, naming the module or package)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="*", help="bundle folders (default: every bundle in the repository)")
    parser.add_argument("--check", action="store_true", help="compare with the metadata, write nothing")
    parser.add_argument("--offline", action="store_true", help="check names and ranges only, asking no index")
    parser.add_argument("--requirements", default=str(REPO / "requirements.txt"), help="the allowed version ranges")
    parser.add_argument("--python", action="append", help=f"promised Python versions, oldest first {PYTHONS}")
    parser.add_argument("--index-url", default="https://pypi.org/simple", help="the package index to ask")
    args = parser.parse_args(argv)
    bundles = [Path(b) for b in args.bundles] or sorted(
        p for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file()
    )
    pythons = tuple(args.python or PYTHONS)
    try:
        requirements = read_requirements(args.requirements)
        metas = {b: json.loads((b / "configs" / "metadata.json").read_text(encoding="utf-8")) for b in bundles}
        if args.offline:
            status = 0
            for b in bundles:
                needed = required_distributions(imported_modules(b), requirements)
                problems = offline_problems(metas[b], needed, requirements)
                out(f"{b.name}: " + ("; ".join(problems) if problems else "names and ranges agree"))
                status = 1 if problems else status
            return status
        index = index or PipIndex(args.index_url)
        fields, pins, _ = derive_fields(bundles, requirements, pythons, index)
    except (LookupError, OSError, RuntimeError, ValueError) as err:
        out(f"error: {err}")
        return 2
    for name, pin in sorted(pins.items()):
        if pin.no_wheel:
            out(
                f"note: {name} {pin.version}, the newest in range with a wheel for Python {pythons[0]}, has none for "
                f"Python {', '.join(pin.no_wheel)}"
            )
    complaint = index.resolve(sorted(f"{n}=={p.version}" for n, p in pins.items()), pythons[0])
    if complaint:
        out(f"error: the pins do not install together on Python {pythons[0]}:\n{complaint}")
        return 2
    status = 0
    for b in bundles:
        diff = _diff(metas[b], fields[b])
        if args.check:
            out(f"{b.name}: " + ("; ".join(diff) if diff else "up to date"))
            status = 1 if diff else status
        else:
            write_metadata(b / "configs" / "metadata.json", fields[b])
            out(f"{b.name}: " + (f"updated ({'; '.join(diff)})" if diff else "up to date"))
    return status


if __name__ == "__main__":
    sys.exit(main())
