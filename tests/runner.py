# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""``python -m monai.bundle ...`` as a user runs it, without paying a fresh interpreter's imports for every case.

Bad-input tests need many short runs of the real command line: each must end with a non-zero exit code and a last
line that names the problem. Starting a new interpreter costs several seconds of imports (torch, MONAI) per run.
:func:`run_bundle` forks each run from a server process that has those imports done (``multiprocessing``'s
forkserver with preloaded modules); the child then does exactly what ``python -m monai.bundle`` does (MONAI's Fire
entry point under ``__main__``), and an uncaught exception goes through ``sys.excepthook`` and exits with status 1,
as the interpreter's top level does. Output goes to files, so the child's stdout and stderr are the real ones.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BundleRun", "run_bundle"]

_PRELOAD = ["torch", "ignite", "monai", "monai.bundle", "monai.transforms", "monai.handlers", "monai.networks.nets"]
_context = None


@dataclass
class BundleRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        """The last non-empty line the run printed (stderr is written last by an error)."""
        lines = [ln for ln in (self.stdout + "\n" + self.stderr).splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _child(argv: list[str], cwd: str, env: dict, out: str, err: str) -> None:
    fd_out, fd_err = os.open(out, os.O_WRONLY | os.O_CREAT), os.open(err, os.O_WRONLY | os.O_CREAT)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["monai.bundle", *argv]
    sys.path[0:0] = [cwd]  # python -m puts the working folder first
    code = 0
    try:
        runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_bundle(argv: list[str], cwd: str | os.PathLike, env: dict | None = None, timeout: float = 600) -> BundleRun:
    """Run ``python -m monai.bundle <argv>`` in ``cwd``; return its exit code, stdout and stderr."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        proc = _context.Process(target=_child, args=(list(argv), str(cwd), env, out, err))
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()
            raise TimeoutError(f"monai.bundle {' '.join(argv)} did not finish within {timeout} s")
        return BundleRun(proc.exitcode, Path(out).read_text(), Path(err).read_text())
