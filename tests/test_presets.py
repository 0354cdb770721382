"""Presets load by name or path; bad presets and overrides get one clear message."""

from __future__ import annotations

import json
import re

import pytest

from qrl.agents import resolve_config
from qrl.errors import QrlError
from qrl.presets import (
    RunConfig,
    boolean,
    is_credential_key,
    load_agent_preset,
    load_env_preset,
    parse_override,
    preset_descriptions,
    preset_names,
    real_number,
    whole_number,
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
        ("mlp", "CartPole-v1", ["timesteps=0"], r"bad timesteps: 0; allowed: a whole number >= 1"),
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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("timesteps=abc", r"^bad timesteps: 'abc'; allowed: a whole number >= 1$"),
        ("timesteps=true", r"^bad timesteps: True; allowed: a whole number >= 1$"),
        ("seed=abc", r"^bad seed: 'abc'; allowed: a whole number from 0 to 2147483647$"),
        ("seed=-3", r"^bad seed: -3"),
        ("n_envs=2.5", r"^bad n_envs: 2\.5; allowed: a whole number >= 1$"),
        ("eval_episodes=-1", r"^bad eval_episodes: -1; allowed: a whole number >= 0$"),
        ("eval_freq=[1]", r"^bad eval_freq: \[1\]"),
        ("eval_freq_episodes=0", r"^bad eval_freq_episodes: 0"),
        ("solved=high", r"^bad solved: 'high'; allowed: a number or null$"),
        ("max_episode_steps=0", r"^bad max_episode_steps: 0; allowed: a whole number >= 1 or null"),
        (
            "hyperparameters.gamma=abc",
            r"^bad hyperparameters\.gamma: 'abc'; allowed: a number from",
        ),
        ("hyperparameters.gamma=1.5", r"^bad hyperparameters\.gamma: 1\.5"),
        ("hyperparameters.gae_lambda=-0.1", r"^bad hyperparameters\.gae_lambda: -0\.1"),
        ("hyperparameters.n_steps=2.5", r"^bad hyperparameters\.n_steps: 2\.5"),
        ("hyperparameters.n_epochs=0", r"^bad hyperparameters\.n_epochs: 0"),
        ("hyperparameters.learning_rate=-1", r"^bad hyperparameters\.learning_rate: -1; .*>= 0"),
        ("hyperparameters.learning_rate=fast", r"learning_rate: 'fast'; allowed: a number or lin_"),
        ("hyperparameters.learning_rate=lin_x", r"learning_rate: 'lin_x'; allowed: lin_<number>"),
        ("hyperparameters.clip_range=lin_-1", r"clip_range: 'lin_-1'; .*the number > 0"),
        (
            "hyperparameters.normalize_advantage=1",
            r"normalize_advantage: 1; allowed: true or false",
        ),
        ("hyperparameters.target_kl=much", r"target_kl: 'much'; allowed: a number or null"),
        ("hyperparameters.device=gpu0", r"^bad hyperparameters\.device: 'gpu0'"),
        (
            "hyperparameters.rollout_buffer_class=mine",
            r"rollout_buffer_class: 'mine'; allowed: null",
        ),
        (
            "hyperparameters.rollout_buffer_kwargs=3",
            r"rollout_buffer_kwargs: 3; allowed: a mapping",
        ),
        ("policy.ortho_init=abc", r"^bad policy\.ortho_init: 'abc'; allowed: true or false$"),
        ("policy.log_std_init=x", r"^bad policy\.log_std_init: 'x'; allowed: a number$"),
        ("policy.net_arch=abc", r"^bad policy\.net_arch: 'abc'"),
    ],
)
def test_values_are_checked_before_any_work(override, message):
    """Every value of the command line and presets: its type and range, against SB3's
    signature for hyperparameters and policy arguments, named with the key and what is
    allowed on one line."""
    with pytest.raises(QrlError, match=message) as caught:
        resolve_config("unentangled", "CartPole-v1", overrides=[override])
    assert "\n" not in str(caught.value)


def test_the_step_limit_is_given_once():
    limits = ["max_episode_steps=5", "env_kwargs.max_episode_steps=9"]
    with pytest.raises(QrlError, match=r"step limit is given twice"):
        resolve_config("mlp", "CartPole-v1", overrides=limits)


