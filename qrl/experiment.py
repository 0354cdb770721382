"""Runs: train an agent into a self-describing folder, resume it, evaluate it.

A run folder holds::

    config.yaml      resolved configuration, versions, command, seed
    run.json         status (running, interrupted, finished), steps done, wall time, parameters
    model.zip        the latest model (saved at the end, or on interruption)
    checkpoints/     periodic checkpoints model_<steps>_steps.zip
    tb/              TensorBoard events
    curve.json       the learning curve: evaluations every ``eval_freq`` steps during training
    eval.json        the final evaluation
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from qrl.agents import build_model, load_model, policy_kwargs
from qrl.callbacks import (
    LearningCurve,
    ProgressBar,
    QuantumLogger,
    curve_point,
    executor_cost,
    read_curve,
)
from qrl.envs import make_envs, make_video_env
from qrl.errors import QrlError
from qrl.extractors import circuit_modules, parameter_counts, set_executor
from qrl.hardware.cost import Cost
from qrl.presets import (
    RunConfig,
    apply_overrides,
    load_env_preset,
    parse_override,
    read_yaml,
    resolve_config,
    task_settings,
    validate,
)

EVAL_SEED_OFFSET = 10_000  # evaluation episodes start from states training never saw
_PACKAGES = ("qrl", "torch", "stable-baselines3", "sb3-contrib", "pennylane", "gymnasium", "numpy")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Run:
    """A run folder and its configuration."""

    path: Path
    config: RunConfig

    @property
    def model_path(self) -> Path:
        """The latest saved model."""
        return self.path / "model.zip"

    @property
    def checkpoint_dir(self) -> Path:
        """Periodic checkpoints."""
        return self.path / "checkpoints"

    def status(self) -> dict[str, Any]:
        """Contents of run.json (empty before training starts)."""
        path = self.path / "run.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def write_status(self, **values: Any) -> None:
        """Update run.json."""
        status = self.status() | values
        (self.path / "run.json").write_text(json.dumps(status, indent=2) + "\n")

    @property
    def curve_path(self) -> Path:
        """The learning curve written during training."""
        return self.path / "curve.json"

    def curve(self) -> dict[str, Any] | None:
        """The learning curve (see :func:`qrl.callbacks.read_curve`), if one was recorded."""
        return read_curve(self.curve_path)

    def evaluation(self) -> dict[str, Any] | None:
        """The final evaluation, if the run finished (and was evaluated)."""
        path = self.path / "eval.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        return data if "mean_return" in data else None

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The periodic checkpoints as (timesteps, file), in order."""
        found = []
        for path in self.checkpoint_dir.glob("model_*_steps.zip"):
            match = re.fullmatch(r"model_(\d+)_steps\.zip", path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[Path, int] | None:
        """The checkpoint with the most timesteps, and that number."""
        found = self.checkpoints()
        if not found:
            return None
        steps, path = found[-1]
        return path, steps


def open_run(path: str | Path) -> Run:
    """Open an existing run folder.

    :raises QrlError: if the folder holds no qrl configuration
    """
    folder = Path(path)
    config_path = folder / "config.yaml"
    if not config_path.is_file():
        raise QrlError(f"{folder} is not a qrl run folder (no config.yaml)")
    return Run(folder, RunConfig.from_dict(read_yaml(config_path), str(config_path)))


def _default_run_dir(config: RunConfig, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.env.replace('/', '_')}-{config.agent}-s{config.seed}-{stamp}"
    path = root / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{name}-{suffix}"
    return path


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, bool | int | float | str) or value is None:
        out[prefix] = "None" if value is None else value
    else:
        out[prefix] = str(value)
    return out


