"""Training speed of the recurrent agents on CartPoleNoVel-v1, side by side in one process.

Builds each agent from its preset (as ``qrl train`` does) and times ``learn`` over the same
number of steps, in interleaved rounds, one thread. Agents: ``qfwp``, ``lstm`` (qrl's
LSTMPolicy, one LSTM call per minibatch), the same LSTM on sb3-contrib's stock
``MlpLstmPolicy`` (which loops over time whenever a sequence starts an episode), and the
memoryless ``unentangled`` agent on PPO.

    python scripts/recurrent_speed.py --steps 12288 --rounds 3

Prints a Markdown table: median environment steps per second (min-max over rounds) and the
ratio to the stock LSTM policy, measured in the same rounds.
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

AGENTS = ("qfwp", "lstm", "lstm (sb3-contrib MlpLstmPolicy)", "unentangled")


def steps_per_second(agent: str, env: str, steps: int) -> float:
    """Train one fresh model for ``steps`` steps and return its speed."""
    stock = agent.endswith("(sb3-contrib MlpLstmPolicy)")
    config = resolve_config("lstm" if stock else agent, env, seed=0, timesteps=steps)
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
    torch.set_num_threads(1)
    speeds: dict[str, list[float]] = {a: [] for a in AGENTS}
    for _ in range(args.rounds):
        for agent in AGENTS:
            speeds[agent].append(steps_per_second(agent, args.env, args.steps))
    reference = speeds[AGENTS[2]]
    command = shlex.join(["python", "scripts/recurrent_speed.py", *sys.argv[1:]])
    print(f"`{command}`: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"{args.steps} steps per run, {args.rounds} interleaved rounds, one thread\n")
    print("| agent | steps/s, median (min-max) | speed vs stock LSTM policy (median ratio) |")
    print("|---|---:|---:|")
    for agent, values in speeds.items():
        ratio = statistics.median(v / r for v, r in zip(values, reference, strict=True))
        print(
            f"| {agent} | {statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"
            f" | {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