def test_off_policy_and_recurrent_values_follow_their_signatures():
    dqn = resolve_config(
        "mlp",
        "CartPole-v1",
        overrides=[
            "algorithm=dqn",
            "policy.net_arch=[64]",
            "hyperparameters.buffer_size=1e5",  # YAML reads a float: a whole number is fine
            "hyperparameters.train_freq=[4, step]",
            "hyperparameters.gradient_steps=-1",
            "hyperparameters.exploration_final_eps=0.1",
        ],
    )
    assert dqn.hyperparameters["buffer_size"] == 100_000
    assert isinstance(dqn.hyperparameters["buffer_size"], int)
    with pytest.raises(QrlError, match=r"bad hyperparameters\.exploration_final_eps: 2"):
        resolve_config(
            "mlp",
            "CartPole-v1",
            overrides=[
                "algorithm=dqn",
                "policy.net_arch=[64]",
                "hyperparameters.exploration_final_eps=2",
            ],
        )
    with pytest.raises(
        QrlError, match=r"bad hyperparameters\.train_freq: \['4', 'step'\]; allowed"
    ):
        resolve_config(
            "mlp",
            "CartPole-v1",
            overrides=[
                "algorithm=dqn",
                "policy.net_arch=[64]",
                "hyperparameters.train_freq=['4', step]",
            ],
        )
    sac = resolve_config(
        "mlp", "Pendulum-v1", overrides=["algorithm=sac", "hyperparameters.ent_coef=auto_0.1"]
    )
    assert sac.hyperparameters["ent_coef"] == "auto_0.1"  # SAC's ent_coef takes text
    config = resolve_config("mlp", "CartPole-v1", overrides=["timesteps=1e4", "seed=2.0"])
    assert (config.timesteps, config.seed) == (10_000, 2)
    assert isinstance(config.timesteps, int)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (3, {}, 3),
        (3.0, {}, 3),
        (1e5, {"minimum": 1}, 100_000),
        (None, {"allow_none": True}, None),
        (0, {"minimum": 0, "maximum": 3}, 0),
    ],
)
def test_whole_numbers(value, kwargs, expected):
    result = whole_number(value, "n", **kwargs)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "kwargs", "allowed"),
    [
        ("3", {}, "a whole number"),
        (2.5, {}, "a whole number"),
        (True, {}, "a whole number"),
        (None, {}, "a whole number"),
        (0, {"minimum": 1}, "a whole number >= 1"),
        (4, {"minimum": 0, "maximum": 3}, "a whole number from 0 to 3"),
    ],
)
def test_bad_whole_numbers(value, kwargs, allowed):
    with pytest.raises(QrlError, match=f"^bad n: {re.escape(repr(value))}; allowed: {allowed}$"):
        whole_number(value, "n", **kwargs)


def test_real_numbers_and_booleans():
    assert real_number(1, "x") == 1.0 and real_number(None, "x", allow_none=True) is None
    for bad, kwargs in [
        ("1", {}),
        (True, {}),
        (float("nan"), {}),
        (0, {"minimum": 0, "above": True}),
    ]:
        with pytest.raises(QrlError, match=r"^bad x: "):
            real_number(bad, "x", **kwargs)
    assert boolean(False, "flag") is False
    with pytest.raises(QrlError, match=r"^bad flag: 1; allowed: true or false$"):
        boolean(1, "flag")


@pytest.mark.parametrize(
    "key",
    [
        *("token", "api_key", "apiKey", "APIKEY", "QISKIT_IBM_TOKEN", "Password"),
        *("client-secret", "aws_secret_access_key", "credentials", "Authorization", "ssh.key"),
        "accessKeyId",
    ],
)
def test_credential_keys_are_recognised(key):
    assert is_credential_key(key)


@pytest.mark.parametrize(
    "key", ["shots", "backend", "device_arn", "n_layers", "monkey", "tokenizer", "keep", "seed"]
)
def test_ordinary_keys_are_not_credentials(key):
    assert not is_credential_key(key)


