"""Environments from a run configuration: vectorised, seeded, monitored, and always with a
step limit.

Every environment of qrl (training, the learning curve, every evaluation, videos) is made by
:func:`make_env`, so they all end their episodes at the same step: the configuration's
``max_episode_steps``, else the task's own limit, else :data:`DEFAULT_MAX_EPISODE_STEPS`
(applied with Gymnasium's ``TimeLimit``, and said once on stderr when it first ends an
episode). A task without a limit (``CliffWalking-v1``) would otherwise never end an episode
under a policy that walks into a wall.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation, TimeLimit
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from tqdm import tqdm

from qrl.errors import QrlError, install_hint
from qrl.imports import import_packages, load_classes
from qrl.presets import DEFAULT_MAX_EPISODE_STEPS, RunConfig, registered

# Spaces without a fixed shape: no vectorised environment holds their values.
SHAPELESS = (spaces.Text, spaces.Graph, spaces.Sequence, spaces.OneOf)

_announced: set[str] = set()  # tasks whose default step limit was announced


def step_limit_of(env: gym.Env[Any, Any]) -> int | None:
    """The smallest ``TimeLimit`` among an environment's wrappers (None: no limit)."""
    limits = []
    current: Any = env
    while isinstance(current, gym.Wrapper):
        if isinstance(current, TimeLimit):
            limits.append(int(current._max_episode_steps))
        current = current.env
    return min(limits) if limits else None


def check_spaces(env: gym.Env[Any, Any], env_id: str) -> None:
    """Refuse spaces without a fixed shape (Text, Graph, Sequence, OneOf), which no vectorised
    environment holds; Stable-Baselines3 and the circuits name the other unsupported ones.

    :raises QrlError: naming the space and the supported kinds
    """
    for kind, space in (("observation", env.observation_space), ("action", env.action_space)):
        inner = list(space.spaces.values()) if isinstance(space, spaces.Dict) else [space]
        if any(isinstance(s, SHAPELESS) for s in inner):
            raise QrlError(
                f"{env_id}: {kind} space {space} is not supported; Stable-Baselines3 learns "
                "from Box, Discrete, MultiDiscrete and MultiBinary spaces (and Dict "
                "observations of them)"
            )