def train(
    agent: str,
    env: str,
    seed: int = 0,
    timesteps: int | None = None,
    executor: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    run_dir: str | Path | None = None,
    progress: bool = True,
    checkpoints: int = 10,
    command: str | None = None,
) -> Run:
    """Train an agent on a task into a new run folder, then evaluate it.

    :param agent: agent preset name or path ("unentangled", "mlp", ...)
    :param env: env preset name or path, or any Gymnasium id
    :param seed: random seed
    :param timesteps: training budget; the env preset's by default
    :param executor: circuit executor of a quantum policy ("torch", "default.qubit", ...)
    :param overrides: ``key=value`` overrides such as ``policy.n_layers=3``
    :param run_dir: the run folder; ``runs/<env>-<agent>-s<seed>-<time>`` by default
    :param progress: show a progress bar on stderr
    :param checkpoints: number of periodic checkpoints over the run
    :param command: the command line that started the run, recorded in config.yaml
    :return: the run; its status is "interrupted" if training was stopped by Ctrl-C
    """
    config = resolve_config(agent, env, seed, timesteps, executor, overrides)
    path = Path(run_dir) if run_dir is not None else _default_run_dir(config)
    if (path / "config.yaml").exists():
        raise QrlError(f"{path} already holds a run; resume it with --resume {path}")
    envs = make_envs(config, seed=config.seed)
    model = build_model(config, envs)  # fails on bad input before the folder is made
    path.mkdir(parents=True, exist_ok=True)
    meta = {"versions": versions(), "command": command or " ".join(sys.argv)}
    meta["created"] = datetime.now().isoformat(timespec="seconds")
    (path / "config.yaml").write_text(yaml.safe_dump(config.to_dict() | meta, sort_keys=False))
    run = Run(path, config)
    run.write_status(
        status="running", num_timesteps=0, wall_time_s=0.0, parameters=parameter_counts(model)
    )
    return _learn(run, model, progress, checkpoints)


def resume(path: str | Path, timesteps: int | None = None, progress: bool = True) -> Run:
    """Continue an interrupted run from its latest checkpoint.

    :param path: the run folder
    :param timesteps: a new total budget (to extend a finished run)
    :param progress: show a progress bar on stderr
    :return: the run
    """
    run = open_run(path)
    if timesteps is not None:
        run.config.timesteps = int(timesteps)
        _update_config_file(run)
    latest = run.latest_checkpoint()
    if latest is None:
        raise QrlError(f"{run.path} has no checkpoint to resume from; start it again")
    checkpoint, steps = latest
    if steps >= run.config.timesteps and run.evaluation() is None and run.model_path.is_file():
        # Training finished but its final evaluation was interrupted: evaluate only.
        model = load_model(run.model_path, run.config.algorithm)
        _write_evaluation(run, model)
        return run
    if steps >= run.config.timesteps:
        raise QrlError(
            f"{run.path} already trained {steps} of {run.config.timesteps} steps; "
            "pass --timesteps N to extend it"
        )
    envs = make_envs(run.config, seed=run.config.seed + steps)
    model = load_model(checkpoint, run.config.algorithm, env=envs)
    curve = read_curve(run.curve_path, upto=steps)
    if curve is not None:  # evaluations after the checkpoint are repeated
        run.curve_path.write_text(json.dumps(curve) + "\n")
    if isinstance(model, OffPolicyAlgorithm):
        buffer = checkpoint.with_name(f"model_replay_buffer_{steps}_steps.pkl")
        if buffer.is_file():
            model.load_replay_buffer(buffer)
    print(f"resuming {run.path} from {steps} steps", file=sys.stderr)
    return _learn(run, model, progress, checkpoints=10)


