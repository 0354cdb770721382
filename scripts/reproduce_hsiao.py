"""Reproduce the comparison of Hsiao et al. (2022): unentangled quantum agent against an MLP.

Runs ``qrl compare`` (the public command) for each task, same algorithm and hyperparameters
for both agents, then checks the paper's three claims against the confidence intervals:

1. faster convergence than the MLP (CartPole-v1, Acrobot-v1): steps to the solved threshold
   and the mean return over training, with the probability that a quantum run learns faster
   than a classical one;
2. at least 10x fewer trainable parameters for comparable performance;
3. LunarLander-v3 completed (mean return >= 200 over 100 episodes).

    python scripts/reproduce_hsiao.py --out runs/hsiao --tasks cartpole acrobot lunarlander

Each task's grid folder holds its summary.md and plots; the verdicts go to
``<out>/verdicts.md``. CartPole's grid also has the entangled agent. Finished runs are
reused, so the script resumes a stopped reproduction and re-plots a finished one.
"""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import subprocess
import sys
from pathlib import Path

QUANTUM, CLASSICAL = "unentangled", "mlp"
TASKS = {  # task: (env preset, agents, seeds)
    "cartpole": ("CartPole-v1", (QUANTUM, "entangled", CLASSICAL), 10),
    "acrobot": ("Acrobot-v1", (QUANTUM, CLASSICAL), 10),
    "lunarlander": ("LunarLander-v3", (QUANTUM, CLASSICAL), 5),
}


def run_grid(task: str, out: Path, workers: int) -> Path:
    """``qrl compare`` for one task; returns its folder."""
    env, agents, seeds = TASKS[task]
    folder = out / task
    cmd = ["qrl", "compare", "--agents", *agents, "--env", env]
    cmd += ["--seeds", str(seeds), "--workers", str(workers), "--out", str(folder)]
    print(f"$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _float(value: str) -> float:
    return math.nan if value == "" else float(value)


def _improvement(folder: Path, measure: str) -> str:
    """P(quantum run > classical run) on a measure, from the grid's improvement.csv."""
    for row in _rows(folder / "improvement.csv"):
        if (row["measure"], row["agent"], row["other"]) == (measure, QUANTUM, CLASSICAL):
            p, low, high = (float(row[k]) for k in ("probability", "low", "high"))
            return f"{p:.2f} [{low:.2f}, {high:.2f}]"
    return "-"


def _k(steps: float) -> str:
    return "never" if math.isinf(steps) else f"{steps / 1000:.0f}k"


def verdicts(task: str, folder: Path) -> str:
    """The paper's claims for one task, against its grid's statistics."""
    rows = {r["agent"]: r for r in _rows(folder / "summary.csv")}
    q, c = rows[QUANTUM], rows[CLASSICAL]

    def ci(row: dict[str, str], name: str) -> str:
        value, low, high = (_float(row[f"{name}{s}"]) for s in ("", "_low", "_high"))
        return f"{value:.1f} [{low:.1f}, {high:.1f}]"

    def steps(row: dict[str, str]) -> str:
        value, low, high = (
            _float(row[f"steps_to_threshold_{s}"]) for s in ("median", "low", "high")
        )
        reached = f"{row['runs_reaching_threshold']}/{row['runs']}"
        return f"{_k(value)} [{_k(low)}, {_k(high)}] ({reached})"

    ratio = int(c["parameters_total"]) / int(q["parameters_total"])
    lines = [
        f"## {TASKS[task][0]} ({q['runs']} and {c['runs']} seeds)",
        "",
        "| | unentangled | mlp |",
        "|---|---:|---:|",
        f"| trainable parameters (quantum) | {q['parameters_total']} ({q['parameters_quantum']}) "
        f"| {c['parameters_total']} |",
        f"| final return, IQM [95% CI] | {ci(q, 'final_iqm')} | {ci(c, 'final_iqm')} |",
        f"| solved runs (final evaluation) | {q['solved_runs']}/{q['runs']} "
        f"| {c['solved_runs']}/{c['runs']} |",
        f"| steps to threshold, median [95% CI] (runs reaching) | {steps(q)} | {steps(c)} |",
        f"| mean return over training, IQM [95% CI] | {ci(q, 'auc_iqm')} | {ci(c, 'auc_iqm')} |",
        "",
        f"P(unentangled > mlp): final return {_improvement(folder, 'final_return')}, "
        f"mean return over training {_improvement(folder, 'auc')}. "
        f"Parameter ratio mlp / unentangled: {ratio:.1f}x.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/hsiao"))
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sections = ["# Hsiao et al. (2022) reproduced: the statistics behind the verdicts", ""]
    sections.append(f"`{shlex.join(['python', 'scripts/reproduce_hsiao.py', *sys.argv[1:]])}`")
    sections.append("")
    for task in args.tasks:
        folder = run_grid(task, args.out, args.workers)
        sections.append(verdicts(task, folder))
    text = "\n".join(sections)
    (args.out / "verdicts.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
