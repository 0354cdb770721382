"""Shared fixtures: one thread per test process, and a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qrl.circuits.families import resolve_family

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
# A circuit family and a gate defined outside the package (docs/circuits.md, "Adding a
# circuit"): registered here, so every test parametrized over the registries covers them.
EXAMPLE_FAMILY = f"{ROOT / 'examples' / 'my_circuits.py'}:iswap_brick"
resolve_family(EXAMPLE_FAMILY)


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
