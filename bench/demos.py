"""Time the four bundles' demos as a new user runs them, and record their held-out scores.

Each demo is the command block of its model card (``DEMOS`` below; ``tests/bench/test_demos.py`` checks that every
line is in the card, verbatim), run with bash in a fresh copy of the repository: no demo data, no ``models/``, no
``eval/``, so the time includes writing the demo data. The score is the last line the evaluation prints. One demo
runs at a time; measure on an idle machine. Writes ``bench/results/demos.json``.

    python bench/demos.py                                  # all four, one after the other
    python bench/demos.py --demos spine_seg --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
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


def run_demo(name: str, threads: int) -> dict:
    demo = DEMOS[name]
    with tempfile.TemporaryDirectory(prefix=f"demo_{name}_") as tmp:
        root = _fresh_copy(Path(tmp) / "repo")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        # the cards' ``python`` is this interpreter (a virtual environment's, when the bench runs in one)
        env.update(OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        load_before = load_average()
        t0 = time.perf_counter()
        done = subprocess.run(
            ["bash", "-c", script(demo["lines"])],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{name} demo failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
    block = demo["lines"]
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
        "commands": "\n".join(demo["lines"]),
        "seconds": round(seconds, 1),
        "steps": steps,
        "held_out": scores,
        "load_average": [load_before, load_average()],
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", nargs="+", choices=sorted(DEMOS), default=list(DEMOS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=None, help="results file (default: bench/results/demos.json)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else REPO / "bench" / "results" / "demos.json"
    results = json.loads(out.read_text()).get("demos", {}) if out.is_file() else {}
    for name in args.demos:
        print(f"{name}: running", flush=True)
        r = results[name] = run_demo(name, args.threads)
        print(f"{name}: {r['seconds']:.0f} s, load {r['load_average']}; " + " | ".join(r["held_out"]), flush=True)
        write_report("demos", {"demos": results, "machine": machine()}, out)  # after each: a long run keeps its part


if __name__ == "__main__":
    main()
