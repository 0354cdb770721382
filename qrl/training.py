"""Training: train an agent into a new run folder, resume it, fine-tune it on another
executor. The run folder is :mod:`qrl.runs`'s; evaluation is :mod:`qrl.evaluation`'s."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from qrl.agents import build_model, load_model, policy_kwargs, resolve_config, validate
from qrl.callbacks import LearningCurve, ProgressBar, QuantumLogger
from qrl.envs import make_envs
from qrl.errors import QrlError
from qrl.evaluation.comparison import Variant
from qrl.evaluation.episodes import EVAL_SEED_OFFSET
from qrl.evaluation.models import write_final_evaluation
from qrl.executors.cost import Cost
from qrl.extractors import executor_cost, parameter_counts, set_executor
from qrl.presets import RunConfig, apply_overrides, parse_override
from qrl.runs import Run, default_run_dir, holds_run, open_run, versions


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
    path = Path(run_dir) if run_dir is not None else default_run_dir(config)
    if holds_run(path):
        raise QrlError(f"{path} already holds a run; resume it with --resume {path}")
    envs = make_envs(config, seed=config.seed)
    model = build_model(config, envs)  # fails on bad input before the folder is made
    path.mkdir(parents=True, exist_ok=True)
    meta = {"versions": versions(), "command": command or " ".join(sys.argv)}
    meta["created"] = datetime.now().isoformat(timespec="seconds")
    run = Run(path, config)
    run.write_config(config, meta)
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
        run.update_config(timesteps=run.config.timesteps)
    latest = run.latest_checkpoint()
    if latest is None:
        raise QrlError(f"{run.path} has no checkpoint to resume from; start it again")
    checkpoint, steps = latest
    if steps >= run.config.timesteps and run.evaluation() is None and run.model_path.is_file():
        # Training finished but its final evaluation was interrupted: evaluate only.
        model = load_model(run.model_path, run.config.algorithm)
        write_final_evaluation(run, model)
        return run
    if steps >= run.config.timesteps:
        raise QrlError(
            f"{run.path} already trained {steps} of {run.config.timesteps} steps; "
            "pass --timesteps N to extend it"
        )
    envs = make_envs(run.config, seed=run.config.seed + steps)
    model = load_model(checkpoint, run.config.algorithm, env=envs)
    curve = run.curve(upto=steps)
    if curve is not None:  # evaluations after the checkpoint are repeated
        run.write_curve(curve)
    if isinstance(model, OffPolicyAlgorithm):
        buffer = run.replay_buffer_path(steps)
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
    tag = Variant("", executor, dict(options or {})).tag()
    default = src.path.with_name(f"{src.path.name}-finetune-{tag}")
    path = Path(run_dir) if run_dir is not None else default
    if holds_run(path):
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
    run = Run(path, config)
    run.write_config(config, meta)
    run.write_status(
        status="running", num_timesteps=0, wall_time_s=0.0, parameters=parameter_counts(model)
    )
    return _learn(run, model, progress, checkpoints=1)


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
            run,
            config.eval_freq,
            config.eval_freq_episodes,
            config.seed + EVAL_SEED_OFFSET,
        )
        callbacks.insert(0, curve)
    if progress:
        callbacks.append(ProgressBar(config.timesteps))
    remaining = config.timesteps - model.num_timesteps
    status = run.status()
    wall, eval_time = status.wall_time_s, status.eval_time_s
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
            if isinstance(callback, ProgressBar | QuantumLogger):
                callback.close()
    elapsed = time.perf_counter() - start
    evaluating = curve.seconds if curve is not None else 0.0
    # The final state is also the latest checkpoint, so --resume always starts from it.
    model.save(run.model_path)
    model.save(run.checkpoint_path(model.num_timesteps))
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(run.replay_buffer_path(model.num_timesteps))
    steps = model.num_timesteps - start_steps
    training = elapsed - evaluating
    extra: dict[str, Any] = {}
    cost = executor_cost(model)
    if cost is not None:  # circuits, shots and submissions sent, over every session
        total = Cost(**(status.quantum_cost or {}))
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
        write_final_evaluation(run, model)
    return run