def finetune(
    source: str | Path,
    executor: str,
    options: Mapping[str, Any] | None = None,
    timesteps: int = 256,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    eval_episodes: int = 0,
    progress: bool = True,
    command: str | None = None,
) -> Run:
    """Continue training a trained policy on another executor, into a new run folder.

    Typically a policy trained on the exact simulator, fine-tuned with shots and device
    noise (gradients by the parameter-shift rule). The new run counts its own steps from
    zero, so learning-rate and clip schedules start again over the fine-tuning budget; the
    learning curve is off (it would run on the device), and the final evaluation runs
    ``eval_episodes`` episodes on the device (0: none; use ``qrl evaluate``).

    :param source: the trained run folder
    :param executor: executor to train on ("qiskit.aer", "qiskit.remote", "default.qubit")
    :param options: its options (shots, backend, ...)
    :param timesteps: environment steps of fine-tuning
    :param overrides: ``key=value`` changes, e.g. ``hyperparameters.n_epochs=1``
    :param run_dir: the new run folder; ``<source>-finetune-<executor>`` by default
    :param eval_episodes: episodes of the final evaluation on the executor
    :param progress: show a progress bar
    :param command: the command line, recorded in config.yaml
    :return: the new run
    """
    src = open_run(source)
    if not src.model_path.is_file():
        raise QrlError(f"{src.path} has no model.zip: finish or resume its training first")
    if src.config.policy.get("extractor") != "quantum" and src.config.algorithm != "recurrent_ppo":
        raise QrlError(f"run {src.path} has a classical policy: nothing to run on {executor!r}")
    if timesteps < 1:
        raise QrlError(f"--timesteps must be at least 1, got {timesteps}")
    config = RunConfig.from_dict(src.config.to_dict())
    items = [parse_override(o) for o in overrides]
    apply_overrides(config, items)
    validate(config)
    config.policy["executor"] = executor
    config.policy["executor_options"] = dict(options or {})
    config.timesteps = int(timesteps)
    config.eval_freq = 0
    config.eval_episodes = int(eval_episodes)
    from qrl.hardware.evaluation import Variant

    tag = Variant("", executor, dict(options or {})).tag()
    default = src.path.with_name(f"{src.path.name}-finetune-{tag}")
    path = Path(run_dir) if run_dir is not None else default
    if (path / "config.yaml").exists():
        raise QrlError(f"{path} already holds a run; resume it with --resume {path}")
    changes = {k.split(".", 1)[1]: v for k, v in items if k.startswith("hyperparameters.")}
    envs = make_envs(config, seed=config.seed + 1_000_000)
    model = load_model(src.model_path, config.algorithm, env=envs, **changes)
    set_executor(model, executor, options)  # bad names, options, credentials: before the folder
    model.policy_kwargs = policy_kwargs(config.policy)  # saved models reload on the executor
    trained = int(model.num_timesteps)
    model.num_timesteps = 0
    path.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"versions": versions(), "command": command or " ".join(sys.argv)}
    meta |= {"finetuned_from": str(src.path), "finetuned_after_steps": trained}
    meta["created"] = datetime.now().isoformat(timespec="seconds")
    (path / "config.yaml").write_text(yaml.safe_dump(config.to_dict() | meta, sort_keys=False))
    run = Run(path, config)
    run.write_status(
        status="running", num_timesteps=0, wall_time_s=0.0, parameters=parameter_counts(model)
    )
    return _learn(run, model, progress, checkpoints=1)


