"""Train one agent on one task over several seeds and tabulate the final evaluations.

Each seed is a separate ``qrl train`` process (the public command line, one thread each),
run in parallel on a small process pool. Finished runs in the output folder are reused, so
an interrupted sweep resumes.

    python scripts/seeds.py --agent unentangled --env CartPole-v1 --seeds 0 1 2 3 4 \
        --out runs/seeds/cartpole-unentangled

Prints a Markdown table (and writes it, with a JSON summary, into the output folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def train_one(agent: str, env: str, seed: int, out: Path, extra: list[str]) -> dict[str, Any]:
    """Run ``qrl train`` for one seed (unless already finished) and read its results."""
    run = out / f"seed{seed}"
    if not (run / "eval.json").is_file():
        if run.exists():
            subprocess.run(["rm", "-rf", str(run)], check=True)
        cmd = ["qrl", "train", "--agent", agent, "--env", env, "--seed", str(seed)]
        cmd += ["--run-dir", str(run), "--no-progress", *extra]
        env_vars = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run(cmd, env=env_vars, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"seed {seed} failed: {shlex.join(cmd)}\n{done.stderr[-2000:]}")
    result = json.loads((run / "eval.json").read_text())
    status = json.loads((run / "run.json").read_text())
    return {
        "seed": seed,
        "mean_return": result["mean_return"],
        "std_return": result["std_return"],
        "min_return": result["min_return"],
        "episodes": result["episodes"],
        "solved": result.get("solved"),
        "parameters": status["parameters"]["total"],
        "quantum_parameters": status["parameters"]["quantum"],
        "timesteps": status["num_timesteps"],
        "wall_time_s": status["wall_time_s"],
        "steps_per_s": status.get("steps_per_s"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the per-seed results, with the median and the solved count."""
    lines = [
        "| seed | mean return | std | min | solved | parameters (quantum) | steps "
        "| wall time (s) |",
        "|---:|---:|---:|---:|:---:|---:|---:|---:|",
    ]
    for r in rows:
        solved = {True: "yes", False: "no", None: "-"}[r["solved"]]
        lines.append(
            f"| {r['seed']} | {r['mean_return']:.1f} | {r['std_return']:.1f} | "
            f"{r['min_return']:.1f} | {solved} | {r['parameters']} ({r['quantum_parameters']}) | "
            f"{r['timesteps']} | {r['wall_time_s']:.0f} |"
        )
    returns = [r["mean_return"] for r in rows]
    spread = statistics.stdev(returns) if len(returns) > 1 else 0.0
    n_solved = sum(bool(r["solved"]) for r in rows)
    lines.append(
        f"\nacross {len(rows)} seeds: mean return {statistics.mean(returns):.1f} "
        f"(std {spread:.1f}), median {statistics.median(returns):.1f}, "
        f"min {min(returns):.1f}, max {max(returns):.1f}; solved {n_solved} of {len(rows)}; "
        f"median wall time {statistics.median(r['wall_time_s'] for r in rows):.0f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more qrl train options")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(
            pool.map(lambda s: train_one(args.agent, args.env, s, args.out, extra), args.seeds)
        )
    text = table(rows)
    command = shlex.join(["python", "scripts/seeds.py", *sys.argv[1:]])
    header = f"`{command}` on {platform.node()} ({os.cpu_count()} CPUs)\n\n"
    (args.out / "summary.md").write_text(header + text + "\n")
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(header + text)


if __name__ == "__main__":
    main()
