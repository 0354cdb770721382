"""Evaluate every checkpoint of some runs: the learning curve on evaluation episodes.

Each checkpoint of each run folder (``checkpoints/model_<steps>_steps.zip``) is evaluated with
``qrl evaluate``'s own code on the same evaluation episodes as the final model (deterministic
actions, seed + 10000). Results are cached in ``<run>/checkpoint_evals.json``.

    python scripts/checkpoints.py runs/memory/CartPoleNoVel-v1-qfwp/seed* --episodes 100

Prints one row per run: the return at each checkpoint and the first checkpoint whose mean
return reaches the task's "solved" threshold. The first checkpoint over a threshold is an
optimistic statistic (a maximum over noisy evaluations); the final model's return is the
plain one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qrl.agents import load_model
from qrl.evaluation.models import evaluate_model
from qrl.runs import open_run


def evaluate_checkpoints(path: Path, episodes: int) -> dict[int, float]:
    """Mean return of every checkpoint of a run, by step count (cached in the run folder)."""
    run = open_run(path)
    cache = path / "checkpoint_evals.json"
    done: dict[str, Any] = json.loads(cache.read_text()) if cache.is_file() else {}
    out: dict[int, float] = {}
    found = [(int(p.stem.split("_")[1]), p) for p in run.checkpoint_dir.glob("model_*_steps.zip")]
    for steps, checkpoint in sorted(found):
        key = f"{steps}:{episodes}"
        if key not in done:
            model = load_model(checkpoint, run.config.algorithm)
            done[key] = evaluate_model(model, run.config, episodes=episodes)["mean_return"]
            cache.write_text(json.dumps(done, indent=2) + "\n")
        out[steps] = float(done[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    print("| run | return at each checkpoint (k steps: return) | first >= solved |")
    print("|---|---|---:|")
    for path in args.runs:
        curve = evaluate_checkpoints(path, args.episodes)
        solved = open_run(path).config.solved
        first = next((s for s, r in curve.items() if solved is not None and r >= solved), None)
        # The last periodic checkpoint and the final model can fall in the same thousand
        # steps (rollouts overshoot the budget); the later one is listed.
        labels = {f"{s // 1000}k": r for s, r in curve.items()}
        points = ", ".join(f"{label}: {r:.0f}" for label, r in labels.items())
        print(f"| {path} | {points} | {'-' if first is None else f'{first // 1000}k'} |")


if __name__ == "__main__":
    main()
