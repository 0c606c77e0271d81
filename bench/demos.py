# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Time the four bundles' demos as a new user runs them, and record their held-out scores.

Each demo is the command block of its model card (``DEMOS`` below; ``tests/bench/test_demos.py`` checks that every
line is in the card, verbatim), run with bash in a fresh copy of the repository: no demo data, no ``models/``, no
``eval/``, so the time includes writing the demo data. The score is the last line the evaluation prints. One demo
runs at a time; measure on an idle machine. Writes ``bench/results/demos.json``: every run of each demo, and the
spread (min, max) of their times and held-out numbers; a run adds to the runs the file holds (``--fresh`` forgets
those of the demos it runs).

    python bench/demos.py --repeat 2                       # all four, one after the other, twice
    python bench/demos.py --demos spine_seg --threads 2
    python bench/demos.py --demos glaucoma_oct_classification --append "--attention_block public --gradcam public"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from compare import load_average, machine, write_report  # noqa: E402

# the card that holds each demo's commands, and the commands, one bash line each
DEMOS: dict[str, dict] = {
    "spine_seg": {
        "card": "bundles/spine_seg/docs/README.md",
        "lines": [
            "B=bundles/spine_seg/configs",
            "python -m monai.bundle run training --config_file \"['$B/train.json','$B/demo.json']\"",
            "python -m monai.bundle run evaluating"
            " --config_file \"['$B/train.json','$B/evaluate.json','$B/demo.json']\"",
        ],
    },
    "glaucoma_oct_classification": {
        "card": "bundles/glaucoma_oct_classification/docs/README.md",
        "lines": [
            "B=bundles/glaucoma_oct_classification/configs",
            "python -m monai.bundle run training --config_file $B/train.json"
            ' --input_size "[32, 48, 28]" --max_epochs 15',
            "python -m monai.bundle run finetuning --config_file \"['$B/train.json','$B/finetune.json']\""
            ' --input_size "[32, 48, 28]" --max_epochs 5',
            "python -m monai.bundle run evaluating --config_file \"['$B/train.json','$B/evaluate.json']\""
            ' --input_size "[32, 48, 28]"',
        ],
    },
    "ad_multiomic_classification": {
        "card": "bundles/ad_multiomic_classification/docs/README.md",
        "lines": [
            "B=bundles/ad_multiomic_classification/configs",
            "for SET in diagnostic non_diagnostic; do",
            '  O="--image_size [64,64] --network_def#backbone resnet10 --image_weights random --batch_size 8'
            " --max_epochs 20 --clinical_set $SET",
            "     --ckpt_dir bundles/ad_multiomic_classification/models/$SET"
            ' --output_dir bundles/ad_multiomic_classification/eval/$SET"',
            "  python -m monai.bundle run training --config_file $B/train.json $O",
            "  python -m monai.bundle run evaluating --config_file \"['$B/train.json','$B/evaluate.json']\" $O",
            "done",
        ],
    },
    "brain_mri_classification": {
        "card": "bundles/brain_mri_classification/docs/README.md",
        "lines": [
            "B=bundles/brain_mri_classification/configs",
            "python -m monai.bundle run training --config_file $B/train.json --backbone_weights random",
            "python -m monai.bundle run evaluating --config_file \"['$B/train.json','$B/evaluate.json']\""
            " --backbone_weights random",
        ],
    },
}
MARK = "@@demo-step"


def script(lines: list[str]) -> str:
    """The block for bash, with a marker before every command so that each gets its own time."""
    body = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith("python "):
            body.append(f'{line[: len(line) - len(line.lstrip())]}echo "{MARK} $(date +%s.%N) {index}"')
        body.append(line)
    return "set -euo pipefail\n" + "\n".join(body) + f'\necho "{MARK} $(date +%s.%N) end"\n'


def _fresh_copy(dest: Path) -> Path:
    """The repository as a clone has it: the bundles without their data, models and outputs."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", "results"} & set(names)
        if Path(folder).parent.name == "bundles":
            skip |= {"data", "models", "eval", "logs"} & set(names)
        return skip

    shutil.copytree(REPO, dest, symlinks=True, ignore=ignore)
    return dest


def run_demo(name: str, threads: int, append: str = "") -> dict:
    """Run a demo's block in a fresh copy of the repository; ``append`` goes at the end of every bundle command (an
    ablation of the demo, e.g. ``--attention_block public``)."""
    demo = DEMOS[name]
    lines = [f"{line} {append}" if append and "python -m monai.bundle" in line else line for line in demo["lines"]]
    with tempfile.TemporaryDirectory(prefix=f"demo_{name}_") as tmp:
        root = _fresh_copy(Path(tmp) / "repo")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        # the cards' ``python`` is this interpreter (a virtual environment's, when the bench runs in one)
        env.update(OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        load_before = load_average()
        t0 = time.perf_counter()
        done = subprocess.run(
            ["bash", "-c", script(lines)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{name} demo failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
    block = lines
    steps: list[dict] = []
    for line in done.stdout.splitlines():
        if line.startswith(MARK + " "):
            stamp, _, what = line[len(MARK) + 1 :].partition(" ")
            if steps:
                steps[-1]["seconds"] = round(float(stamp) - steps[-1].pop("start"), 1)
            if what != "end":
                steps.append({"command": block[int(what)].strip(), "start": float(stamp)})
        elif line.strip() and steps:
            steps[-1]["last_line"] = line.strip()
    scores = [s["last_line"] for s in steps if "evaluating" in s["command"] and "last_line" in s]
    return {
        "card": demo["card"],
        "commands": "\n".join(lines),
        "seconds": round(seconds, 1),
        "steps": steps,
        "held_out": scores,
        # the scores as numbers (per class, overall), in the order the lines print them
        "held_out_numbers": [float(x) for line in scores for x in re.findall(r"(?<![\w.])\d+\.\d+", line)],
        "load_average": [load_before, load_average()],
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", nargs="+", choices=sorted(DEMOS), default=list(DEMOS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=None, help="results file (default: bench/results/demos.json)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each demo (their spread is the figure)")
    parser.add_argument("--append", default="", help="arguments added to every bundle command (an ablation)")
    parser.add_argument("--fresh", action="store_true", help="forget the runs the file holds of the demos run now")
    args = parser.parse_args()
    out = Path(args.out) if args.out else REPO / "bench" / "results" / "demos.json"
    results = json.loads(out.read_text(encoding="utf-8")).get("demos", {}) if out.is_file() else {}
    if args.fresh:
        for name in args.demos:
            results.pop(f"{name} {args.append}".strip(), None)
    for _ in range(args.repeat):
        for name in args.demos:
            key = f"{name} {args.append}".strip()
            print(f"{key}: running", flush=True)
            r = run_demo(name, args.threads, args.append)
            runs = results.setdefault(key, {"runs": []})["runs"]
            runs.append({**r, "machine": machine()["cpu"]})
            results[key].update(spread(runs))
            print(f"{key}: {r['seconds']:.0f} s, load {r['load_average']}; " + " | ".join(r["held_out"]), flush=True)
            # after each run: a long bench keeps what it measured
            write_report("demos", {"demos": results, "machine": machine()}, out)


def spread(runs: list[dict]) -> dict:
    """Min and max over the runs of the time and of every held-out number."""
    seconds = [r["seconds"] for r in runs]
    numbers = [r["held_out_numbers"] for r in runs if len(r["held_out_numbers"]) == len(runs[0]["held_out_numbers"])]
    return {
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "held_out_min": [min(v) for v in zip(*numbers)],
        "held_out_max": [max(v) for v in zip(*numbers)],
    }


if __name__ == "__main__":
    main()
