"""qrl in Stable-Baselines3's and rl-baselines3-zoo's terms: users' tasks (``module:EnvId``,
``--gym-packages``), the zoo's task options (``env_wrapper``, ``frame_stack``, ``normalize``,
``callback``), SB3's outputs (evaluations.npz, best_model.zip, monitor files,
``eval/mean_reward``), models of the zoo and of plain SB3, and W&B tracking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import load_results
from stable_baselines3.common.vec_env import VecNormalize

import qrl
from qrl.cli import main
from qrl.training import resume, train

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
QUIET = ["--no-progress"]

MODULE = '''
import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class {name}(CartPoleEnv):
    """CartPole, registered by a module outside qrl."""


gym.register("{name}-v0", entry_point="{module}:{name}", max_episode_steps=100)
'''


def _module(folder: Path, module: str, name: str) -> None:
    (folder / f"{module}.py").write_text(MODULE.format(module=module, name=name))


def _qrl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``qrl ARGS`` in its own process, in ``cwd`` (a fresh interpreter: nothing registered)."""
    return subprocess.run(["qrl", *args], cwd=cwd, env=ENV, capture_output=True, text=True)


def _tiny_ppo(*extra: str) -> list[str]:
    return [
        "--set",
        "hyperparameters.n_steps=32",
        "--set",
        "hyperparameters.batch_size=32",
        "--set",
        "hyperparameters.n_epochs=1",
        "--set",
        "eval_episodes=2",
        *extra,
    ]


# -- users' tasks -------------------------------------------------------------------------


