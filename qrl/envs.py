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
import sys
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from tqdm import tqdm

from qrl.errors import QrlError, install_hint
from qrl.presets import DEFAULT_MAX_EPISODE_STEPS, RunConfig

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


def make_env(config: RunConfig, render_mode: str | None = "rgb_array") -> gym.Env[Any, Any]:
    """One environment of the configuration's task, with its step limit.

    :param config: the run configuration (task, ``env_kwargs``, ``max_episode_steps``)
    :param render_mode: Gymnasium's render mode; ``rgb_array`` (nothing is drawn until
        asked, and a video can be recorded), as Stable-Baselines3's ``make_vec_env`` does
    :return: the environment (not seeded, not monitored)
    :raises QrlError: for a missing extra package, bad ``env_kwargs`` or unsupported spaces
    """
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


def make_envs(config: RunConfig, seed: int, n_envs: int | None = None) -> VecEnv:
    """Vectorised, monitored environments of the configuration's task (:func:`make_env`).

    :param config: the run configuration
    :param seed: seed of the first environment (the others get seed + i)
    :param n_envs: number of environments; the configuration's by default
    :return: a ``DummyVecEnv``; quantum policies batch all environments of a step anyway
    """
    return make_vec_env(
        lambda: make_env(config),
        n_envs=n_envs or config.n_envs,
        seed=seed,
        vec_env_cls=DummyVecEnv,
    )


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

    def factory() -> gym.Env[Any, Any]:
        env = make_env(config)
        return RecordVideo(
            env, str(folder), episode_trigger=lambda i: i < episodes, disable_logger=True
        )

    return make_vec_env(factory, n_envs=1, seed=seed, vec_env_cls=DummyVecEnv)
