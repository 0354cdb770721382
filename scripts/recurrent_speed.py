"""Training speed of the recurrent agents on CartPoleNoVel-v1, side by side in one process.

Builds each agent from its preset (as ``qrl train`` does) and times ``learn`` over the same
number of steps, in interleaved rounds, one thread (PyTorch's and NumPy's BLAS, as training
runs). Agents: ``qfwp``, ``qfwp (shared critic)`` (one cell, the critic reading the actor's),
``qfwp (entangled)`` (its circuit with a CNOT ring), ``lstm`` (qrl's LSTMPolicy, one LSTM
call per minibatch), the same LSTM on sb3-contrib's stock ``MlpLstmPolicy`` (which loops
over time whenever a sequence starts an episode), and the memoryless ``unentangled`` agent
on PPO.

    python scripts/recurrent_speed.py --steps 12288 --rounds 3

Prints a Markdown table: median environment steps per second (min-max over rounds) and the
ratios to the stock LSTM policy and to the feed-forward ``unentangled`` agent, paired by
round (medians).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time

import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from qrl import agents
from qrl.agents import resolve_config
from qrl.envs import make_envs
from qrl.threads import limited_threads

AGENTS = (
    "qfwp",
    "qfwp (shared critic)",
    "qfwp (entangled)",
    "lstm",
    "lstm (sb3-contrib MlpLstmPolicy)",
    "unentangled",
)
# Agents that are a preset with overrides: the fast weight programmer whose critic reads the
# actor's cell (one cell instead of two: what the second cell costs), and on an entangled
# circuit (a CNOT ring after each layer, as in Chen's original), on the compiled path where
# Numba is installed.
VARIANTS = {
    "qfwp (shared critic)": ("qfwp", ["policy.critic_programmer=shared"]),
    "qfwp (entangled)": ("qfwp", ["policy.circuit=entangled"]),
}


def steps_per_second(agent: str, env: str, steps: int) -> float:
    """Train one fresh model for ``steps`` steps and return its speed."""
    stock = agent.endswith("(sb3-contrib MlpLstmPolicy)")
    preset, overrides = VARIANTS.get(agent, ("lstm" if stock else agent, []))
    config = resolve_config(preset, env, seed=0, timesteps=steps, overrides=overrides)
    cells = dict(agents.CELLS)
    if stock:  # the same preset on sb3-contrib's own policy class
        agents.CELLS["lstm"] = RecurrentActorCriticPolicy
    try:
        model = agents.build_model(config, make_envs(config, seed=0))
    finally:
        agents.CELLS.update(cells)
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--steps", type=int, default=12288)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with limited_threads(1):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time every agent in interleaved rounds and print the table."""
    speeds: dict[str, list[float]] = {a: [] for a in AGENTS}
    for _ in range(args.rounds):
        for agent in AGENTS:
            speeds[agent].append(steps_per_second(agent, args.env, args.steps))
    reference = speeds["lstm (sb3-contrib MlpLstmPolicy)"]
    feed_forward = speeds["unentangled"]
    command = shlex.join(["python", "scripts/recurrent_speed.py", *sys.argv[1:]])
    print(f"`{command}`: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"{args.steps} steps per run, {args.rounds} interleaved rounds, one thread\n")
    print(
        "| agent | steps/s, median (min-max) | vs stock LSTM policy | vs unentangled |\n"
        "|---|---:|---:|---:|"
    )
    for agent, values in speeds.items():
        ratio = statistics.median(v / r for v, r in zip(values, reference, strict=True))
        to_ff = statistics.median(v / r for v, r in zip(values, feed_forward, strict=True))
        print(
            f"| {agent} | {statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"
            f" | {ratio:.2f}x | {to_ff:.2f}x |"
        )


if __name__ == "__main__":
    main()
