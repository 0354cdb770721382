"""Do the torch executor and a PennyLane device take the same actions with one saved policy?

Plays episodes with the policy on the torch executor, records every observation, and asks
the same saved policy on another executor (default.qubit by default) for its deterministic
actions on all of them.

    python scripts/executor_agreement.py RUN [--episodes 10] [--executor default.qubit]
"""

from __future__ import annotations

import argparse

import numpy as np

from qrl.agents import load_model
from qrl.envs import make_envs
from qrl.extractors import set_executor
from qrl.runs import locate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--executor", default="default.qubit")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    model_path, config = locate(args.run)
    assert config is not None, "give a run folder"
    reference = load_model(model_path, config.algorithm)
    other = load_model(model_path, config.algorithm)
    set_executor(other, args.executor)

    envs = make_envs(config, seed=args.seed, n_envs=1)
    observations = []
    obs = envs.reset()
    episodes = 0
    while episodes < args.episodes:
        observations.append(obs)
        action, _ = reference.predict(obs, deterministic=True)
        obs, _, done, _ = envs.step(action)
        episodes += int(done[0])
    batch = np.concatenate(observations)
    a, _ = reference.predict(batch, deterministic=True)
    b, _ = other.predict(batch, deterministic=True)
    agree = int((a == b).sum())
    print(
        f"{agree} of {len(batch)} deterministic actions agree between torch and {args.executor} "
        f"({args.episodes} episodes of {config.env_id}, seed {args.seed})"
    )


if __name__ == "__main__":
    main()