def base_env(config: RunConfig, render_mode: str | None = "rgb_array") -> gym.Env[Any, Any]:
    """The configuration's task as Gymnasium makes it, with its step limit, before any
    wrapper of the configuration (:func:`wrap_env`).

    :param config: the run configuration (task, ``env_kwargs``, ``max_episode_steps``,
        ``gym_packages``)
    :param render_mode: Gymnasium's render mode; ``rgb_array`` (nothing is drawn until
        asked, and a video can be recorded), as Stable-Baselines3's ``make_vec_env`` does
    :return: the environment (not seeded, not monitored)
    :raises QrlError: for a missing extra package, bad ``env_kwargs`` or unsupported spaces
    """
    import_packages(config.gym_packages)
    registered(config.env_id)  # imports the module of a module:EnvId id
    kwargs = dict(config.env_kwargs)
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    try:
        try:
            env = gym.make(config.env_id, **{"render_mode": render_mode} | kwargs)
        except TypeError:  # a task without render modes
            env = gym.make(config.env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise QrlError(f"environment {config.env_id} needs an extra package: {exc}") from None
    except TypeError as exc:
        raise QrlError(f"bad env_kwargs for {config.env_id}: {exc}") from None
    check_spaces(env, config.env_id)
    if step_limit_of(env) is None:
        env = DefaultStepLimit(env, DEFAULT_MAX_EPISODE_STEPS, config.env_id)
    return env


def wrap_env(env: gym.Env[Any, Any], config: RunConfig) -> gym.Env[Any, Any]:
    """Apply the configuration's ``env_wrapper`` classes in order, then ``frame_stack``
    (Gymnasium's ``FrameStackObservation``: the last N observations on a new first axis).

    As in rl-baselines3-zoo, these wrap the episode monitor, which records the task's own
    rewards and lengths.

    :param env: the monitored task
    :param config: the run configuration
    :return: the wrapped environment
    :raises QrlError: for a wrapper that refuses its arguments
    """
    for cls, kwargs in load_classes(config.env_wrapper, gym.Wrapper, "env_wrapper"):
        try:
            env = cls(env, **kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            raise QrlError(f"env_wrapper {cls.__qualname__}{kwargs or ''}: {exc}") from None
    if config.frame_stack:
        env = FrameStackObservation(env, config.frame_stack)
    check_spaces(env, config.env_id)
    return env


def make_env(config: RunConfig, render_mode: str | None = "rgb_array") -> gym.Env[Any, Any]:
    """One environment of the configuration's task, built as each of :func:`make_envs` is:
    the task with its step limit, an episode monitor, then the configuration's wrappers.

    :param config: the run configuration
    :param render_mode: Gymnasium's render mode (see :func:`base_env`)
    :return: the environment (not seeded)
    """
    return wrap_env(Monitor(base_env(config, render_mode)), config)


def task_monitor(env: gym.Env[Any, Any]) -> Monitor | None:
    """The episode monitor under an environment's wrappers (the task's own rewards)."""
    current: Any = env
    while isinstance(current, gym.Wrapper):
        if isinstance(current, Monitor):
            return current
        current = current.env
    return None


class DefaultStepLimit(TimeLimit):
    """Gymnasium's ``TimeLimit`` at qrl's default, for a task without a limit of its own;
    the first episode it cuts says so on stderr (once per task and process, above a
    progress bar).

    :param env: the environment
    :param max_episode_steps: the limit
    :param env_id: the task, for the message
    """

    def __init__(self, env: gym.Env[Any, Any], max_episode_steps: int, env_id: str) -> None:
        super().__init__(env, max_episode_steps)
        self.env_id = env_id
        self.limit = max_episode_steps

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step, and announce the limit the first time it ends an episode."""
        observation, reward, terminated, truncated, info = super().step(action)
        if truncated and (self._elapsed_steps or 0) >= self.limit:
            _announce(self.env_id, self.limit)
        return observation, reward, terminated, truncated, info


def _announce(env_id: str, limit: int) -> None:
    if env_id in _announced:
        return
    _announced.add(env_id)
    tqdm.write(
        f"qrl: {env_id} has no step limit; its episodes end after {limit} steps "
        "(set max_episode_steps to change that)",
        file=sys.stderr,
    )


def episode_step_limit(config: RunConfig) -> int:
    """The most steps an episode of the configuration's task lasts (see :func:`make_env`).

    :param config: the run configuration
    :return: the step limit its environments apply
    """
    env = make_env(config)
    try:
        limit = step_limit_of(env)
    finally:
        env.close()
    return DEFAULT_MAX_EPISODE_STEPS if limit is None else limit


def make_envs(
    config: RunConfig, seed: int, n_envs: int | None = None, monitor_dir: Path | None = None
) -> VecEnv:
    """Vectorised environments of the configuration's task, built as rl-baselines3-zoo
    builds them: the task (:func:`base_env`), SB3's episode ``Monitor``, then the
    configuration's wrappers (:func:`wrap_env`). ``normalize`` is applied by
    :func:`normalized`, on training environments only.

    :param config: the run configuration
    :param seed: seed of the first environment (the others get seed + i)
    :param n_envs: number of environments; the configuration's by default
    :param monitor_dir: folder for the monitors' ``<i>.monitor.csv`` files (SB3's format;
        a resumed run keeps the earlier sessions' under other names,
        :meth:`qrl.runs.Run.close_monitors`); none by default
    :return: a ``DummyVecEnv``; quantum policies batch all environments of a step anyway
    """
    return make_vec_env(
        lambda: base_env(config),
        n_envs=n_envs or config.n_envs,
        seed=seed,
        vec_env_cls=DummyVecEnv,
        monitor_dir=None if monitor_dir is None else str(monitor_dir),
        wrapper_class=lambda env: wrap_env(env, config),
    )


def normalize_options(config: RunConfig) -> dict[str, Any] | None:
    """``VecNormalize``'s keyword arguments for the configuration, None without
    ``normalize``; as in rl-baselines3-zoo, its discount is the algorithm's ``gamma``."""
    if not config.normalize:
        return None
    options = dict(config.normalize) if isinstance(config.normalize, dict) else {}
    if "gamma" in config.hyperparameters and "gamma" not in options:
        options["gamma"] = config.hyperparameters["gamma"]
    return options


def normalized(venv: VecEnv, config: RunConfig, stats: Path | None = None) -> VecEnv:
    """Wrap training environments in ``VecNormalize`` if the configuration asks for it.

    :param venv: the environments
    :param config: the run configuration
    :param stats: a saved ``VecNormalize`` to continue from (a resumed run's checkpoint)
    :return: the environments, normalised or not
    :raises QrlError: if the saved statistics cannot be read
    """
    options = normalize_options(config)
    if options is None:
        return venv
    if stats is None:
        return VecNormalize(venv, **options)
    normalizer = load_normalizer(stats, venv)
    normalizer.training = True
    return normalizer


def load_normalizer(path: Path, venv: VecEnv) -> VecNormalize:
    """A saved ``VecNormalize`` (its running statistics) around environments.

    :raises QrlError: naming the file if it cannot be read
    """
    try:
        return VecNormalize.load(str(path), venv)
    except (OSError, EOFError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
        raise QrlError(
            f"{path} is not a readable VecNormalize file ({type(exc).__name__}: {exc})"
        ) from None


def make_video_env(config: RunConfig, seed: int, folder: Path, episodes: int) -> VecEnv:
    """One environment that records its first ``episodes`` episodes as MP4 files in ``folder``.

    :raises QrlError: if the video extra (moviepy) is not installed
    """
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise QrlError(f"--video needs moviepy: {install_hint('video')}") from None
    from gymnasium.wrappers import RecordVideo

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # off-screen rendering, no display

    def wrapped(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        return RecordVideo(
            wrap_env(env, config),
            str(folder),
            episode_trigger=lambda i: i < episodes,
            disable_logger=True,
        )

    return make_vec_env(
        lambda: base_env(config),
        n_envs=1,
        seed=seed,
        vec_env_cls=DummyVecEnv,
        wrapper_class=wrapped,
    )
