"""Learning tests: minutes each, run with ``pytest -m slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

import qrl


@pytest.mark.slow
def test_unentangled_agent_solves_cartpole(tmp_path: Path):
    run = qrl.train("unentangled", "CartPole-v1", seed=0, run_dir=tmp_path / "run", progress=False)
    result = run.evaluation()
    assert result is not None and result["episodes"] == 100
    assert result["parameters"]["total"] < 200
    assert result["mean_return"] >= 475


@pytest.mark.slow
def test_mlp_baseline_learns_cartpole(tmp_path: Path):
    run = qrl.train("mlp", "CartPole-v1", seed=0, run_dir=tmp_path / "run", progress=False)
    result = run.evaluation()
    assert result is not None and result["mean_return"] >= 400


@pytest.mark.slow
def test_qfwp_learns_cartpole_without_velocities(tmp_path: Path):
    # About ten minutes: RecurrentPPO, 300k steps (docs/results.md has all seeds).
    run = qrl.train("qfwp", "CartPoleNoVel-v1", seed=0, run_dir=tmp_path / "run", progress=False)
    result = run.evaluation()
    assert result is not None and result["num_timesteps"] >= 300_000
    assert result["mean_return"] >= 400
