"""Training: train an agent into a new run folder, resume it, fine-tune it on another
executor. The run folder is :mod:`qrl.runs`'s; evaluation is :mod:`qrl.evaluation`'s."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    StopTrainingOnNoModelImprovement,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecEnv

from qrl.agents import (
    build_model,
    load_model,
    policy_kwargs,
    resolve_config,
    saved_timesteps,
    validate,
)
from qrl.callbacks import LearningCurve, ProgressBar, QuantumLogger
from qrl.envs import make_envs, normalize_options, normalized
from qrl.errors import QrlError
from qrl.evaluation.comparison import Variant
from qrl.evaluation.episodes import EVAL_SEED_OFFSET
from qrl.evaluation.models import attach_normalizer, write_final_evaluation
from qrl.executors.cost import Cost
from qrl.extractors import executor_cost, parameter_counts, set_executor
from qrl.imports import load_classes
from qrl.presets import RunConfig, apply_overrides, override_items, parse_override
from qrl.runs import (
    Run,
    RunStatus,
    claim,
    default_run_dir,
    has_trained,
    hold,
    holds_run,
    open_run,
    save_model,
    save_normalizer,
    this_command,
    versions,
)
from qrl.threads import limited_threads, thread_count
from qrl.tracking import Tracking, check_tracking, tracking


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
    env: str | gym.Env[Any, Any] | EnvSpec,
    seed: int = 0,
    timesteps: int | None = None,
    executor: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    run_dir: str | Path | None = None,
    progress: bool = True,
    checkpoints: int = 10,
    command: str | None = None,
    gym_packages: Sequence[str] = (),
    callback: BaseCallback | Sequence[BaseCallback] | None = None,
    track: Tracking | None = None,
) -> Run:
    """Train an agent on a task into a new run folder, then evaluate it.

    The process holds the folder's lock (:func:`qrl.runs.hold`) until it returns: another
    process training, resuming or evaluating into it is refused. A folder whose run stopped
    before its first checkpoint (nothing trained to keep) is trained again from the start;
    one with a checkpoint is refused (resume it).

    :param agent: agent preset name or path ("unentangled", "mlp", ...)
    :param env: env preset name or path, or any Gymnasium id; or an environment made by
        ``gymnasium.make`` (or its ``EnvSpec``): its registered id and its keyword
        arguments are used, so that evaluations make more of it
    :param seed: random seed
    :param timesteps: training budget; the env preset's by default, rounded up to whole
        rollouts (the rounded budget is printed when it differs)
    :param executor: circuit executor of a quantum policy ("torch", "default.qubit", ...)
    :param overrides: ``key=value`` overrides such as ``policy.n_layers=3``
    :param run_dir: the run folder; ``runs/<env>-<agent>-s<seed>-<time>`` by default, a new
        folder made atomically (two runs started in the same second get two)
    :param progress: show a progress bar on stderr
    :param checkpoints: number of periodic checkpoints over the run
    :param command: the command line that started the run, recorded in config.yaml
    :param gym_packages: modules to import first, whose import registers tasks (recorded)
    :param callback: SB3 callbacks called during training, after qrl's own (Python objects,
        not recorded; the ``callback`` setting names classes that are)
    :param track: log the run to Weights & Biases (:mod:`qrl.tracking`)
    :return: the run; its status is "interrupted" if training was stopped by Ctrl-C
    :raises QrlError: on bad input, or if the folder holds a run or is in use
    """
    env, overrides, gym_packages = _task_of(env, overrides, gym_packages)
    config = resolve_config(agent, env, seed, timesteps, executor, overrides, gym_packages)
    command = command or this_command()
    session = Session(progress, checkpoints, _callbacks(callback), track)
    check_tracking(track)
    configured_callbacks(config)  # classes that refuse their arguments: before the folder
    if run_dir is None:
        model = build_model(config, make_envs(config, seed=config.seed))  # bad input first
        path = default_run_dir(config)
        with hold(path, command):
            return _start(Run(path, config), model, command, session)
    path = Path(run_dir)
    with claim(path, command):
        again = _start_again(path)
        model = build_model(config, make_envs(config, seed=config.seed))  # before any change
        run = Run(path, config)
        if again:
            run.clear()
        return _start(run, model, command, session)


def _task_of(
    env: str | gym.Env[Any, Any] | EnvSpec,
    overrides: Sequence[str] | Mapping[str, Any],
    gym_packages: Sequence[str],
) -> tuple[str, Sequence[str] | Mapping[str, Any], list[str]]:
    """The task name, overrides and task modules of an environment given as an object: its
    registered id, its ``gymnasium.make`` keyword arguments as ``env_kwargs``, and the
    module of its entry point (imported again by evaluations in other processes).

    :raises QrlError: for an environment that was not made from a registered id
    """
    if isinstance(env, str):
        return env, overrides, list(gym_packages)
    spec = env if isinstance(env, EnvSpec) else getattr(env, "spec", None)
    if spec is None or spec.id not in gym.registry:
        raise QrlError(
            f"cannot train on {env!r}: an environment object must come from gymnasium.make "
            "of a registered id, so that evaluations can make more of it; register your "
            "class with gymnasium.register(id=..., entry_point=...) and pass the id"
        )
    if spec.additional_wrappers:
        names = ", ".join(w.name for w in spec.additional_wrappers)
        raise QrlError(
            f"cannot train on {spec.id} wrapped in {names} from Python: give the wrappers as "
            "the env_wrapper setting (class paths), so that evaluations wrap alike"
        )
    items = override_items(overrides)
    if spec.max_episode_steps != gym.spec(spec.id).max_episode_steps:
        items.setdefault("max_episode_steps", spec.max_episode_steps)
    for key, value in spec.kwargs.items():
        if key != "render_mode":
            items.setdefault(f"env_kwargs.{key}", value)
    entry = spec.entry_point
    module = entry.partition(":")[0] if isinstance(entry, str) else entry.__module__
    packages = list(gym_packages)
    if module not in ("__main__", "") and not module.startswith("gymnasium."):
        packages.append(module)
    return spec.id, items, packages


@dataclass
class Session:
    """How one training session runs, apart from the configuration.

    :param progress: show a progress bar on stderr
    :param checkpoints: number of periodic checkpoints over the run
    :param callbacks: SB3 callbacks given from Python, called after qrl's own
    :param track: Weights & Biases tracking, or None
    """

    progress: bool = True
    checkpoints: int = 10
    callbacks: list[BaseCallback] = field(default_factory=list)
    track: Tracking | None = None


def _callbacks(callback: BaseCallback | Sequence[BaseCallback] | None) -> list[BaseCallback]:
    """The callbacks given from Python as a list, each checked."""
    if callback is None:
        return []
    given = [callback] if isinstance(callback, BaseCallback) else list(callback)
    for item in given:
        if not isinstance(item, BaseCallback):
            raise QrlError(f"callback {item!r} is not a Stable-Baselines3 BaseCallback")
    return given


def _start_again(path: Path) -> bool:
    """Whether a folder holds a run that stopped before its first checkpoint, to train
    again from the start (said on stderr); False for a folder without a run.

    :raises QrlError: if the folder holds a run with a checkpoint or a model
    """
    if not holds_run(path):
        return False
    if has_trained(path):
        raise QrlError(f"{path} already holds a run; continue it with qrl train --resume {path}")
    print(
        f"qrl: {path} holds a run that stopped before its first checkpoint (nothing "
        "trained to keep): starting it again",
        file=sys.stderr,
    )
    return True


def _start(
    run: Run,
    model: BaseAlgorithm,
    command: str,
    session: Session,
    meta: Mapping[str, Any] | None = None,
    seed_offset: int = 0,
    stats: Path | None = None,
) -> Run:
    """Write a new run's config.yaml and run.json, then train it on environments that
    record into the folder (monitors, ``VecNormalize`` statistics)."""
    _close_env(model)  # built before the folder, to check the configuration
    model.set_env(training_envs(run, model.num_timesteps + seed_offset, stats))
    info = {"versions": versions(), "command": command, **(meta or {})}
    info["created"] = datetime.now().isoformat(timespec="seconds")
    run.write_config(run.config, info)
    run.write_status(
        status="running", num_timesteps=0, wall_time_s=0.0, parameters=parameter_counts(model)
    )
    return _learn(run, model, session)


def _close_env(model: BaseAlgorithm) -> None:
    env = model.get_env()
    if env is not None:
        env.close()


def training_envs(run: Run, steps: int, stats: Path | None = None) -> VecEnv:
    """The environments a run trains on from ``steps`` on: seeded with the run's seed plus
    ``steps``, monitored into the run folder, normalised when the configuration says so.

    :param run: the run
    :param steps: the steps already trained
    :param stats: ``VecNormalize`` statistics to continue from
    """
    envs = make_envs(run.config, seed=run.config.seed + steps, monitor_dir=run.path)
    return normalized(envs, run.config, stats)


def resume(
    path: str | Path,
    timesteps: int | None = None,
    progress: bool = True,
    command: str | None = None,
    callback: BaseCallback | Sequence[BaseCallback] | None = None,
    track: Tracking | None = None,
) -> Run:
    """Continue a run from its newest readable checkpoint.

    A damaged newest checkpoint (a process killed while saving it) is skipped, set aside as
    ``<name>.damaged`` and named on stderr. A run that stopped before its first checkpoint
    is trained from the start with its recorded configuration. Nothing in the folder
    changes before every check has passed.

    :param path: the run folder
    :param timesteps: a new total budget (to extend a finished run)
    :param progress: show a progress bar on stderr
    :param command: the command line, for the message of a process refused meanwhile
    :param callback: SB3 callbacks called during training, after qrl's own
    :param track: log the session to Weights & Biases (:mod:`qrl.tracking`)
    :return: the run
    :raises QrlError: if the folder is in use, a file of it is damaged, or the budget is
        already trained
    """
    folder = Path(path)
    if not holds_run(folder):
        open_run(folder)  # the error for a folder that holds no run
    session = Session(progress, 10, _callbacks(callback), track)
    with hold(folder, command):
        return _resume(open_run(folder), timesteps, session)


def _resume(run: Run, timesteps: int | None, session: Session) -> Run:
    run.status()  # a damaged run.json or eval.json is an error before anything changes
    evaluated = run.evaluation()
    budget = run.config.timesteps if timesteps is None else int(timesteps)
    if budget < 1:
        raise QrlError(f"--timesteps must be at least 1, got {budget}")
    found = run.readable_checkpoint(normalized=normalize_options(run.config) is not None)
    if found is None and not run.model_path.is_file():
        return _resume_from_start(run, budget, session)
    if found is None:  # checkpoints deleted (to save space): the latest model is the state
        steps = load_model(run.model_path, run.config.algorithm).num_timesteps
        found = run.model_path, steps, []
    checkpoint, steps, skipped = found
    unevaluated = evaluated is None and run.config.eval_episodes > 0
    if steps >= budget and unevaluated and run.model_path.is_file() and not skipped:
        # Training finished but its final evaluation was interrupted: evaluate only.
        model = load_model(run.model_path, run.config.algorithm)
        attach_normalizer(model, run.config, run.normalizer_path())
        write_final_evaluation(run, model)
        return run
    if steps >= budget and timesteps is None:
        raise QrlError(
            f"{run.path} already trained {steps} of {run.config.timesteps} steps; "
            f"pass --timesteps N (more than {steps}) to extend it"
        )
    if steps >= budget:
        raise QrlError(
            f"{run.path} already trained {steps} steps, --timesteps {budget} is no more; "
            f"pass more than {steps} to extend it (nothing was changed)"
        )
    stats = run.checkpoint_normalizer_path(steps)
    if checkpoint == run.model_path:
        stats = run.normalizer_path()
    if normalize_options(run.config) is not None and not stats.is_file():
        raise QrlError(
            f"{run.path} normalizes observations but {stats.name} is missing: the "
            "statistics of that checkpoint are needed to continue it"
        )
    _drop_best_after(run, steps)
    run.close_monitors(since=checkpoint.stat().st_mtime)  # episodes after it: trained again
    envs = training_envs(run, steps, stats if stats.is_file() else None)
    model = load_model(checkpoint, run.config.algorithm, env=envs)
    if budget != run.config.timesteps:  # every check passed: the folder may change now
        run.config.timesteps = budget
        run.update_config(timesteps=budget)
    for damaged, problem in skipped:
        target = run.set_aside(damaged)
        print(
            f"qrl: skipped {damaged.relative_to(run.path)} ({problem}); renamed it {target.name}",
            file=sys.stderr,
        )
    curve = run.curve(upto=steps)
    if curve is not None:  # evaluations after the checkpoint are repeated
        run.write_curve(curve)
    if isinstance(model, OffPolicyAlgorithm):
        buffer = run.replay_buffer_path(steps)
        if buffer.is_file():
            model.load_replay_buffer(buffer)
    print(f"qrl: resuming {run.path} from {checkpoint.name} ({steps} steps)", file=sys.stderr)
    return _learn(run, model, session)


def _drop_best_after(run: Run, steps: int) -> None:
    """Remove a best_model.zip trained after the checkpoint a run resumes from: its point
    is no longer on the learning curve (the curve is cut back to the checkpoint)."""
    best = run.best_model_path
    trained = saved_timesteps(best) if best.is_file() else None
    if trained is not None and trained > steps:
        best.unlink()
        run.normalizer_path(best=True).unlink(missing_ok=True)
        print(
            f"qrl: removed best_model.zip ({trained} steps, after the checkpoint); the "
            "resumed curve saves its own",
            file=sys.stderr,
        )


def _resume_from_start(run: Run, budget: int, session: Session) -> Run:
    """``--resume`` of a run that stopped before its first checkpoint: train it from the
    start with its recorded configuration (a fine-tuning run starts from its source's
    model, which its own ``qrl finetune`` command loads again)."""
    meta = run.meta()
    if meta.get("finetuned_from"):
        raise QrlError(
            f"{run.path} stopped before its first checkpoint and fine-tunes "
            f"{meta['finetuned_from']}: run its command again to start it over: "
            f"{meta.get('command', 'qrl finetune ...')}"
        )
    model = build_model(run.config, make_envs(run.config, seed=run.config.seed))
    print(
        f"qrl: {run.path} has no checkpoint (it stopped before its first one): training it "
        "from the start with its recorded configuration",
        file=sys.stderr,
    )
    run.clear(keep_config=True)
    if budget != run.config.timesteps:
        run.config.timesteps = budget
        run.update_config(timesteps=budget)
    run.write_status(
        status="running", num_timesteps=0, wall_time_s=0.0, parameters=parameter_counts(model)
    )
    _close_env(model)
    model.set_env(training_envs(run, 0))
    return _learn(run, model, session)


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

    SB3 trains whole rollouts (``n_steps`` x ``n_envs`` steps for PPO): ``timesteps`` is
    rounded up to whole rollouts, and the rounded number is printed before the first
    submission; a budget below one rollout is refused with the minimum, and the setting
    that gives shorter rollouts (``--set hyperparameters.n_steps=N``).

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
    command = command or this_command()
    with claim(path, command):
        again = _start_again(path)
        changes = {k.split(".", 1)[1]: v for k, v in items if k.startswith("hyperparameters.")}
        envs = make_envs(config, seed=config.seed + 1_000_000)
        model = load_model(src.model_path, config.algorithm, env=envs, **changes)
        _check_one_rollout(model, config.timesteps)
        set_executor(model, executor, options)  # bad names, options, credentials: first
        model.policy_kwargs = policy_kwargs(
            config.policy, config.algorithm
        )  # saved models reload on it
        trained = int(model.num_timesteps)
        model.num_timesteps = 0
        run = Run(path, config)
        if again:
            run.clear()
        meta = {"finetuned_from": str(src.path), "finetuned_after_steps": trained}
        session = Session(progress, checkpoints=1)
        stats = src.normalizer_path()
        return _start(
            run,
            model,
            command,
            session,
            meta,
            seed_offset=1_000_000,
            stats=stats if stats.is_file() else None,
        )


def rollout_steps(model: BaseAlgorithm) -> tuple[int, str]:
    """The environment steps SB3 collects between two checks of the budget, and why.

    On-policy algorithms collect whole rollouts of ``n_steps`` x ``n_envs`` steps;
    off-policy ones ``train_freq`` steps per environment (or whole episodes).

    :return: the steps, and a description such as ``n_steps 32 x n_envs 8``
    """
    if isinstance(model, OnPolicyAlgorithm):
        return model.n_steps * model.n_envs, f"n_steps {model.n_steps} x n_envs {model.n_envs}"
    freq = getattr(model, "train_freq", None)
    if isinstance(freq, TrainFreq) and freq.unit == TrainFrequencyUnit.STEP:
        steps = freq.frequency * model.n_envs
        return steps, f"train_freq {freq.frequency} x n_envs {model.n_envs}"
    return model.n_envs, f"n_envs {model.n_envs}"


def planned_timesteps(model: BaseAlgorithm, budget: int) -> int:
    """The step count training will end at: ``budget`` rounded up to whole rollouts from
    the model's current count (what SB3's ``learn`` does)."""
    chunk, _ = rollout_steps(model)
    remaining = max(budget - model.num_timesteps, 0)
    return model.num_timesteps + -(-remaining // chunk) * chunk


def _check_one_rollout(model: BaseAlgorithm, timesteps: int) -> None:
    """Refuse a fine-tuning budget below one rollout: it would train a whole one."""
    chunk, why = rollout_steps(model)
    if timesteps >= chunk:
        return
    hint = ""
    if isinstance(model, OnPolicyAlgorithm):
        n_steps = max(timesteps // model.n_envs, 1)
        hint = (
            f", or shorten the rollouts with --set hyperparameters.n_steps={n_steps} "
            f"({n_steps} x {model.n_envs} = {n_steps * model.n_envs} steps)"
        )
    raise QrlError(
        f"--timesteps {timesteps} is less than one rollout ({why} = {chunk} steps), which "
        f"SB3 always trains whole: give --timesteps {chunk} or more{hint}"
    )


class _StatusWriter(BaseCallback):
    """Write run.json's steps, wall time and executor cost at every checkpoint, so that a
    run killed outright (no chance to save) still records the time it trained up to the
    checkpoint it resumes from.

    :param run: the run
    :param every: calls between checkpoints (CheckpointCallback's ``save_freq``)
    :param before: run.json as the session started (time and cost of earlier sessions)
    :param start: ``time.perf_counter()`` at the start of the session
    :param curve: the learning-curve callback, whose evaluation time is counted apart
    """

    def __init__(
        self,
        run: Run,
        every: int,
        before: RunStatus,
        start: float,
        curve: LearningCurve | None,
    ) -> None:
        super().__init__()
        self.run, self.every, self.before = run, every, before
        self.start, self.curve = start, curve

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            self.run.write_status(**_times(self.before, self.start, self.curve, self.model))
        return True


def _times(
    before: RunStatus, start: float, curve: LearningCurve | None, model: BaseAlgorithm
) -> dict[str, Any]:
    """run.json's steps, wall and evaluation time, and cost, over every session so far."""
    evaluating = curve.seconds if curve is not None else 0.0
    out: dict[str, Any] = {
        "num_timesteps": model.num_timesteps,
        "wall_time_s": round(before.wall_time_s + time.perf_counter() - start, 2),
        "eval_time_s": round(before.eval_time_s + evaluating, 2),
    }
    cost = executor_cost(model)
    if cost is not None:  # circuits, shots and submissions sent, over every session
        total = Cost(**(before.quantum_cost or {}))
        total.add(cost)
        out["quantum_cost"] = total.to_dict()
    return out


def _learn(run: Run, model: BaseAlgorithm, session: Session) -> Run:
    """Train up to the configured budget, rounded up to whole rollouts (said on stderr when
    it differs); save on completion or interruption."""
    threads = thread_count()  # a bad setting stops before the run is touched
    config = run.config
    planned = planned_timesteps(model, config.timesteps)
    if planned != config.timesteps:
        chunk, why = rollout_steps(model)
        print(
            f"qrl: training {planned} steps, not {config.timesteps}: "
            f"{config.algorithm} collects whole rollouts of {why} = {chunk} steps",
            file=sys.stderr,
            flush=True,
        )
    configured = configured_callbacks(config)  # bad classes or arguments: before any change
    run.trim_tensorboard(model.num_timesteps)  # steps after the checkpoint are logged again
    with tracking(session.track, run):  # before the TensorBoard writer, which W&B mirrors
        formats = ["tensorboard", *(["stdout"] if model.verbose >= 1 else [])]
        model.set_logger(configure(str(run.path / "tb"), formats))
        return _learn_logged(run, model, session, threads, planned, configured)


# SB3's callbacks that act on evaluations: called by the learning curve (an EvalCallback)
# on a new best point, or after every point, as EvalCallback calls them.
ON_NEW_BEST = (StopTrainingOnRewardThreshold,)
AFTER_EVALUATION = (StopTrainingOnNoModelImprovement,)


@dataclass
class Configured:
    """The callbacks of the ``callback`` setting, by where they go.

    :param every_step: called at every step, after qrl's own
    :param on_new_best: called by the learning curve on a new best point
    :param after_evaluation: called by the learning curve after every point
    """

    every_step: list[BaseCallback] = field(default_factory=list)
    on_new_best: BaseCallback | None = None
    after_evaluation: BaseCallback | None = None


def configured_callbacks(config: RunConfig) -> Configured:
    """The SB3 callbacks the configuration's ``callback`` setting names, made.

    :raises QrlError: for a class that refuses its arguments, or a callback of evaluations
        (``StopTrainingOnRewardThreshold``, ``StopTrainingOnNoModelImprovement``) without
        evaluations during training, or two of one kind
    """
    made = Configured()
    for cls, kwargs in load_classes(config.callback, BaseCallback, "callback"):
        try:
            callback = cls(**kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            raise QrlError(f"callback {cls.__qualname__}{kwargs or ''}: {exc}") from None
        slot = "on_new_best" if isinstance(callback, ON_NEW_BEST) else None
        slot = "after_evaluation" if isinstance(callback, AFTER_EVALUATION) else slot
        if slot is None:
            made.every_step.append(callback)
            continue
        if config.eval_freq <= 0:
            raise QrlError(
                f"callback {cls.__qualname__} acts on evaluations during training: "
                "set eval_freq (e.g. --set eval_freq=5000)"
            )
        if getattr(made, slot) is not None:
            raise QrlError(f"callback: one {cls.__qualname__}-like callback at most")
        setattr(made, slot, callback)
    return made


def _learn_logged(
    run: Run,
    model: BaseAlgorithm,
    session: Session,
    threads: int,
    planned: int,
    configured: Configured,
) -> Run:
    """Train with the logger set up (see :func:`_learn`)."""
    config = run.config
    every = max(planned // max(session.checkpoints, 1) // config.n_envs, 1)
    callbacks: list[BaseCallback] = [
        CheckpointCallback(
            every,
            str(run.checkpoint_dir),
            name_prefix="model",
            save_replay_buffer=isinstance(model, OffPolicyAlgorithm),
            save_vecnormalize=True,
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
            callback_on_new_best=configured.on_new_best,
            callback_after_eval=configured.after_evaluation,
        )
        callbacks.insert(0, curve)
    before = run.status()
    start = time.perf_counter()
    callbacks.append(_StatusWriter(run, every, before, start, curve))
    if session.progress:
        callbacks.append(ProgressBar(planned))
    callbacks += [*configured.every_step, *session.callbacks]
    remaining = config.timesteps - model.num_timesteps
    run.write_status(status="running", pid=os.getpid(), host=platform.node())
    start_steps = model.num_timesteps
    interrupted = False
    try:
        with limited_threads(threads):
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
    # Statistics first: a model file is never newer than the statistics saved with it.
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        save_normalizer(normalizer, run.checkpoint_normalizer_path(model.num_timesteps))
        save_normalizer(normalizer, run.normalizer_path())
    save_model(model, run.model_path)
    save_model(model, run.checkpoint_path(model.num_timesteps))
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(run.replay_buffer_path(model.num_timesteps))
    steps = model.num_timesteps - start_steps
    training = elapsed - evaluating
    run.write_status(
        status="interrupted" if interrupted else "finished",
        steps_per_s=round(steps / training, 1) if training > 0 else None,
        **_times(before, start, curve, model),
    )
    if not interrupted:
        with limited_threads(threads):
            write_final_evaluation(run, model)
    return run