def test_a_module_outside_the_package_registers_a_task_for_train_and_evaluate(
    tmp_path: Path,
) -> None:
    _module(tmp_path, "mytasks", "MyCartPole")
    done = _qrl(
        tmp_path,
        "train",
        "--agent",
        "unentangled",
        "--env",
        "mytasks:MyCartPole-v0",
        "--timesteps",
        "64",
        "--run-dir",
        "run",
        *_tiny_ppo(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("run")
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["env_id"] == "mytasks:MyCartPole-v0"
    again = _qrl(tmp_path, "evaluate", "run", "--episodes", "2", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["env"] == "mytasks:MyCartPole-v0"


def test_gym_packages_are_imported_first_and_recorded(tmp_path: Path) -> None:
    _module(tmp_path, "mypackage", "PackagedCartPole")
    args = ["--agent", "mlp", "--env", "PackagedCartPole-v0", "--timesteps", "64"]
    refused = _qrl(tmp_path, "train", *args, "--run-dir", "run", *_tiny_ppo())
    assert refused.returncode == 2
    assert "--gym-packages" in refused.stderr and "Traceback" not in refused.stderr
    done = _qrl(
        tmp_path, "train", *args, "--gym-packages", "mypackage", "--run-dir", "run", *_tiny_ppo()
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["gym_packages"] == [
        "mypackage"
    ]
    assert _qrl(tmp_path, "evaluate", "run", "--episodes", "1").returncode == 0


def test_train_takes_an_environment_object_made_from_a_registered_id(tmp_path: Path) -> None:
    import gymnasium as gym

    env = gym.make("MountainCarContinuous-v0", goal_velocity=0.01)
    overrides = ["eval_episodes=1", "hyperparameters.n_steps=16", "hyperparameters.batch_size=16"]
    run = train("mlp", env, timesteps=16, overrides=overrides, run_dir=tmp_path / "r")
    assert run.config.env_id == "MountainCarContinuous-v0"
    assert run.config.env_kwargs == {"goal_velocity": 0.01}

    from gymnasium.envs.classic_control import CartPoleEnv

    with pytest.raises(qrl.QrlError, match="registered id"):
        train("mlp", CartPoleEnv(), run_dir=tmp_path / "bad")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gym-packages", "no_such_module_x"], "cannot import 'no_such_module_x'"),
        (["--set", "env_wrapper=no.such.Wrapper"], "env_wrapper: cannot import 'no.such'"),
        (["--set", "env_wrapper=gymnasium.wrappers.NoSuch"], "has no class 'NoSuch'"),
        (
            ["--set", "env_wrapper=stable_baselines3.common.callbacks.EvalCallback"],
            "not a gymnasium.core.Wrapper subclass",
        ),
        (["--set", "callback=gymnasium.wrappers.ClipReward"], "not a stable_baselines3"),
        (["--set", "callback=[[1]]"], "callback: [1] is not a class"),
        (["--set", "normalize=maybe"], "normalize"),
        (["--set", "normalize={norm_obs: yes, clip: 3}"], "unknown normalize option 'clip'"),
        (["--set", "frame_stack=-2"], "frame_stack"),
        (["--set", "hyperparameters.frame_stack=1.5"], "frame_stack"),
    ],
)
def test_bad_task_options_get_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ["train", "--agent", "mlp", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r")]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


# -- the zoo's task options -----------------------------------------------------------------


def test_normalize_saves_statistics_that_evaluation_applies(tmp_path: Path) -> None:
    """SAC on Pendulum with VecNormalize: the statistics go beside the model and into every
    checkpoint; ``qrl evaluate`` plays exactly the episode SB3's evaluate_policy plays on
    the saved statistics, frozen."""
    run = train(
        "unentangled",
        "Pendulum-v1",
        timesteps=400,
        overrides=["algorithm=sac", "normalize=true", "eval_episodes=1"],
        run_dir=tmp_path / "run",
        progress=False,
        checkpoints=2,
    )
    stats = run.path / "vecnormalize.pkl"
    assert stats.is_file()
    assert sorted(p.name for p in run.checkpoint_dir.glob("model_vecnormalize_*")) == [
        "model_vecnormalize_200_steps.pkl",
        "model_vecnormalize_400_steps.pkl",
    ]
    ours = qrl.evaluate(run.path, episodes=1)
    venv = VecNormalize.load(str(stats), make_vec_env("Pendulum-v1", n_envs=1))
    venv.training, venv.norm_reward = False, False
    venv.seed(ours["seed"])
    model = SAC.load(run.path / "model.zip")
    returns, _ = evaluate_policy(model, venv, n_eval_episodes=1, return_episode_rewards=True)
    assert ours["returns"] == pytest.approx(returns, rel=1e-6)
    unnormalised = evaluate_policy(model, make_vec_env("Pendulum-v1", n_envs=1, seed=ours["seed"]))
    assert unnormalised[0] != pytest.approx(returns[0], rel=1e-3)  # the statistics matter

    stats.unlink()  # model.zip's own: the checkpoint's of its step
    assert qrl.evaluate(run.path, episodes=1)["returns"] == ours["returns"]
    (run.checkpoint_dir / "model_vecnormalize_400_steps.pkl").unlink()
    with pytest.raises(qrl.QrlError, match=r"trained with normalize.*missing"):
        qrl.evaluate(run.path, episodes=1)


def test_a_resumed_run_continues_its_normalisation_statistics(tmp_path: Path) -> None:
    overrides = ["normalize=true", "eval_episodes=0", "n_envs=2", "hyperparameters.n_steps=32"]
    overrides += ["hyperparameters.batch_size=32", "hyperparameters.n_epochs=1"]
    run = train("mlp", "CartPole-v1", timesteps=64, overrides=overrides, run_dir=tmp_path / "r")
    first = VecNormalize.load(str(run.path / "vecnormalize.pkl"), make_vec_env("CartPole-v1"))
    resume(run.path, timesteps=128, progress=False)
    second = VecNormalize.load(str(run.path / "vecnormalize.pkl"), make_vec_env("CartPole-v1"))
    assert second.obs_rms.count == pytest.approx(first.obs_rms.count + 64 + 2)  # + 2 resets
    for name in ("0.monitor.csv", "0.1.monitor.csv"):  # this session's, the first one's
        lines = (run.path / name).read_text().splitlines()
        assert [n for n, line in enumerate(lines) if not line[:1].isdigit()] == [0, 1]
    episodes = load_results(str(run.path))  # SB3's reader: both sessions, in time order
    assert episodes["l"].sum() <= 128 and len(episodes) >= 2
    assert list(episodes["t"]) == sorted(episodes["t"])
    with pytest.raises(qrl.QrlError, match="already trained 128 steps"):
        resume(run.path, timesteps=128, progress=False)


def test_a_checkpoint_without_its_statistics_is_skipped_on_resume(tmp_path: Path) -> None:
    overrides = ["normalize=true", "eval_episodes=0", "n_envs=1", "hyperparameters.n_steps=32"]
    overrides += ["hyperparameters.batch_size=32", "hyperparameters.n_epochs=1"]
    run = train("mlp", "CartPole-v1", timesteps=128, overrides=overrides, run_dir=tmp_path / "r",
                progress=False, checkpoints=4)  # fmt: skip
    (run.checkpoint_dir / "model_vecnormalize_128_steps.pkl").unlink()  # killed in between
    resume(run.path, timesteps=160, progress=False)
    assert (run.checkpoint_dir / "model_128_steps.zip.damaged").is_file()
    assert run.status().num_timesteps == 160
    assert (run.checkpoint_dir / "model_vecnormalize_160_steps.pkl").is_file()


def test_best_model_is_always_a_point_of_the_curve_after_a_resume(tmp_path: Path) -> None:
    overrides = ["eval_freq=32", "eval_freq_episodes=2", "eval_episodes=0", "n_envs=1"]
    overrides += ["hyperparameters.n_steps=32", "hyperparameters.batch_size=32"]
    run = train("mlp", "CartPole-v1", timesteps=256, overrides=overrides, run_dir=tmp_path / "r",
                progress=False, checkpoints=8)  # fmt: skip
    for steps, path in run.checkpoints():  # as if killed after the checkpoint at 64 steps
        if steps > 64:
            path.unlink()
    run.model_path.unlink()
    resume(run.path, progress=False)
    curve = run.curve()
    assert curve is not None and curve.timesteps == sorted(set(curve.timesteps))
    means = {t: float(np.mean(r)) for t, r in zip(curve.timesteps, curve.returns, strict=True)}
    best = PPO.load(run.path / "best_model.zip").num_timesteps
    assert best in means and means[best] == max(means.values())


def test_callbacks_of_evaluations_are_called_by_the_learning_curve(tmp_path: Path) -> None:
    stop = (
        "{stable_baselines3.common.callbacks.StopTrainingOnRewardThreshold: {reward_threshold: 0}}"
    )
    base = ["n_envs=1", "eval_episodes=0", "hyperparameters.n_steps=16", f"callback={stop}"]
    base += ["hyperparameters.batch_size=16"]
    run = train("mlp", "CartPole-v1", timesteps=5000, overrides=[*base, "eval_freq=100"],
                run_dir=tmp_path / "r", progress=False)  # fmt: skip
    assert run.status().num_timesteps < 100  # stopped at the first point, a new best >= 0
    with pytest.raises(qrl.QrlError, match="set eval_freq"):
        train("mlp", "CartPole-v1", overrides=[*base, "eval_freq=0"], run_dir=tmp_path / "s")


def test_env_wrappers_wrap_the_monitor_and_returns_are_the_tasks_own(tmp_path: Path) -> None:
    """A reward wrapper changes what the agent learns from, not what evaluations report
    (SB3's Monitor sits beneath the zoo's wrappers); frame_stack stacks observations."""
    wrapper = "{gymnasium.wrappers.ClipReward: {min_reward: 0, max_reward: 0.25}}"
    run = train(
        "unentangled",
        "qrl/CartPoleNoVel-v1",
        timesteps=64,
        overrides=[
            f"env_wrapper={wrapper}",
            "frame_stack=3",
            "eval_episodes=3",
            "hyperparameters.n_steps=32",
            "hyperparameters.batch_size=32",
            "hyperparameters.n_epochs=1",
        ],
        run_dir=tmp_path / "run",
        progress=False,
    )
    result = run.evaluation()
    assert result is not None
    assert result["returns"] == [float(n) for n in result["lengths"]]  # 1 per step, unclipped
    model = PPO.load(run.path / "model.zip")
    assert model.observation_space.shape == (3, 2)
    monitor = load_results(str(run.path))  # SB3's reader of monitor files
    assert list(monitor["r"]) == [float(n) for n in monitor["l"]]


def test_callbacks_by_class_path_and_from_python(tmp_path: Path) -> None:
    class Count(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def _on_step(self) -> bool:
            self.steps += 1
            return True

    count = Count()
    stop = "{stable_baselines3.common.callbacks.StopTrainingOnMaxEpisodes: {max_episodes: 2}}"
    run = train(
        "mlp",
        "CartPole-v1",
        timesteps=5000,
        overrides=[
            f"callback={stop}",
            "n_envs=1",
            "eval_episodes=0",
            "hyperparameters.n_steps=16",
            "hyperparameters.batch_size=16",
        ],
        run_dir=tmp_path / "run",
        progress=False,
        callback=count,
    )
    steps = run.status().num_timesteps
    assert steps < 1000  # stopped after two episodes, not 5000 steps
    assert count.steps == steps
    with pytest.raises(qrl.QrlError, match="not a Stable-Baselines3 BaseCallback"):
        train("mlp", "CartPole-v1", callback=[object()], run_dir=tmp_path / "bad")  # type: ignore[list-item]


def test_zoo_hyperparameter_keys_keep_the_zoos_meaning() -> None:
    from qrl.agents import resolve_config

    config = resolve_config(
        "mlp",
        "CartPole-v1",
        overrides=[
            "hyperparameters.normalize={norm_obs: true, norm_reward: false}",
            "hyperparameters.frame_stack=2",
            "hyperparameters.n_envs=4",
            "hyperparameters.n_timesteps=1000",
        ],
    )
    assert config.normalize == {"norm_obs": True, "norm_reward": False}
    assert (config.frame_stack, config.n_envs, config.timesteps) == (2, 4, 1000)
    assert not {"normalize", "frame_stack", "n_envs", "n_timesteps"} & set(config.hyperparameters)


# -- SB3's outputs --------------------------------------------------------------------------


def test_learning_curve_writes_sb3_eval_outputs_at_the_steps_tensorboard_shows(
    tmp_path: Path,
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(
        "unentangled",
        "CartPole-v1",
        timesteps=256,
        overrides=[
            "n_envs=3",
            "eval_freq=100",
            "eval_freq_episodes=2",
            "eval_episodes=2",
            "hyperparameters.n_steps=32",
            "hyperparameters.batch_size=32",
            "hyperparameters.n_epochs=1",
        ],
        run_dir=tmp_path / "run",
        progress=False,
    )
    curve = run.curve()
    assert curve is not None
    data = np.load(run.path / "evaluations.npz")
    assert sorted(data.files) == ["ep_lengths", "results", "timesteps"]
    assert list(data["timesteps"]) == curve.timesteps
    assert data["results"].tolist() == curve.returns
    assert data["ep_lengths"].shape == (len(curve.timesteps), 2)
    assert (run.path / "best_model.zip").is_file()
    events = EventAccumulator(str(run.path / "tb")).Reload()
    assert [e.step for e in events.Scalars("eval/mean_reward")] == curve.timesteps
    means = [float(np.mean(r)) for r in curve.returns]
    best = qrl.evaluate(run.path, best=True, episodes=2)
    assert best["num_timesteps"] == curve.timesteps[int(np.argmax(means))]
    assert len(list(run.path.glob("*.monitor.csv"))) == 3


def test_evaluate_best_without_a_curve_is_refused(tmp_path: Path) -> None:
    overrides = ["eval_episodes=0", "eval_freq=0", "hyperparameters.n_steps=4"]
    overrides += ["hyperparameters.batch_size=32"]
    run = train("mlp", "CartPole-v1", timesteps=32, overrides=overrides, run_dir=tmp_path / "r")
    with pytest.raises(qrl.QrlError, match=r"no best_model\.zip"):
        qrl.evaluate(run.path, best=True, episodes=1)


def test_qrl_curve_does_not_replace_a_curve_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train(
        "mlp",
        "CartPole-v1",
        timesteps=64,
        overrides=["eval_freq=32", "eval_freq_episodes=1", "eval_episodes=0"],
        run_dir=tmp_path / "r",
        progress=False,
    )
    assert main(["curve", str(run.path), "--episodes", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["curve", str(run.path), "--episodes", "1", "--overwrite"]) == 0
    curve = run.curve()
    assert curve is not None and curve.source == "checkpoints"
    data = np.load(run.path / "evaluations.npz")  # rewritten with it
    assert list(data["timesteps"]) == curve.timesteps


# -- models of the zoo and of plain SB3 -----------------------------------------------------


def _zoo_folder(tmp_path: Path) -> tuple[Path, float]:
    """A PPO CartPole model saved as rl-baselines3-zoo saves it (``<env>.zip``,
    ``<env>/config.yml``, ``<env>/vecnormalize.pkl``), with a learning-rate schedule of a
    module that is gone by evaluation time; and SB3's return of its first episode."""
    (tmp_path / "zooish.py").write_text("def schedule(progress):\n    return 3e-4 * progress\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import zooish

        venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0))
        model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, learning_rate=zooish.schedule)
        model.learn(128)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("zooish", None)
    (tmp_path / "zooish.py").unlink()
    log = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    (log / "CartPole-v1").mkdir(parents=True)
    model.save(log / "CartPole-v1.zip")
    venv.save(str(log / "CartPole-v1" / "vecnormalize.pkl"))
    hyper = OrderedDict([("n_envs", 2), ("normalize", True), ("policy", "MlpPolicy")])
    (log / "CartPole-v1" / "config.yml").write_text(yaml.dump(hyper))  # the zoo's dump
    venv.training, venv.norm_reward = False, False
    venv.seed(10_000)
    eval_env = VecNormalize.load(str(log / "CartPole-v1" / "vecnormalize.pkl"), make_vec_env(
        "CartPole-v1", n_envs=1))  # fmt: skip
    eval_env.training, eval_env.norm_reward = False, False
    eval_env.seed(10_000)
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=1, return_episode_rewards=True)
    return log / "CartPole-v1.zip", float(returns[0])


def test_a_zoo_model_is_evaluated_with_its_statistics_in_a_fresh_process(tmp_path: Path) -> None:
    model_file, sb3_return = _zoo_folder(tmp_path)
    done = _qrl(
        tmp_path, "evaluate", str(model_file), "--env", "CartPole-v1", "--episodes", "1",
        "--seed", "10000", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "VecNormalize statistics" in done.stderr
    assert json.loads(done.stdout)["returns"] == [sb3_return]


# -- tracking -------------------------------------------------------------------------------


def test_track_leaves_an_offline_wandb_run_with_config_and_quantum_scalars(
    tmp_path: Path,
) -> None:
    pytest.importorskip("wandb")
    secret = "wandb-test-secret-0123456789abcdef"
    env = ENV | {"WANDB_MODE": "offline", "WANDB_API_KEY": secret, "WANDB_SILENT": "true"}
    done = subprocess.run(
        ["qrl", "train", "--agent", "unentangled", "--env", "CartPole-v1", "--timesteps", "64",
         "--run-dir", "run", "--track", "--set", "eval_freq=32", *_tiny_ppo(), *QUIET],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith("run")
    [log] = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    records = log.read_bytes()
    for expected in (b"quantum/n_qubits", b"quantum/weight_norm", b"eval/mean_reward", b"n_qubits"):
        assert expected in records
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
