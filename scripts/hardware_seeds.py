"""Device noise across independently trained policies: one row per training seed.

    qrl compare --agents unentangled --env CartPole-v1 --seeds 10 --out runs/cartpole
    python scripts/hardware_seeds.py runs/cartpole/CartPole-v1/unentangled/seed* \
        --backend fake_manila --shots 1024 --episodes 5 --out docs/hardware

Evaluates every run with ``qrl.evaluate_executors`` (exact simulation, ideal shots and the
fake device's noise, on the same episodes) and writes ``<out>/seeds.md`` and
``<out>/seeds.json``: per seed the three mean returns and the share of steps on which the
sampled and the noisy policy take the exact policy's action, then the median and range
over seeds. Evaluations are kept in each run folder, so a stopped sweep resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from qrl.evaluation.comparison import evaluate_executors


def evaluate_seed(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The three rows of one run."""
    options = {"backend": args.backend, "shots": args.shots, "seed": 1}
    report = evaluate_executors(run, "qiskit.aer", options, args.episodes)
    by_label = {v["label"]: v for v in report["variants"]}
    return {
        "run": str(run),
        "exact": by_label["exact"]["mean_return"],
        "shots": by_label["shots"]["mean_return"],
        "device": by_label["device"]["mean_return"],
        "shots_same_action": by_label["shots"]["action_agreement"],
        "device_same_action": by_label["device"]["action_agreement"],
        "device_circuits": by_label["device"]["cost"]["circuits"],
        "device_shots": by_label["device"]["cost"]["shots"],
    }


def _spread(values: list[float], percent: bool = False) -> str:
    scale, unit = (100.0, "%") if percent else (1.0, "")
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{scale * med:.1f}{unit} [{scale * low:.1f}, {scale * high:.1f}]"


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The per-seed table and its median [min, max] row."""
    lines = [
        f"{len(rows)} policies, {args.episodes} episodes each (the same seeds for the three "
        f"columns); device: qiskit.aer {args.backend}, {args.shots} shots.",
        "",
        "| run | exact | shots | device | same action (shots) | same action (device) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {Path(r['run']).name} | {r['exact']:.1f} | {r['shots']:.1f} | {r['device']:.1f} "
            f"| {100 * r['shots_same_action']:.1f}% | {100 * r['device_same_action']:.1f}% |"
        )
    cols = ("exact", "shots", "device")
    lines.append(
        "| median [min, max] | "
        + " | ".join(_spread([r[c] for r in rows]) for c in cols)
        + f" | {_spread([r['shots_same_action'] for r in rows], True)}"
        + f" | {_spread([r['device_same_action'] for r in rows], True)} |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained run folders")
    parser.add_argument("--backend", default="fake_manila")
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/hardware"))
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        rows.append(evaluate_seed(run, args))
        print(f"{run}: {rows[-1]['device']:.1f}", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"command": shlex.join(["python", *sys.argv]), "rows": rows}
    (args.out / "seeds.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "seeds.md").write_text(markdown(rows, args))
    print(markdown(rows, args))


if __name__ == "__main__":
    main()
