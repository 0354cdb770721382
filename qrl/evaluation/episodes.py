"""The one episode runner: every evaluation of a policy plays its episodes here.

The final evaluation (``eval.json``), ``qrl evaluate`` on any executor, the learning curve
during training (``curve.json``) and ``qrl curve`` all call :func:`play_episodes`, so the
same weights and seed give the same episodes everywhere:

- episode ``k`` of an evaluation with seed ``seed`` always starts from
  ``reset(seed=seed + k)``, whichever other episodes are played, in whatever order;
- episodes are played in rounds of up to ``n_envs`` environments in lockstep: each step is
  one batched ``model.predict`` over the episodes still running (one executor call, one
  submission for a device), and the recurrent states of episodes that end are dropped;
- the environments are built as training builds them (:func:`qrl.envs.make_envs`: the env
  preset's ``env_kwargs``, the same wrappers and the same step limit, so every episode
  ends, even on a task without a limit of its own); a model with ``VecNormalize``
  statistics (``model.get_vec_normalize_env()``) sees observations normalised by them,
  frozen;
- an episode's return and length are the task's own, as SB3's ``Monitor`` records them
  beneath the configuration's wrappers (as SB3's ``evaluate_policy`` reports them).

:func:`statistics` summarises returns and lengths, with the *sample* standard deviation
(``ddof=1``; 0 for a single episode) everywhere.

This module sits low in the import graph (Gymnasium, NumPy, SB3, :mod:`qrl.envs`), so the
callbacks, the run functions and the hardware evaluation can all use it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from qrl.envs import make_envs, make_video_env, task_monitor
from qrl.errors import QrlError
from qrl.presets import SEED_MAX, RunConfig, whole_number

EVAL_SEED_OFFSET = 10_000  # evaluation episodes start from states training never saw


@dataclass
class Episode:
    """One finished (or running) episode.

    :param index: its number ``k`` in the evaluation
    :param seed: its reset seed, the evaluation's seed + ``index``
    :param ret: its return (undiscounted sum of rewards)
    :param length: its steps
    :param agreeing: steps on which the action equals the reference policy's action
    """

    index: int
    seed: int
    ret: float = 0.0
    length: int = 0
    agreeing: int = 0


@dataclass
class Clock:
    """Seconds spent in the reference policy (not the evaluated one), updated as it runs."""

    reference_s: float = 0.0


def check_episodes(episodes: int | None) -> None:
    """Refuse a number of episodes that is given but is not a whole number >= 1 (before
    anything is loaded); None stands for the run's ``eval_episodes``.

    :raises QrlError: naming the value and what is allowed
    """
    if episodes is not None:
        whole_number(episodes, "--episodes", 1)


def episode_count(episodes: int | None, config: RunConfig) -> int:
    """The number of episodes an evaluation plays: ``episodes``, or the run's
    ``eval_episodes`` when not given (0 is refused, never replaced by the default).

    :param episodes: the number asked for, or None
    :param config: the run configuration
    :raises QrlError: for a number below 1, or no number and ``eval_episodes: 0``
    """
    check_episodes(episodes)
    if episodes is not None:
        return int(episodes)
    if config.eval_episodes < 1:
        raise QrlError(f"{config.env} is set to eval_episodes: 0; give --episodes N")
    return int(config.eval_episodes)


def evaluation_seed(seed: int | None, config: RunConfig) -> int:
    """The seed of episode 0: ``seed``, or the run's seed + :data:`EVAL_SEED_OFFSET`.

    :raises QrlError: for a seed that is not a whole number from 0 to
        :data:`~qrl.presets.SEED_MAX`
    """
    if seed is None:
        return config.seed + EVAL_SEED_OFFSET
    return whole_number(seed, "--seed", 0, SEED_MAX)


def episode_indices(episodes: int | Sequence[int]) -> list[int]:
    """The episode numbers an evaluation plays.

    :param episodes: a count ``n`` (episodes ``0 .. n-1``) or the episode numbers themselves
    :return: the episode numbers, in the order given
    :raises QrlError: for no episode, or a negative episode number
    """
    indices = list(range(episodes)) if isinstance(episodes, int) else [int(k) for k in episodes]
    if isinstance(episodes, int) and episodes < 1:
        raise QrlError(f"--episodes must be at least 1, got {episodes}")
    if any(k < 0 for k in indices):
        raise QrlError(f"episode numbers must not be negative, got {indices}")
    return indices


def play_episodes(
    model: BaseAlgorithm,
    config: RunConfig,
    episodes: int | Sequence[int],
    seed: int,
    deterministic: bool = True,
    n_envs: int | None = None,
    reference: BasePolicy | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    clock: Clock | None = None,
    video: str | Path | None = None,
) -> list[Episode]:
    """Play episodes of a policy on its task; episode ``k`` starts from ``reset(seed=seed + k)``.

    :param model: the policy's model (any SB3 or sb3-contrib algorithm, recurrent or not)
    :param config: its run configuration (task, ``env_kwargs``, ``n_envs``)
    :param episodes: a count ``n`` (episodes ``0 .. n-1``) or the episode numbers to play
        (to resume an evaluation that finished some of them)
    :param seed: the evaluation's seed: episode ``k`` is reset with ``seed + k``
    :param deterministic: take the most likely action instead of sampling
    :param n_envs: episodes played at once (one batched policy call per step); the
        configuration's ``n_envs`` by default, at most the number of episodes
    :param reference: a policy asked for its action on the same observations at every step
        (e.g. exact simulation of the same weights), to count the steps on which both agree
    :param on_episode: called with each episode as it ends
    :param clock: accumulates the time spent in ``reference``
    :param video: folder to record every episode into as MP4 (one environment at a time)
    :return: the episodes, in the order of ``episodes``
    """
    indices = episode_indices(episodes)
    if not indices:
        return []
    size = max(1, min(n_envs or config.n_envs, len(indices)))
    if video is not None:
        size = 1  # one recording environment; its files are numbered in episode order
        vec: VecEnv = make_video_env(config, seed, Path(video), len(indices))
    else:
        vec = make_envs(config, seed=seed, n_envs=size)
    clock = clock or Clock()
    try:
        if not isinstance(vec, DummyVecEnv):  # pragma: no cover - make_envs builds these
            raise TypeError(f"expected a DummyVecEnv, got {type(vec).__name__}")
        envs = list(vec.envs)
        played: list[Episode] = []
        for start in range(0, len(indices), size):
            chunk = [Episode(k, seed + k) for k in indices[start : start + size]]
            _play_round(model, envs, chunk, deterministic, reference, on_episode, clock)
            played += chunk
        return played
    finally:
        vec.close()


def _play_round(
    model: BaseAlgorithm,
    envs: list[gym.Env[Any, Any]],
    episodes: list[Episode],
    deterministic: bool,
    reference: BasePolicy | None,
    on_episode: Callable[[Episode], None] | None,
    clock: Clock,
) -> None:
    """Play one round: one episode per environment, in lockstep, updating ``episodes``."""
    obs = [env.reset(seed=e.seed)[0] for env, e in zip(envs, episodes, strict=False)]
    monitors = [task_monitor(env) for env in envs]
    normalizer = model.get_vec_normalize_env()
    active = list(range(len(episodes)))
    state: Any = None
    ref_state: Any = None
    starts = np.ones(len(active), dtype=bool)
    while active:
        batch: Any = np.stack([obs[i] for i in active])
        if normalizer is not None:  # the statistics as they are, not updated
            batch = normalizer.normalize_obs(batch)
        actions, state = model.predict(
            batch, state=state, episode_start=starts, deterministic=deterministic
        )
        same = np.zeros(len(active), dtype=bool)
        if reference is not None:
            tick = time.perf_counter()
            expected, ref_state = reference.predict(
                batch, state=ref_state, episode_start=starts, deterministic=True
            )
            same = np.all(
                np.reshape(expected, (len(active), -1)) == np.reshape(actions, (len(active), -1)),
                axis=1,
            )
            clock.reference_s += time.perf_counter() - tick
        keep = []
        for j, i in enumerate(active):
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[j])
            episode = episodes[i]
            episode.ret += float(reward)
            episode.length += 1
            episode.agreeing += int(same[j])
            if not (terminated or truncated):
                keep.append(j)
                continue
            monitor = monitors[i]
            if monitor is not None:  # the task's own rewards, beneath the wrappers
                episode.ret = float(sum(monitor.rewards))
                episode.length = len(monitor.rewards)
            if on_episode is not None:
                on_episode(episode)
        if len(keep) < len(active):
            state, ref_state = _slice_state(state, keep), _slice_state(ref_state, keep)
        active = [active[j] for j in keep]
        starts = np.zeros(len(active), dtype=bool)


def _slice_state(state: Any, keep: list[int]) -> Any:
    """Keep the recurrent states of the episodes still running (environment axis 1)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(np.asarray(s)[:, keep] for s in state)
    return np.asarray(state)[:, keep]


