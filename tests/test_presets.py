"""Presets load by name or path; bad presets and overrides get one clear message."""

from __future__ import annotations

import pytest

from qrl.agents import resolve_config
from qrl.errors import QrlError
from qrl.presets import (
    RunConfig,
    load_agent_preset,
    load_env_preset,
    parse_override,
    preset_descriptions,
    preset_names,
)

AGENTS = preset_names("agents")
ENVS = preset_names("envs")


def test_shipped_presets_exist():
    assert {"unentangled", "entangled", "mlp"} <= set(AGENTS)
    assert {"CartPole-v1", "LunarLander-v3"} <= set(ENVS)
    assert all(description for _, description in preset_descriptions("agents"))
    assert all(description for _, description in preset_descriptions("envs"))


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("env", ENVS)
def test_every_preset_pair_resolves(agent, env):
    config = resolve_config(agent, env, seed=1)
    assert config.agent == agent and config.env == env
    assert config.timesteps > 0 and config.n_envs > 0
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("env", ENVS)
def test_quantum_and_classical_share_hyperparameters(env):
    """The honest comparison: same algorithm and hyperparameters, only the policy differs."""
    quantum = resolve_config("unentangled", env)
    classical = resolve_config("mlp", env)
    assert quantum.algorithm == classical.algorithm
    assert quantum.hyperparameters == classical.hyperparameters


def test_any_gymnasium_id_gets_defaults():
    config = resolve_config("mlp", "MountainCar-v0")
    assert config.env_id == "MountainCar-v0" and config.hyperparameters == {}
    assert config.eval_freq == 0  # no learning curve unless asked for


def test_preset_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "description: mine\nalgorithm: a2c\npolicy: {extractor: quantum, n_layers: 1}\n"
    )
    config = resolve_config(str(path), "CartPole-v1")
    assert config.agent == "mine" and config.algorithm == "a2c" and config.policy["n_layers"] == 1


def test_overrides():
    config = resolve_config(
        "unentangled",
        "CartPole-v1",
        overrides=["policy.n_layers=3", "hyperparameters.learning_rate=1e-3", "n_envs=2"],
    )
    assert config.policy["n_layers"] == 3
    assert config.hyperparameters["learning_rate"] == 1e-3  # a float, though YAML 1.1 says str
    assert config.n_envs == 2
    assert parse_override("policy.observables=[Z]") == ("policy.observables", ["Z"])


def test_executor_option_reaches_policy():
    assert (
        resolve_config("unentangled", "CartPole-v1", executor="default.qubit").policy["executor"]
        == "default.qubit"
    )
    with pytest.raises(QrlError, match="is classical"):
        resolve_config("mlp", "CartPole-v1", executor="default.qubit")


@pytest.mark.parametrize(
    ("agent", "env", "overrides", "message"),
    [
        (
            "unentangld",
            "CartPole-v1",
            [],
            r"unknown agent 'unentangld'; did you mean 'unentangled'",
        ),
        ("mlp", "CartPole-v9", [], r"unknown environment 'CartPole-v9'.*CartPole-v1"),
        (
            "mlp",
            "CartPole-v1",
            ["policy.nett_arch=[]"],
            r"unknown policy option 'nett_arch'.*net_arch",
        ),
        ("mlp", "CartPole-v1", ["policy.n_layers=2"], r"unknown policy option 'n_layers'"),
        ("mlp", "CartPole-v1", ["hyperparameters.lr=1"], r"unknown ppo hyperparameter 'lr'"),
        ("mlp", "CartPole-v1", ["epochs=3"], r"unknown --set key 'epochs'"),
        ("mlp", "CartPole-v1", ["n_envs"], r"--set takes key=value"),
        ("mlp", "CartPole-v1", ["algorithm=ppp"], r"unknown algorithm 'ppp'"),
        ("mlp", "CartPole-v1", ["policy.net_arch=[64"], r"malformed YAML in --set"),
        ("mlp", "CartPole-v1", ["timesteps=0"], r"must be positive"),
    ],
)
def test_bad_input(agent, env, overrides, message):
    with pytest.raises(QrlError, match=message):
        resolve_config(agent, env, overrides=overrides)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("algorithm: ppo\npolicy: [1, 2\n", "malformed YAML"),
        ("- a list\n", "must hold a YAML mapping"),
        ("algorithm: ppo\npolcy: {}\n", "unknown key 'polcy'.*did you mean 'policy'"),
        ("policy: {}\n", "must name an 'algorithm'"),
        ("algorithm: ppo\npolicy: 3\n", "must be a mapping"),
    ],
)
def test_malformed_agent_preset(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(QrlError, match=message):
        load_agent_preset(str(path))


def test_malformed_env_preset(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: NoSuchEnv-v0\n")
    with pytest.raises(QrlError, match="not a registered Gymnasium id"):
        load_env_preset(str(path))
    with pytest.raises(QrlError, match="does not exist"):
        load_env_preset(str(tmp_path / "missing.yaml"))