def _update_config_file(run: Run) -> None:
    data = read_yaml(run.path / "config.yaml") | {"timesteps": run.config.timesteps}
    (run.path / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


THREADS_VARIABLE = "QRL_TORCH_THREADS"


def training_thread_count() -> int:
    """PyTorch's CPU threads for training: ``QRL_TORCH_THREADS``, or one.

    Policy networks and circuits are small: a second intra-op thread gains nothing, and on a
    2-core machine PyTorch's BLAS threads competing with NumPy's slowed the entangled agent's
    training threefold (docs/performance.md#threads).
    """
    value = os.environ.get(THREADS_VARIABLE, "1")
    try:
        return max(int(value), 1)
    except ValueError:
        raise QrlError(
            f"{THREADS_VARIABLE} must be a whole number of threads, got {value!r}"
        ) from None


@contextlib.contextmanager
def training_threads(count: int) -> Iterator[None]:
    """Run PyTorch on ``count`` CPU threads inside the block; restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _learn(run: Run, model: BaseAlgorithm, progress: bool, checkpoints: int) -> Run:
    """Train up to the configured budget; save on completion or interruption."""
    threads = training_thread_count()  # a bad setting stops before the run is touched
    config = run.config
    model.set_logger(configure(str(run.path / "tb"), ["tensorboard"]))
    every = max(config.timesteps // max(checkpoints, 1) // config.n_envs, 1)
    callbacks = [
        CheckpointCallback(
            every,
            str(run.checkpoint_dir),
            name_prefix="model",
            save_replay_buffer=isinstance(model, OffPolicyAlgorithm),
        ),
        QuantumLogger(_flat("", config.to_dict(), {})),
    ]
    curve = None
    if config.eval_freq > 0:
        curve = LearningCurve(
            run.curve_path,
            lambda n: make_envs(config, seed=config.seed + EVAL_SEED_OFFSET, n_envs=n),
            config.eval_freq,
            config.eval_freq_episodes,
            config.seed + EVAL_SEED_OFFSET,
        )
        callbacks.insert(0, curve)
    if progress:
        callbacks.append(ProgressBar(config.timesteps))
    remaining = config.timesteps - model.num_timesteps
    status = run.status()
    wall = float(status.get("wall_time_s", 0.0))
    eval_time = float(status.get("eval_time_s", 0.0))
    run.write_status(status="running", pid=os.getpid(), host=platform.node())
    start_steps = model.num_timesteps
    start = time.perf_counter()
    interrupted = False
    try:
        with training_threads(threads):
            model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for callback in callbacks:
            if isinstance(callback, ProgressBar | QuantumLogger | LearningCurve):
                callback.close()
    elapsed = time.perf_counter() - start
    evaluating = curve.seconds if curve is not None else 0.0
    # The final state is also the latest checkpoint, so --resume always starts from it.
    model.save(run.model_path)
    model.save(run.checkpoint_dir / f"model_{model.num_timesteps}_steps.zip")
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(
            run.checkpoint_dir / f"model_replay_buffer_{model.num_timesteps}_steps.pkl"
        )
    steps = model.num_timesteps - start_steps
    training = elapsed - evaluating
    extra: dict[str, Any] = {}
    cost = executor_cost(model)
    if cost is not None:  # circuits, shots and submissions sent, over every session
        total = Cost(**status.get("quantum_cost", {}))
        total.add(cost)
        extra["quantum_cost"] = total.to_dict()
    run.write_status(
        status="interrupted" if interrupted else "finished",
        num_timesteps=model.num_timesteps,
        wall_time_s=round(wall + elapsed, 2),
        eval_time_s=round(eval_time + evaluating, 2),
        steps_per_s=round(steps / training, 1) if training > 0 else None,
        **extra,
    )
    if not interrupted:
        _write_evaluation(run, model)
    return run


def curve_from_checkpoints(target: str | Path, episodes: int | None = None) -> dict[str, Any]:
    """Compute the learning curve of a finished run from its checkpoints, into curve.json.

    For runs trained without evaluations during training (``eval_freq: 0``, or an older
    qrl): the untrained policy (rebuilt from the run's seed, as training built it) and every
    checkpoint are evaluated on the same deterministic episodes the training-time curve uses.

    :param target: the run folder
    :param episodes: episodes per point; the run's ``eval_freq_episodes`` by default
    :return: the curve (see :func:`qrl.callbacks.read_curve`)
    """
    run = open_run(target)
    config = run.config
    episodes = int(episodes or config.eval_freq_episodes)
    if episodes < 1:
        raise QrlError(f"--episodes must be at least 1, got {episodes}")
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise QrlError(f"{run.path} has no checkpoints to compute a learning curve from")
    found: list[tuple[int, Path | None]] = [(0, None), *checkpoints]  # 0: untrained
    seed = config.seed + EVAL_SEED_OFFSET
    data: dict[str, Any] = {
        "freq": None,
        "episodes": episodes,
        "deterministic": True,
        "seed": seed,
        "source": "checkpoints",
        "timesteps": [],
        "returns": [],
        "lengths": [],
    }
    envs = make_envs(config, seed=seed, n_envs=episodes)
    try:
        for steps, checkpoint in found:
            if checkpoint is None:
                train_envs = make_envs(config, seed=config.seed)
                model = build_model(config, train_envs)
                train_envs.close()
            else:
                model = load_model(checkpoint, config.algorithm)
            returns, lengths = curve_point(model, envs, episodes, seed)
            data["timesteps"].append(steps)
            data["returns"].append(returns)
            data["lengths"].append(lengths)
    finally:
        envs.close()
    run.curve_path.write_text(json.dumps(data) + "\n")
    return data


def _write_evaluation(run: Run, model: BaseAlgorithm) -> None:
    """The final evaluation of a run, into eval.json (skipped with eval_episodes: 0)."""
    if run.config.eval_episodes > 0:
        result = evaluate_model(model, run.config, episodes=run.config.eval_episodes)
        path = run.path / "eval.json"
        if path.is_file():  # evaluations on other executors (qrl evaluate --executor) stay
            executors = json.loads(path.read_text()).get("executors")
            if executors:
                result["executors"] = executors
        path.write_text(json.dumps(result, indent=2) + "\n")


def evaluate_model(
    model: BaseAlgorithm,
    config: RunConfig,
    episodes: int = 100,
    seed: int | None = None,
    deterministic: bool = True,
    video: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a model on its task.

    :param model: the model
    :param config: its run configuration (task, environments)
    :param episodes: number of episodes
    :param seed: seed of the evaluation environments; the run's seed + 10000 by default
    :param deterministic: take the most likely action instead of sampling
    :param video: folder to record every episode into (single environment)
    :return: returns and lengths with their mean, std, min and max
    """
    if episodes < 1:
        raise QrlError(f"--episodes must be at least 1, got {episodes}")
    eval_seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    if video is not None:
        envs = make_video_env(config, eval_seed, Path(video), episodes)
    else:
        envs = make_envs(config, seed=eval_seed, n_envs=min(config.n_envs, episodes))
    try:
        returns, lengths = evaluate_policy(
            model,
            envs,
            n_eval_episodes=episodes,
            deterministic=deterministic,
            return_episode_rewards=True,
        )
    finally:
        envs.close()
    r = np.asarray(returns, dtype=float)
    n = np.asarray(lengths, dtype=float)
    executors = sorted({e.executor_name for _, e in circuit_modules(model)})
    result: dict[str, Any] = {
        "env": config.env_id,
        "agent": config.agent,
        "episodes": episodes,
        "deterministic": deterministic,
        "seed": eval_seed,
        "executor": executors[0] if len(executors) == 1 else (executors or None),
        "num_timesteps": int(model.num_timesteps),
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "min_return": float(r.min()),
        "max_return": float(r.max()),
        "mean_length": float(n.mean()),
        "std_length": float(n.std()),
        "min_length": int(n.min()),
        "max_length": int(n.max()),
        "parameters": parameter_counts(model),
        "returns": r.tolist(),
        "lengths": n.astype(int).tolist(),
    }
    if config.solved is not None:
        result["solved_threshold"] = config.solved
        result["solved"] = bool(r.mean() >= float(config.solved))
    return result


def locate(target: str | Path) -> tuple[Path, RunConfig | None]:
    """Find the model file and configuration of a run folder or a model file.

    A model file's configuration is looked up in its folder and the one above it (a run's
    ``checkpoints/``).
    """
    path = Path(target)
    if path.is_dir():
        run = open_run(path)
        if not run.model_path.is_file():
            latest = run.latest_checkpoint()
            if latest is None:
                raise QrlError(f"run {path} has no model.zip and no checkpoint yet")
            return latest[0], run.config
        return run.model_path, run.config
    if not path.exists():
        raise QrlError(f"{path} does not exist: give a run folder or a model .zip file")
    folder = run_folder_of(path)
    return path, None if folder is None else open_run(folder).config


def run_folder_of(model_path: Path) -> Path | None:
    """The run folder a model file belongs to (its own folder or, for checkpoints, the one
    above), or None."""
    for folder in (model_path.parent, model_path.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder
    return None


def load_target(
    target: str | Path, env: str | None = None, algorithm: str = "ppo"
) -> tuple[BaseAlgorithm, RunConfig, Path]:
    """Load a saved policy with its configuration: a run folder or a model .zip file.

    :param target: run folder or model file
    :param env: task of a model file outside a run folder (preset or Gymnasium id)
    :param algorithm: algorithm of a model file outside a run folder
    :return: the model, its configuration and the model file
    """
    model_path, config = locate(target)
    if config is None:
        if env is None:
            raise QrlError(f"{model_path} is not inside a run folder: pass --env (and --algo)")
        task = task_settings(*load_env_preset(env))
        config = RunConfig(agent=model_path.stem, algorithm=algorithm, **task)
    elif env is not None:
        raise QrlError("--env is only for model files outside a run folder")
    return load_model(model_path, config.algorithm), config, model_path


def evaluate(
    target: str | Path,
    episodes: int | None = None,
    executor: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    video: str | Path | None = None,
    env: str | None = None,
    algorithm: str = "ppo",
) -> dict[str, Any]:
    """Evaluate a saved policy: a run folder or a model .zip file.

    :param target: run folder or model file
    :param episodes: number of episodes; the env preset's (usually 100) by default
    :param executor: run the circuits on this executor instead of the trained one
    :param executor_options: options of that executor
    :param seed: seed of the evaluation environments
    :param deterministic: take the most likely action instead of sampling
    :param video: folder to record the episodes into
    :param env: task of a model file outside a run folder (preset or Gymnasium id)
    :param algorithm: algorithm of a model file outside a run folder
    :return: see :func:`evaluate_model`
    """
    model, config, _ = load_target(target, env, algorithm)
    if executor is not None:
        set_executor(model, executor, executor_options)
    return evaluate_model(
        model,
        config,
        episodes=episodes or config.eval_episodes,
        seed=seed,
        deterministic=deterministic,
        video=video,
    )
