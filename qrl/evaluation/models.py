"""Evaluating saved policies on one executor: load a run folder or a model file with its
configuration, play episodes (:mod:`qrl.evaluation.episodes`), report them in one JSON shape;
and learning curves computed from a run's checkpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from qrl.agents import build_model, load_model, model_file_problem, saved_algorithms
from qrl.envs import make_env, make_envs
from qrl.errors import QrlError
from qrl.evaluation.episodes import (
    EVAL_SEED_OFFSET,
    check_episodes,
    curve_point,
    episode_count,
    evaluation_seed,
    play_episodes,
    returns_and_lengths,
    statistics,
)
from qrl.extractors import circuit_modules, parameter_counts, set_executor
from qrl.presets import RunConfig, check_settings, load_env_preset, task_settings
from qrl.runs import Curve, Run, hold, locate, open_run


def curve_from_checkpoints(target: str | Path, episodes: int | None = None) -> Curve:
    """Compute the learning curve of a finished run from its checkpoints, into curve.json.

    For runs trained without evaluations during training (``eval_freq: 0``, or an older
    qrl): the untrained policy (rebuilt from the run's seed, as training built it) and every
    checkpoint are evaluated on the same deterministic episodes the training-time curve uses
    (:func:`qrl.evaluation.episodes.curve_point`: episode ``k`` from ``reset(seed=seed + k)``, the
    first episodes of ``qrl evaluate``).

    :param target: the run folder
    :param episodes: episodes per point; the run's ``eval_freq_episodes`` by default
    :return: the curve
    """
    check_episodes(episodes)
    run = open_run(target)
    config = run.config
    episodes = int(config.eval_freq_episodes if episodes is None else episodes)
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise QrlError(f"{run.path} has no checkpoints to compute a learning curve from")
    found: list[tuple[int, Path | None]] = [(0, None), *checkpoints]  # 0: untrained
    seed = config.seed + EVAL_SEED_OFFSET
    curve = Curve(None, episodes, seed, source="checkpoints")
    with hold(run.path):  # curve.json has one writer, as every file of the folder
        for steps, checkpoint in found:
            if checkpoint is None:
                train_envs = make_envs(config, seed=config.seed)
                model = build_model(config, train_envs)
                train_envs.close()
            else:
                model = load_model(checkpoint, config.algorithm)
            curve.add(steps, *curve_point(model, config, episodes, seed))
        run.write_curve(curve)
    return curve


def write_final_evaluation(run: Run, model: BaseAlgorithm) -> None:
    """The final evaluation of a run, into eval.json (skipped with eval_episodes: 0)."""
    if run.config.eval_episodes > 0:
        run.write_evaluation(evaluate_model(model, run.config, episodes=run.config.eval_episodes))


def evaluate_model(
    model: BaseAlgorithm,
    config: RunConfig,
    episodes: int = 100,
    seed: int | None = None,
    deterministic: bool = True,
    video: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a model on its task, on its current executor.

    Episode ``k`` starts from ``reset(seed=seed + k)``
    (:func:`~qrl.evaluation.episodes.play_episodes`), as in the learning curve and in
    ``qrl evaluate --executor``.

    :param model: the model
    :param config: its run configuration (task, environments)
    :param episodes: number of episodes
    :param seed: seed of episode 0; the run's seed + 10000 by default
    :param deterministic: take the most likely action instead of sampling
    :param video: folder to record every episode into (one environment at a time)
    :return: see :func:`evaluation_report`; ``n_envs`` (episodes played at once) is the
        configuration's, at most ``episodes``, and 1 with ``video``
    """
    check_episodes(episodes)
    eval_seed = evaluation_seed(seed, config)
    n_envs = 1 if video is not None else max(1, min(config.n_envs, episodes))
    played = play_episodes(
        model, config, episodes, eval_seed, deterministic, n_envs=n_envs, video=video
    )
    returns, lengths = returns_and_lengths(played)
    names = sorted({e.executor_name for _, e in circuit_modules(model)})
    executor: str | list[str] | None = names[0] if len(names) == 1 else (names or None)
    return evaluation_report(
        model, config, returns, lengths, eval_seed, deterministic, executor, n_envs
    )


def evaluation_report(
    model: BaseAlgorithm,
    config: RunConfig,
    returns: Sequence[float],
    lengths: Sequence[int],
    seed: int,
    deterministic: bool,
    executor: str | list[str] | None,
    n_envs: int,
) -> dict[str, Any]:
    """The JSON shape of every evaluation (eval.json, ``qrl evaluate --json`` on any executor).

    :param model: the evaluated model
    :param config: its run configuration
    :param returns: the episodes' returns, episode ``k`` started from ``reset(seed=seed + k)``
    :param lengths: their lengths
    :param seed: seed of episode 0
    :param deterministic: whether the most likely action was taken
    :param executor: the circuits' executor name (a list if they differ; None if classical)
    :param n_envs: episodes that were played at once
    :return: ``env``, ``agent``, ``episodes``, ``deterministic``, ``seed``, ``n_envs``,
        ``executor``, ``num_timesteps``, the :func:`~qrl.evaluation.episodes.statistics` of
        returns and lengths (sample standard deviation), ``parameters``, ``returns``, ``lengths``,
        ``solved_threshold`` (None if the task has none) and, with a threshold, ``solved``
        (whether the mean return reaches it)
    """
    result: dict[str, Any] = {
        "env": config.env_id,
        "agent": config.agent,
        "episodes": len(returns),
        "deterministic": deterministic,
        "seed": seed,
        "n_envs": n_envs,
        "executor": executor,
        "num_timesteps": int(model.num_timesteps),
    }
    result |= statistics(returns, lengths)
    result |= {
        "parameters": parameter_counts(model),
        "returns": [float(r) for r in returns],
        "lengths": [int(n) for n in lengths],
        "solved_threshold": config.solved,
    }
    if config.solved is not None:
        result["solved"] = bool(result["mean_return"] >= float(config.solved))
    return result


def load_target(
    target: str | Path, env: str | None = None, algorithm: str | None = "ppo"
) -> tuple[BaseAlgorithm, RunConfig, Path]:
    """Load a saved policy with its configuration: a run folder or a model .zip file.

    A model file outside a run folder is checked against the task it is evaluated on: a
    model of another algorithm, or one trained on other observations or actions, is
    refused with what it is.

    :param target: run folder or model file
    :param env: task of a model file outside a run folder (preset or Gymnasium id)
    :param algorithm: algorithm of a model file outside a run folder; None: the one the
        file says it was saved by (ppo if it does not say)
    :return: the model, its configuration and the model file
    """
    model_path, config = locate(target)
    if config is None:
        if env is None:
            raise QrlError(f"{model_path} is not inside a run folder: pass --env (and --algo)")
        if algorithm is None:
            saved = saved_algorithms(model_path) if model_file_problem(model_path) is None else None
            algorithm = saved[0] if saved else "ppo"
        task = task_settings(*load_env_preset(env))
        config = RunConfig(agent=model_path.stem, algorithm=str(algorithm).lower(), **task)
        check_settings(config)
        model = load_model(model_path, config.algorithm)
        _check_task(model, config, model_path)
        return model, config, model_path
    if env is not None:
        raise QrlError("--env is only for model files outside a run folder")
    check_settings(config)  # a config.yaml edited by hand
    return load_model(model_path, config.algorithm), config, model_path


def _check_task(model: BaseAlgorithm, config: RunConfig, model_path: Path) -> None:
    """Refuse a model trained on other observations or actions than the task's."""
    env = make_env(config)
    try:
        want = (env.observation_space, env.action_space)
    finally:
        env.close()
    have = (model.observation_space, model.action_space)
    if any(not _same_space(a, b) for a, b in zip(have, want, strict=True)):
        trained, task = ", ".join(map(_space, have)), ", ".join(map(_space, want))
        raise QrlError(
            f"{model_path} was trained on observations and actions {trained}, but "
            f"{config.env_id} has {task}: pass the --env it was trained on"
        )


def _space(space: Any) -> str:
    """A space in few words: ``Box(4,)``, ``Discrete(2)``."""
    if hasattr(space, "n"):
        return f"{type(space).__name__}({space.n})"
    return f"{type(space).__name__}{tuple(space.shape) if space.shape else '()'}"


def _same_space(a: Any, b: Any) -> bool:
    """Whether two spaces have the same kind and shape (and number of choices)."""
    if type(a) is not type(b) or a.shape != b.shape:
        return False
    return getattr(a, "n", None) == getattr(b, "n", None)


def evaluate(
    target: str | Path,
    episodes: int | None = None,
    executor: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    video: str | Path | None = None,
    env: str | None = None,
    algorithm: str | None = "ppo",
) -> dict[str, Any]:
    """Evaluate a saved policy: a run folder or a model .zip file.

    :param target: run folder or model file
    :param episodes: number of episodes; the env preset's (usually 100) by default
    :param executor: run the circuits on this executor instead of the trained one
    :param executor_options: options of that executor
    :param seed: seed of episode 0 (episode ``k`` starts from ``reset(seed=seed + k)``); the
        run's seed + 10000 by default
    :param deterministic: take the most likely action instead of sampling
    :param video: folder to record the episodes into
    :param env: task of a model file outside a run folder (preset or Gymnasium id)
    :param algorithm: algorithm of a model file outside a run folder (None: the file's)
    :return: see :func:`evaluate_model`
    """
    check_episodes(episodes)  # before the model is loaded
    model, config, _ = load_target(target, env, algorithm)
    if executor is not None:
        set_executor(model, executor, executor_options)
    return evaluate_model(
        model,
        config,
        episodes=episode_count(episodes, config),
        seed=seed,
        deterministic=deterministic,
        video=video,
    )
