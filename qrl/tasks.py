"""Partially observable tasks, registered with Gymnasium under the ``qrl/`` namespace.

Each task is a Gymnasium task with some observation components hidden; the dynamics, the
rewards and the episode limits are unchanged. Velocities hidden means a policy has to infer
them from successive positions: a task for recurrent policies (QFWP, LSTM).

=============================  =================  =====================================
id                             base task          observation kept
=============================  =================  =====================================
``qrl/CartPoleNoVel-v1``       CartPole-v1        cart position, pole angle
``qrl/LunarLanderNoVel-v3``    LunarLander-v3     x, y, angle, left and right leg contact
=============================  =================  =====================================

They are registered when :mod:`qrl` is imported, so ``gym.make("qrl/CartPoleNoVel-v1")``
works after ``import qrl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class HideObservation(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """Keep only some components of a flat Box observation.

    :param env: the environment
    :param keep: indices of the components to keep, in order
    :param low: lower bounds of the kept components (the base space's by default)
    :param high: upper bounds of the kept components (the base space's by default)
    """

    def __init__(
        self,
        env: gym.Env[np.ndarray, Any],
        keep: Sequence[int],
        low: Sequence[float] | np.ndarray | None = None,
        high: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        super().__init__(env)
        base = env.observation_space
        assert isinstance(base, spaces.Box) and len(base.shape) == 1, base
        self.keep = np.asarray(keep, dtype=np.int64)
        lo = base.low[self.keep] if low is None else np.asarray(low, dtype=base.dtype)
        hi = base.high[self.keep] if high is None else np.asarray(high, dtype=base.dtype)
        self.observation_space = spaces.Box(lo, hi, dtype=base.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The kept components."""
        return observation[self.keep]


# Bounds of the kept CartPole components: twice the termination thresholds, as Gymnasium's
# own CartPole space (position 2 * 2.4 m, angle 2 * 12 degrees).
_CARTPOLE_BOUND = (4.8, 2 * 12 * 2 * np.pi / 360)


def cartpole_no_velocity(render_mode: str | None = None, **kwargs: Any) -> gym.Env[Any, Any]:
    """CartPole-v1 observing cart position and pole angle only."""
    env = gym.make("CartPole-v1", render_mode=render_mode, **kwargs)
    hi = np.array(_CARTPOLE_BOUND, dtype=np.float32)
    return HideObservation(env, keep=(0, 2), low=-hi, high=hi)


def lunar_lander_no_velocity(render_mode: str | None = None, **kwargs: Any) -> gym.Env[Any, Any]:
    """LunarLander-v3 without linear and angular velocities (x, y, angle, two leg contacts)."""
    env = gym.make("LunarLander-v3", render_mode=render_mode, **kwargs)
    return HideObservation(env, keep=(0, 1, 4, 6, 7))


TASKS: dict[str, tuple[str, Any]] = {
    "qrl/CartPoleNoVel-v1": ("CartPole-v1", cartpole_no_velocity),
    "qrl/LunarLanderNoVel-v3": ("LunarLander-v3", lunar_lander_no_velocity),
}


def register_tasks() -> None:
    """Register the ``qrl/`` tasks with Gymnasium (idempotent)."""
    for env_id, (base, factory) in TASKS.items():
        if env_id in gym.registry:
            continue
        spec = gym.spec(base)
        gym.register(
            id=env_id,
            entry_point=factory,
            reward_threshold=spec.reward_threshold,
            # The base task's TimeLimit already applies; it is recorded for readers only.
            max_episode_steps=None,
            disable_env_checker=True,
        )


register_tasks()
