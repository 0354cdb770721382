"""Every registered algorithm trains, saves and reloads with the quantum and classical presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from qrl.agents import (
    ALGORITHMS,
    Q_CRITIC_ALGORITHMS,
    build_model,
    hyperparameter_names,
    load_model,
    resolve_config,
    saved_algorithms,
)
from qrl.envs import make_envs
from qrl.errors import QrlError
from qrl.extractors import QuantumExtractor

AGENTS = ("unentangled", "entangled", "mlp")
SKIPPED = {"recurrent_ppo": "its cells (lstm, qfwp) are tested in test_fast_weights.py"}
STEPS = 128

# Settings for a few seconds of training; each algorithm takes those it has.
ON_POLICY = {"n_steps": 16, "batch_size": 32, "n_epochs": 1, "n_critic_updates": 1}
OFF_POLICY = {
    "learning_starts": 16,
    "batch_size": 16,
    "buffer_size": 1000,
    "train_freq": 4,
    "gradient_steps": 1,
}


def _task(name: str) -> str:
    """Pendulum for the algorithms with a Q-network critic (continuous actions only),
    CartPole for the others (DQN and QR-DQN take discrete actions only)."""
    return "Pendulum-v1" if issubclass(ALGORITHMS[name], Q_CRITIC_ALGORITHMS) else "CartPole-v1"


def _overrides(name: str) -> list[str]:
    """``--set`` overrides selecting the algorithm with tiny settings.

    :param name: the registered algorithm
    :return: the overrides
    """
    tiny = ON_POLICY if issubclass(ALGORITHMS[name], OnPolicyAlgorithm) else OFF_POLICY
    valid = hyperparameter_names(name)
    settings = [f"hyperparameters.{k}={v}" for k, v in tiny.items() if k in valid]
    return [f"algorithm={name}", "eval_episodes=1", *settings]


def _algorithms() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.skip(reason=SKIPPED[name]))
        if name in SKIPPED
        else name
        for name in ALGORITHMS
    ]


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("name", _algorithms())
def test_algorithm_trains_saves_and_reloads(name: str, agent: str, tmp_path: Path):
    config = resolve_config(agent, _task(name), overrides=_overrides(name))
    envs = make_envs(config, seed=0)
    model = build_model(config, envs)
    quantum = any(isinstance(m, QuantumExtractor) for m in model.policy.modules())
    assert quantum == (agent != "mlp")
    model.learn(STEPS)
    assert model.num_timesteps >= STEPS
    obs = envs.reset()
    action, _ = model.predict(obs, deterministic=True)
    path = tmp_path / "model.zip"
    model.save(path)
    saved = saved_algorithms(path)
    assert saved is not None and name in saved
    reloaded = load_model(path, name)
    again, _ = reloaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(again, action, rtol=1e-6, atol=1e-6)


def test_verbose_reaches_the_model():
    config = resolve_config("mlp", "CartPole-v1", overrides=["hyperparameters.verbose=1"])
    assert build_model(config, make_envs(config, seed=0)).verbose == 1
    quiet = resolve_config("mlp", "CartPole-v1")
    assert build_model(quiet, make_envs(quiet, seed=0)).verbose == 0
    with pytest.raises(QrlError, match=r"^bad hyperparameters\.verbose: 3; .*from 0 to 2$"):
        resolve_config("mlp", "CartPole-v1", overrides=["hyperparameters.verbose=3"])


def test_net_arch_takes_each_algorithm_form():
    dqn = resolve_config("unentangled", "CartPole-v1", overrides=["algorithm=dqn"])
    assert dqn.policy["net_arch"] == {"pi": [], "vf": [8]}  # the preset keeps its own form
    assert build_model(dqn, make_envs(dqn, seed=0)).policy.net_arch == [8]
    sac = resolve_config("unentangled", "Pendulum-v1", overrides=["algorithm=sac"])
    assert build_model(sac, make_envs(sac, seed=0)).policy.net_arch == {"pi": [], "qf": [8]}
    message = r"^bad policy\.net_arch: \{'pi': \[64\]\}; allowed: .*vf"
    with pytest.raises(QrlError, match=message) as bad:
        resolve_config(
            "mlp", "CartPole-v1", overrides=["algorithm=qrdqn", "policy.net_arch={pi: [64]}"]
        )
    assert "\n" not in str(bad.value)