def returns_and_lengths(episodes: Sequence[Episode]) -> tuple[list[float], list[int]]:
    """The returns and lengths of episodes, in their order.

    :param episodes: played episodes
    :return: returns (floats) and lengths (ints)
    """
    return [float(e.ret) for e in episodes], [int(e.length) for e in episodes]


def _std(values: np.ndarray) -> float:
    """Sample standard deviation (``ddof=1``); 0 for a single value."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def statistics(returns: Sequence[float], lengths: Sequence[int]) -> dict[str, float | int]:
    """Mean, standard deviation, standard error, min and max of returns and of lengths.

    The standard deviation is the sample one (``ddof=1``, 0 for a single episode), and the
    standard error is ``std / sqrt(episodes)``.

    :param returns: the episodes' returns
    :param lengths: the episodes' lengths, as many as returns
    :return: ``mean_return``, ``std_return``, ``sem_return``, ``min_return``,
        ``max_return``, and the same five of ``_length`` (min and max as ints)
    :raises QrlError: without episodes, or when the two lists differ in length
    """
    r = np.asarray(returns, dtype=float)
    n = np.asarray(lengths, dtype=float)
    if len(r) == 0 or len(r) != len(n):
        raise QrlError(f"statistics of {len(r)} returns and {len(n)} lengths")
    std_r, std_n = _std(r), _std(n)
    return {
        "mean_return": float(r.mean()),
        "std_return": std_r,
        "sem_return": std_r / math.sqrt(len(r)),
        "min_return": float(r.min()),
        "max_return": float(r.max()),
        "mean_length": float(n.mean()),
        "std_length": std_n,
        "sem_length": std_n / math.sqrt(len(n)),
        "min_length": int(n.min()),
        "max_length": int(n.max()),
    }


def curve_point(
    model: BaseAlgorithm, config: RunConfig, episodes: int, seed: int
) -> tuple[list[float], list[int]]:
    """One point of a learning curve: the returns and lengths of ``episodes`` deterministic
    episodes, episode ``k`` from ``reset(seed=seed + k)`` (the same at every point).

    All episodes run at once (one environment each, one batched policy call per step).

    :param model: the policy at this point of training
    :param config: its run configuration
    :param episodes: number of episodes
    :param seed: seed of episode 0
    :return: the episodes' returns and lengths, in episode order
    """
    played = play_episodes(model, config, episodes, seed, deterministic=True, n_envs=episodes)
    return returns_and_lengths(played)
