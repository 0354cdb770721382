"""The one episode runner: every evaluation plays the same episodes, and reports one shape.

``qrl evaluate RUN`` (the trained executor), ``qrl evaluate RUN --executor X``, the final
evaluation (eval.json), the learning curve during training (curve.json) and ``qrl curve``
all play episode ``k`` from ``reset(seed=seed + k)`` through :mod:`qrl.evaluation.episodes`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qrl.agents import load_model
from qrl.cli import main
from qrl.errors import QrlError
from qrl.evaluation.episodes import (
    EVAL_SEED_OFFSET,
    curve_point,
    play_episodes,
    returns_and_lengths,
    statistics,
)
from qrl.evaluation.models import curve_from_checkpoints, evaluate_model
from qrl.presets import RunConfig
from qrl.runs import Run, open_run

ENV = os.environ | {"OMP_NUM_THREADS": "1"}

# The fields every ``qrl evaluate --json`` has at the top level, whatever the executor.
SHAPE = {
    "env",
    "agent",
    "episodes",
    "deterministic",
    "seed",
    "n_envs",
    "executor",
    "num_timesteps",
    "mean_return",
    "std_return",
    "sem_return",
    "min_return",
    "max_return",
    "mean_length",
    "std_length",
    "sem_length",
    "min_length",
    "max_length",
    "parameters",
    "returns",
    "lengths",
    "solved_threshold",
    "solved",
}


def _train_cli(agent: str, env: str, path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    argv = ["train", "--agent", agent, "--env", env, "--timesteps", "512", "--no-progress"]
    argv += ["--run-dir", str(path), "--set", "eval_episodes=5"]
    assert main(argv) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def _evaluate_cli(run: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    assert main(["evaluate", str(run), "--episodes", "5", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("agent", "env"),
    [
        ("entangled", "CartPole-v1"),
        ("unentangled", "CartPole-v1"),
        ("qfwp", "CartPoleNoVel-v1"),
    ],
)
def test_evaluate_json_has_one_shape_and_the_same_episodes_on_every_executor(
    agent: str, env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = _train_cli(agent, env, tmp_path / "run", capsys)
    trained = _evaluate_cli(run, capsys)
    other = _evaluate_cli(run, capsys, "--executor", "default.qubit")
    assert set(trained) >= SHAPE and set(other) >= SHAPE
    assert trained["executor"] == "torch" and other["executor"] == "default.qubit"
    assert trained["seed"] == other["seed"] == 10_000 and trained["episodes"] == 5
    assert other["returns"] == trained["returns"] and other["lengths"] == trained["lengths"]
    for key in ("mean_return", "std_return", "min_return", "max_return", "mean_length"):
        assert other[key] == trained[key], key
    assert trained["std_return"] == pytest.approx(float(np.std(trained["returns"], ddof=1)))
    # The comparison rows sit beside the top level, which describes the requested executor.
    exact, requested = other["variants"]
    assert (exact["label"], requested["label"]) == ("exact", "default.qubit")
    assert requested["returns"] == other["returns"] == exact["returns"]
    # The final evaluation of training (eval.json) played the same episodes.
    final = json.loads((run / "eval.json").read_text())
    assert set(final) >= SHAPE and final["returns"] == trained["returns"]


def test_learning_curve_points_are_the_evaluate_episodes(tmp_path: Path):
    """With a learning rate of zero the policy never changes: every point of the curve
    recorded during training, every point of ``qrl curve``, and ``qrl evaluate`` on the same
    seed give the same episodes."""
    import qrl

    run = qrl.train(
        "unentangled",
        "CartPole-v1",
        seed=4,
        timesteps=512,
        run_dir=tmp_path / "run",
        progress=False,
        overrides=[
            "hyperparameters.learning_rate=0",
            "eval_freq=256",
            "eval_freq_episodes=3",
            "eval_episodes=3",
        ],
    )
    recorded = run.curve()
    assert recorded is not None and recorded.timesteps == [0, 256, 512]
    evaluated = qrl.evaluate(run.path, episodes=3)
    assert evaluated["seed"] == recorded.seed == 4 + EVAL_SEED_OFFSET
    assert all(r == evaluated["returns"] for r in recorded.returns)
    assert all(n == evaluated["lengths"] for n in recorded.lengths)
    rebuilt = curve_from_checkpoints(run.path, overwrite=True)
    assert all(r == evaluated["returns"] for r in rebuilt.returns)
    # The API: a curve point and an evaluation of the same model and seed.
    model = load_model(run.model_path, "ppo")
    config = open_run(run.path).config
    returns, lengths = curve_point(model, config, 3, 77)
    result = evaluate_model(model, config, episodes=3, seed=77)
    assert (returns, lengths) == (result["returns"], result["lengths"])


def test_episode_k_starts_from_seed_plus_k_whatever_else_is_played(tiny_run: Path):
    model = load_model(tiny_run / "model.zip", "ppo")
    config = open_run(tiny_run).config
    everything = play_episodes(model, config, 7, seed=123, n_envs=3)
    assert [e.index for e in everything] == list(range(7))
    assert [e.seed for e in everything] == [123 + k for k in range(7)]
    some = play_episodes(model, config, [6, 1, 4], seed=123, n_envs=2)
    assert [e.seed for e in some] == [129, 124, 127]
    for episode in some:
        assert (episode.ret, episode.length) == (
            everything[episode.index].ret,
            everything[episode.index].length,
        )
    one_at_a_time = play_episodes(model, config, 7, seed=123, n_envs=1)
    assert returns_and_lengths(one_at_a_time) == returns_and_lengths(everything)
    ended = []
    play_episodes(model, config, 2, seed=5, on_episode=ended.append)
    assert sorted(e.index for e in ended) == [0, 1]
    assert play_episodes(model, config, [], seed=5) == []
    with pytest.raises(QrlError, match="at least 1"):
        play_episodes(model, config, 0, seed=5)


def test_statistics_use_the_sample_standard_deviation():
    stats = statistics([1.0, 2.0, 4.0], [10, 20, 40])
    assert stats["mean_return"] == pytest.approx(7 / 3)
    assert stats["std_return"] == pytest.approx(float(np.std([1, 2, 4], ddof=1)))
    assert stats["sem_return"] == pytest.approx(stats["std_return"] / np.sqrt(3))
    assert stats["std_length"] == pytest.approx(float(np.std([10, 20, 40], ddof=1)))
    assert (stats["min_length"], stats["max_length"]) == (10, 40)
    assert isinstance(stats["min_length"], int)
    single = statistics([3.0], [7])
    assert single["std_return"] == single["sem_return"] == single["std_length"] == 0.0
    with pytest.raises(QrlError):
        statistics([], [])


def test_runner_sits_low_in_the_import_graph():
    code = (
        "import sys, qrl.evaluation.episodes; "
        "bad = [m for m in ('qrl.training', 'qrl.callbacks', 'qrl.extractors', "
        "'qrl.evaluation.comparison', 'qrl.evaluation.models') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


def test_old_curve_files_still_read(tmp_path: Path):
    old = {
        "freq": 256,
        "episodes": 2,
        "deterministic": True,
        "seed": 10_000,
        "timesteps": [0, 256, 512],
        "returns": [[9.0, 10.0], [20.0, 30.0], [40.0, 50.0]],
        "lengths": [[9, 10], [20, 30], [40, 50]],
    }
    (tmp_path / "curve.json").write_text(json.dumps(old) + "\n")
    run = Run(tmp_path, RunConfig(agent="a", algorithm="ppo", env="e", env_id="e"))
    curve = run.curve()
    assert curve is not None and curve.to_dict() == old | {"source": "training"}
    cut = run.curve(upto=256)
    assert cut is not None and cut.timesteps == [0, 256] and cut.lengths[-1] == [20, 30]
