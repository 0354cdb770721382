"""Shared fixtures: one thread per test process, and a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quantum CartPole run trained for a few hundred steps (shared by several tests)."""
    import qrl

    path = tmp_path_factory.mktemp("runs") / "tiny"
    qrl.train(
        "unentangled",
        "CartPole-v1",
        seed=3,
        timesteps=512,
        run_dir=path,
        progress=False,
        overrides=["eval_episodes=4"],
    )
    return path
