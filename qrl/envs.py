"""Environments from a run configuration: vectorised, seeded, monitored."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from qrl.errors import QrlError
from qrl.presets import RunConfig


def make_envs(config: RunConfig, seed: int, n_envs: int | None = None) -> VecEnv:
    """Vectorised, monitored environments of the configuration's task.

    :param config: the run configuration
    :param seed: seed of the first environment (the others get seed + i)
    :param n_envs: number of environments; the configuration's by default
    :return: a ``DummyVecEnv``; quantum policies batch all environments of a step anyway
    """
    try:
        return make_vec_env(
            config.env_id,
            n_envs=n_envs or config.n_envs,
            seed=seed,
            env_kwargs=config.env_kwargs or None,
            vec_env_cls=DummyVecEnv,
        )
    except gym.error.DependencyNotInstalled as exc:
        raise QrlError(f"environment {config.env_id} needs an extra package: {exc}") from None
    except TypeError as exc:
        raise QrlError(f"bad env_kwargs for {config.env_id}: {exc}") from None


def make_video_env(config: RunConfig, seed: int, folder: Path, episodes: int) -> VecEnv:
    """One environment that records its first ``episodes`` episodes as MP4 files in ``folder``.

    :raises QrlError: if the video extra (moviepy) is not installed
    """
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise QrlError("--video needs moviepy: pip install 'qrl[video]'") from None
    from gymnasium.wrappers import RecordVideo

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # off-screen rendering, no display

    def factory() -> gym.Env[Any, Any]:
        env = gym.make(config.env_id, render_mode="rgb_array", **config.env_kwargs)
        return RecordVideo(
            env, str(folder), episode_trigger=lambda i: i < episodes, disable_logger=True
        )

    return make_vec_env(factory, n_envs=1, seed=seed, vec_env_cls=DummyVecEnv)
