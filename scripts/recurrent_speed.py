"""Training speed of the recurrent agents on CartPoleNoVel-v1, side by side in one process.

Builds each agent from its preset (as ``qrl train`` does) and times ``learn`` over the same
number of steps, in interleaved rounds, one thread (PyTorch's and NumPy's BLAS, as training
runs). Agents: ``qfwp``, ``qfwp (shared critic)`` (one cell, the critic reading the actor's;
also with Adam's fused implementation), ``qfwp (entangled)`` (its circuit with a CNOT ring),
``lstm`` (qrl's LSTMPolicy, one LSTM call per minibatch), the same LSTM on sb3-contrib's
stock ``MlpLstmPolicy`` (which loops over time whenever a sequence starts an episode), and
the memoryless ``unentangled`` agent on PPO.

    python scripts/recurrent_speed.py --steps 12288 --rounds 3

Prints a Markdown table: median environment steps per second (min-max over rounds) and the
ratios to the stock LSTM policy and to the feed-forward ``unentangled`` agent, paired by
round (medians). With ``--minibatch`` it times one training minibatch of each agent instead
(after a few rollouts): the policy's forward pass, the backward pass, gradient clipping and
the optimizer step, medians over interleaved calls (5 x ``--rounds`` rounds of 50), and for a
fast weight programmer each cell's forward pass alone:

    python scripts/recurrent_speed.py --env CartPole-v1 --minibatch
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from typing import Any

import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from qrl import agents
from qrl.agents import resolve_config
from qrl.envs import make_envs
from qrl.fast_weights import FastWeightCell
from qrl.threads import limited_threads

AGENTS = (
    "qfwp",
    "qfwp (shared critic)",
    "qfwp (shared critic, fused Adam)",
    "qfwp (entangled)",
    "lstm",
    "lstm (sb3-contrib MlpLstmPolicy)",
    "unentangled",
)
# Agents that are a preset with overrides: the fast weight programmer whose critic reads the
# actor's cell (one cell instead of two: what the second cell costs), the same with Adam's
# fused implementation (one kernel for all parameters; it rounds differently), and on an
# entangled circuit (a CNOT ring after each layer, as in Chen's original), on the compiled
# path where Numba is installed.
VARIANTS = {
    "qfwp (shared critic)": ("qfwp", ["policy.critic_programmer=shared"]),
    "qfwp (shared critic, fused Adam)": (
        "qfwp",
        ["policy.critic_programmer=shared", "policy.optimizer_kwargs={eps: 1.0e-5, fused: true}"],
    ),
    "qfwp (entangled)": ("qfwp", ["policy.circuit=entangled"]),
}


def steps_per_second(agent: str, env: str, steps: int) -> float:
    """Train one fresh model for ``steps`` steps and return its speed."""
    model = build(agent, env, steps)
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def build(agent: str, env: str, steps: int) -> Any:
    """A fresh model of an agent (a preset, a variant or the stock LSTM policy)."""
    stock = agent.endswith("(sb3-contrib MlpLstmPolicy)")
    preset, overrides = VARIANTS.get(agent, ("lstm" if stock else agent, []))
    config = resolve_config(preset, env, seed=0, timesteps=steps, overrides=overrides)
    cells = dict(agents.CELLS)
    if stock:  # the same preset on sb3-contrib's own policy class
        agents.CELLS["lstm"] = RecurrentActorCriticPolicy
    try:
        return agents.build_model(config, make_envs(config, seed=0))
    finally:
        agents.CELLS.update(cells)


def minibatch_step(agent: str, env: str) -> Any:
    """A function that runs one training step of an agent on one minibatch (after a few
    rollouts) and records the milliseconds of each part into the dict it is given."""
    model = build(agent, env, 2048)
    model.learn(4 * model.n_steps * model.n_envs)
    data = next(iter(model.rollout_buffer.get(model.batch_size)))
    policy = model.policy
    actions = data.actions.long().flatten()
    recurrent = hasattr(data, "lstm_states")
    extra = (data.lstm_states, data.episode_starts) if recurrent else ()
    cell = policy.lstm_actor if recurrent else None

    def step(times: dict[str, list[float]]) -> None:
        def timed(part: str, start: float) -> float:
            now = time.perf_counter()
            times.setdefault(part, []).append(1e3 * (now - start))
            return now

        start = time.perf_counter()
        values, log_prob, entropy = policy.evaluate_actions(data.observations, actions, *extra)
        loss = values.sum() + log_prob.sum() + entropy.sum()
        start = timed("forward", start)
        policy.optimizer.zero_grad()
        loss.backward()
        start = timed("backward", start)
        torch.nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
        start = timed("clip", start)
        policy.optimizer.step()
        timed("optimizer", start)
        if isinstance(cell, FastWeightCell):
            features = policy.extract_features(data.observations)
            start = time.perf_counter()
            cell.sequence(features, data.lstm_states.pi, data.episode_starts)
            timed("one cell, forward", start)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--steps", type=int, default=12288)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minibatch", action="store_true", help="time one training minibatch")
    args = parser.parse_args()
    with limited_threads(1):
        if args.minibatch:
            minibatches(args)
        else:
            run(args)


def minibatches(args: argparse.Namespace) -> None:
    """Print the parts of one training step of the fast weight programmers and the
    feed-forward agent."""
    names = ("qfwp", "qfwp (shared critic)", "qfwp (shared critic, fused Adam)", "unentangled")
    command = shlex.join(["python", "scripts/recurrent_speed.py", *sys.argv[1:]])
    print(f"`{command}`: {platform.processor() or platform.machine()}, torch {torch.__version__}\n")
    print(
        "| agent | forward ms | backward ms | clip ms | optimizer ms | total ms | one cell,"
        " forward ms |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    steps = {name: minibatch_step(name, args.env) for name in names}
    times: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for _ in range(args.rounds * 5):  # interleaved rounds of 50 calls
        for name, step in steps.items():
            for _ in range(50):
                step(times[name])
    for name in names:
        parts = {part: statistics.median(values) for part, values in times[name].items()}
        total = sum(parts[p] for p in ("forward", "backward", "clip", "optimizer"))
        cell = f"{parts['one cell, forward']:.2f}" if "one cell, forward" in parts else "-"
        print(
            f"| {name} | {parts['forward']:.2f} | {parts['backward']:.2f} | {parts['clip']:.2f}"
            f" | {parts['optimizer']:.2f} | {total:.2f} | {cell} |"
        )


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
