"""Measure the value of memory: recurrent and memoryless agents on a partially observable task.

Trains every agent over the same seeds with ``scripts/seeds.py`` (one ``qrl train`` process
per seed, finished runs reused, so an interrupted sweep resumes) and writes one Markdown
table with every seed, the parameter counts and the wall times.

    python scripts/memory.py --env CartPoleNoVel-v1 --agents qfwp lstm unentangled \
        --seeds 0 1 2 3 4 --out runs/memory

Runs land in ``OUT/<env>-<agent>/seed<N>``; the table in ``OUT/<env>.md`` (and JSON beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seeds import train_one


def summary_rows(agent: str, rows: list[dict[str, Any]], solved: float | None) -> str:
    """One Markdown row per agent: every seed's return, then the spread."""
    returns = [r["mean_return"] for r in rows]
    per_seed = ", ".join(f"{x:.0f}" for x in returns)
    n_solved = sum(bool(r["solved"]) for r in rows)
    spread = statistics.stdev(returns) if len(returns) > 1 else 0.0
    params = rows[0]["parameters"], rows[0]["quantum_parameters"]
    speed = statistics.median(r["steps_per_s"] or 0.0 for r in rows)
    wall = statistics.median(r["wall_time_s"] for r in rows)
    solved_text = f"{n_solved} of {len(rows)}" if solved is not None else "-"
    return (
        f"| `{agent}` | {per_seed} | {statistics.mean(returns):.1f} +/- {spread:.1f} | "
        f"{statistics.median(returns):.1f} | {solved_text} | {params[0]:,} ({params[1]}) | "
        f"{wall:.0f} | {speed:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--agents", nargs="+", default=["qfwp", "lstm", "unentangled"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more qrl train options")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    jobs = [(agent, seed) for agent in args.agents for seed in args.seeds]
    folders = {a: args.out / f"{args.env.replace('/', '_')}-{a}" for a in args.agents}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(
            pool.map(lambda j: train_one(j[0], args.env, j[1], folders[j[0]], extra), jobs)
        )
    by_agent: dict[str, list[dict[str, Any]]] = {a: [] for a in args.agents}
    for (agent, _), row in zip(jobs, results, strict=True):
        by_agent[agent].append(row)
    first = json.loads((folders[args.agents[0]] / f"seed{args.seeds[0]}" / "eval.json").read_text())
    solved = first.get("solved_threshold")
    steps = results[0]["timesteps"]
    command = shlex.join(["python", "scripts/memory.py", *sys.argv[1:]])
    lines = [
        f"`{command}` on {platform.node()} ({os.cpu_count()} CPUs); {steps:,} steps per run; "
        f"mean return of the final model over {first['episodes']} deterministic episodes"
        + (f"; solved at {solved}" if solved is not None else ""),
        "",
        "| agent | return per seed | mean +/- std | median | solved | parameters (quantum) "
        "| wall time (s, median) | steps/s (median) |",
        "|---|---|---:|---:|:---:|---:|---:|---:|",
    ]
    lines += [summary_rows(a, by_agent[a], solved) for a in args.agents]
    text = "\n".join(lines) + "\n"
    stem = args.out / args.env.replace("/", "_")
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps(by_agent, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