def test_credentials_are_refused_at_any_depth_of_settings(tmp_path):
    with pytest.raises(
        QrlError, match=r"setting 'policy\.executor_options\.device_options\.api_key'"
    ):
        resolve_config(
            "unentangled",
            "CartPole-v1",
            overrides=["policy.executor_options={device_options: {api_key: s3cr3t-value}}"],
        )
    with pytest.raises(QrlError, match=r"setting 'policy\.executor_options\.token'.*environment"):
        resolve_config(
            "unentangled", "CartPole-v1", overrides=["policy.executor_options.token=s3cr3t"]
        )
    preset = tmp_path / "leaky.yaml"
    preset.write_text(
        "algorithm: ppo\npolicy:\n  extractor: quantum\n  executor: default.qubit\n"
        "  executor_options: {device_options: {nested: [{Secret: s3cr3t}]}}\n"
    )
    with pytest.raises(QrlError, match=r"device_options\.nested\[0\]\.Secret' looks like a"):
        resolve_config(str(preset), "CartPole-v1")


def test_nested_overrides_reach_any_depth():
    config = resolve_config(
        "unentangled",
        "CartPole-v1",
        executor="default.qubit",
        overrides=["policy.executor_options.shots=100", "policy.executor_options.diff_method=best"],
    )
    assert config.policy["executor_options"] == {"shots": 100, "diff_method": "best"}


def test_one_line_yaml_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("algorithm: ppo\npolicy: {a: [1,\n")
    with pytest.raises(QrlError, match=r"malformed YAML in .*bad\.yaml: .*\(line 3, column 1\)$"):
        load_agent_preset(str(path))
    path.write_bytes(b"algorithm: ppo\n\xff\xfe")
    with pytest.raises(
        QrlError, match=r"bad\.yaml is not a YAML text file: byte 0xff at offset 15"
    ):
        load_agent_preset(str(path))
    path.write_text("id: CartPole-v1\nn_envs: lots\n")
    with pytest.raises(QrlError, match=r"^bad n_envs: 'lots'; allowed: a whole number >= 1$"):
        resolve_config("mlp", str(path))


def test_episodes_end_on_a_task_without_a_step_limit(tmp_path, capsys, monkeypatch):
    """CliffWalking has no step limit: its episodes end at max_episode_steps (1000 unless
    set), said once on stderr, in training, evaluation and the dry run's bound."""
    import qrl.envs
    from qrl.cli import main
    from qrl.envs import episode_step_limit
    from qrl.evaluation.comparison import evaluation_cost

    monkeypatch.setattr(qrl.envs, "_announced", set())

    def train(folder, *settings):
        argv = ["train", "--agent", "unentangled", "--env", "CliffWalking-v1"]
        argv += ["--timesteps", "256", "--no-progress", "--run-dir", str(folder)]
        for setting in ("eval_episodes=2", "hyperparameters.n_steps=256", *settings):
            argv += ["--set", setting]
        assert main(argv) == 0
        return json.loads((folder / "eval.json").read_text())

    evaluation = train(tmp_path / "cliff")
    err = capsys.readouterr().err
    assert err.count("CliffWalking-v1 has no step limit; its episodes end after 1000 steps") == 1
    assert evaluation["episodes"] == 2 and max(evaluation["lengths"]) <= 1000
    cost = evaluation_cost(tmp_path / "cliff", "default.qubit", {}, episodes=3)
    assert [v["max_steps_per_episode"] for v in cost["variants"]] == [1000, 1000]
    assert cost["variants"][-1]["max_circuits"] == 3 * 1000

    config = resolve_config("mlp", "CliffWalking-v1", overrides=["max_episode_steps=50"])
    assert episode_step_limit(config) == 50
    assert max(train(tmp_path / "short", "max_episode_steps=50")["lengths"]) <= 50
    # A task whose limit sits inside its wrappers keeps it, unannounced.
    capsys.readouterr()
    assert episode_step_limit(resolve_config("mlp", "qrl/CartPoleNoVel-v1")) == 500
    assert episode_step_limit(resolve_config("mlp", "CartPole-v1")) == 500
    assert "no step limit" not in capsys.readouterr().err
