"""Evaluating saved policies on one executor: load a run folder or a model file with its
configuration, play episodes (:mod:`qrl.evaluation.episodes`), report them in one JSON shape;
and learning curves computed from a run's checkpoints."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

from qrl.agents import (
    EVALUATION_OBJECTS,
    build_model,
    load_model,
    model_file_problem,
    saved_algorithms,
    saved_timesteps,
)
from qrl.envs import load_normalizer, make_env, make_envs, normalize_options, normalized
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
from qrl.runs import Curve, Run, hold, locate, open_run, run_folder_of
from qrl.threads import limited_threads, thread_count


def curve_from_checkpoints(
    target: str | Path, episodes: int | None = None, overwrite: bool = False
) -> Curve:
    """Compute the learning curve of a finished run from its checkpoints, into curve.json.

    For runs trained without evaluations during training (``eval_freq: 0``, or an older
    qrl): the untrained policy (rebuilt from the run's seed, as training built it) and every
    checkpoint are evaluated on the same deterministic episodes the training-time curve uses
    (:func:`qrl.evaluation.episodes.curve_point`: episode ``k`` from ``reset(seed=seed + k)``, the
    first episodes of ``qrl evaluate``).

    :param target: the run folder
    :param episodes: episodes per point; the run's ``eval_freq_episodes`` by default
    :param overwrite: replace a curve the run already has (refused otherwise)
    :return: the curve
    :raises QrlError: if the run has a curve and ``overwrite`` is not set
    """
    check_episodes(episodes)
    run = open_run(target)
    config = run.config
    episodes = int(config.eval_freq_episodes if episodes is None else episodes)
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise QrlError(f"{run.path} has no checkpoints to compute a learning curve from")
    existing = run.curve()
    if existing is not None and not overwrite:
        raise QrlError(
            f"{run.path} already has a learning curve (curve.json, {len(existing.timesteps)} "
            f"points from {existing.source}); pass --overwrite to replace it"
        )
    found: list[tuple[int, Path | None]] = [(0, None), *checkpoints]  # 0: untrained
    seed = config.seed + EVAL_SEED_OFFSET
    curve = Curve(None, episodes, seed, source="checkpoints")
    with hold(run.path):  # curve.json has one writer, as every file of the folder
        for steps, checkpoint in found:
            if checkpoint is None:  # as training built it
                model = build_model(config, normalized(make_envs(config, config.seed), config))
            else:
                model = load_model(checkpoint, config.algorithm, custom_objects=EVALUATION_OBJECTS)
                attach_normalizer(model, config, _run_normalizer(run, checkpoint))
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
    with limited_threads(thread_count()):
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
    target: str | Path,
    env: str | None = None,
    algorithm: str | None = "ppo",
    best: bool = False,
    gym_packages: Sequence[str] = (),
) -> tuple[BaseAlgorithm, RunConfig, Path]:
    """Load a saved policy with its configuration, ready to evaluate: a run folder or a
    model .zip file (qrl's, rl-baselines3-zoo's or plain SB3's).

    The ``VecNormalize`` statistics saved with the model are attached to it, frozen
    (:func:`attach_normalizer`): the run's vecnormalize.pkl, or for a model file outside a
    run folder a vecnormalize.pkl beside it or in rl-baselines3-zoo's ``<name>/`` folder
    beside it, whose config.yml also gives the zoo's ``frame_stack`` and ``env_wrapper``. A
    model file outside a run folder is checked against the task it is evaluated on: a
    model of another algorithm, or one trained on other observations or actions, is
    refused with what it is.

    :param target: run folder or model file
    :param env: task of a model file outside a run folder (preset or Gymnasium id)
    :param algorithm: algorithm of a model file outside a run folder; None: the one the
        file says it was saved by (ppo if it does not say)
    :param best: a run folder's best_model.zip (the best learning-curve point) instead of
        its model.zip
    :param gym_packages: modules to import first, whose import registers the task
    :return: the model, its configuration and the model file
    """
    model_path, config = locate(target)
    if best:
        model_path = _best_model(Path(target), config)
    if config is None:
        if env is None:
            raise QrlError(f"{model_path} is not inside a run folder: pass --env (and --algo)")
        if algorithm is None:
            saved = saved_algorithms(model_path) if model_file_problem(model_path) is None else None
            algorithm = saved[0] if saved else "ppo"
        task = task_settings(*load_env_preset(env, gym_packages))
        config = RunConfig(agent=model_path.stem, algorithm=str(algorithm).lower(), **task)
        config.gym_packages = [*config.gym_packages, *gym_packages]
        stats = zoo_settings(model_path, config)
        check_settings(config)
        model = load_model(model_path, config.algorithm, custom_objects=EVALUATION_OBJECTS)
        _check_task(model, config, model_path)
        attach_normalizer(model, config, stats)
        return model, config, model_path
    if env is not None:
        raise QrlError("--env is only for model files outside a run folder")
    check_settings(config)  # a config.yaml edited by hand
    model = load_model(model_path, config.algorithm, custom_objects=EVALUATION_OBJECTS)
    run_dir = run_folder_of(model_path)
    if run_dir is not None:
        attach_normalizer(model, config, _run_normalizer(Run(run_dir, config), model_path))
    return model, config, model_path


def _best_model(target: Path, config: RunConfig | None) -> Path:
    """A run folder's best_model.zip, or a clear error."""
    if config is None or not target.is_dir():
        raise QrlError("--best takes a run folder (it evaluates the folder's best_model.zip)")
    path = Run(target, config).best_model_path
    if not path.is_file():
        raise QrlError(
            f"{target} has no best_model.zip: it is saved by evaluations during training "
            "(eval_freq > 0)"
        )
    return path


def _run_normalizer(run: Run, model_path: Path) -> Path:
    """The ``VecNormalize`` statistics saved with a model file of a run folder."""
    if model_path == run.best_model_path:
        return run.normalizer_path(best=True)
    match = re.fullmatch(r"model_(\d+)_steps\.zip", model_path.name)
    if match and model_path.parent == run.checkpoint_dir:
        return run.checkpoint_normalizer_path(int(match.group(1)))
    steps = saved_timesteps(model_path)  # model.zip: the statistics of its own step
    saved = None if steps is None else run.checkpoint_normalizer_path(steps)
    return saved if saved is not None and saved.is_file() else run.normalizer_path()


def attach_normalizer(model: BaseAlgorithm, config: RunConfig, stats: Path | None) -> None:
    """Give a loaded model the ``VecNormalize`` statistics it was trained with, frozen (no
    updates, rewards as they are): the episode runner normalises observations with
    ``model.get_vec_normalize_env()``.

    :param model: the loaded model
    :param config: its configuration
    :param stats: the saved statistics, or None
    :raises QrlError: for a configuration with ``normalize`` and no statistics
    """
    if stats is None or not stats.is_file():
        if normalize_options(config) is not None:
            raise QrlError(
                f"the model was trained with normalize, but its statistics "
                f"({stats.name if stats else 'vecnormalize.pkl'}) are missing"
            )
        return
    normalizer = load_normalizer(stats, make_envs(config, seed=0, n_envs=model.n_envs))
    normalizer.training = False
    normalizer.norm_reward = False
    model.set_env(normalizer)


def zoo_settings(model_path: Path, config: RunConfig) -> Path | None:
    """Read what rl-baselines3-zoo saved beside a model file into its configuration: the
    ``frame_stack`` and ``env_wrapper`` of ``<name>/config.yml``, and where its
    ``VecNormalize`` statistics are.

    The zoo saves ``<log>/<env>.zip`` with ``<log>/<env>/config.yml`` and
    ``<log>/<env>/vecnormalize.pkl``; plain SB3 users keep vecnormalize.pkl beside the model.

    :param model_path: the model file
    :param config: the configuration to complete, in place
    :return: the statistics file, or None
    """
    # <env>.zip beside <env>/, and the zoo's best_model.zip and rl_model_<n>_steps.zip too
    folders = [model_path.with_suffix(""), model_path.parent / config.env_id.split(":")[-1]]
    folder = next((f for f in folders if (f / "config.yml").is_file()), folders[0])
    saved = folder / "config.yml"
    if saved.is_file():
        hyper = _zoo_config(saved)
        if hyper.get("frame_stack"):
            raise QrlError(
                f"{model_path} was trained with the zoo's frame_stack {hyper['frame_stack']} "
                "(SB3's VecFrameStack, frames along the last axis, after normalisation); qrl "
                "stacks frames on a new first axis and cannot evaluate it"
            )
        if hyper.get("env_wrapper") not in (None, False):
            config.env_wrapper = hyper["env_wrapper"]
        if hyper.get("normalize") not in (None, False):
            config.normalize = True  # the zoo may write "dict(norm_obs=True, ...)"
    stats_files = [f / "vecnormalize.pkl" for f in folders]
    for stats in [*stats_files, model_path.parent / "vecnormalize.pkl"]:
        if stats.is_file():
            print(f"qrl: using the VecNormalize statistics in {stats}", file=sys.stderr)
            config.normalize = config.normalize or True
            return stats
    return None


class _ZooLoader(yaml.SafeLoader):
    """YAML with the ``OrderedDict`` tag rl-baselines3-zoo's config.yml is written with."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    assert isinstance(node, yaml.SequenceNode)
    pairs = loader.construct_sequence(node.value[0], deep=True)
    return {str(key): value for key, value in pairs}


_ZooLoader.add_constructor(
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict
)


def _zoo_config(path: Path) -> dict[str, Any]:
    """rl-baselines3-zoo's saved hyperparameters (config.yml)."""
    try:
        data = yaml.load(path.read_text(), Loader=_ZooLoader)
    except yaml.YAMLError as exc:
        raise QrlError(f"{path} is not a readable rl-baselines3-zoo config.yml ({exc})") from None
    return data if isinstance(data, dict) else {}


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
    best: bool = False,
    gym_packages: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate a saved policy: a run folder or a model .zip file (qrl's,
    rl-baselines3-zoo's or plain SB3's; see :func:`load_target`).

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
    :param best: evaluate a run folder's best_model.zip
    :param gym_packages: modules to import first, whose import registers the task
    :return: see :func:`evaluate_model`
    """
    check_episodes(episodes)  # before the model is loaded
    model, config, _ = load_target(target, env, algorithm, best, gym_packages)
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
