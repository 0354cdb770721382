"""A task registered by a module outside qrl: ``qrl train --env examples.mytasks:MyCartPole-v0``
(or ``--gym-packages examples.mytasks --env MyCartPole-v0``), from the repository's folder."""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class MyCartPole(CartPoleEnv):
    """CartPole with a heavier pole: a task of one's own, registered under its own id.

    :param pole_mass: the pole's mass (CartPole-v1's is 0.1)
    :param render_mode: Gymnasium's render mode
    """

    def __init__(self, pole_mass: float = 0.2, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        self.masspole = pole_mass
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


if "MyCartPole-v0" not in gym.registry:
    gym.register("MyCartPole-v0", entry_point=MyCartPole, max_episode_steps=500)
