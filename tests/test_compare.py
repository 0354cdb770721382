"""qrl compare: the grid, its statistics, resuming a stopped grid, Ray, learning curves and the
baseline and ablation presets."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import PPO

from qrl.agents import build_model, resolve_config
from qrl.cli import main
from qrl.compare import GridSpec, compare
from qrl.compare.grid import config_differences, plan, seed_list
from qrl.compare.stats import (
    area_under_curve,
    bootstrap,
    curve_band,
    iqm,
    median,
    probability_of_improvement,
    steps_to_threshold,
)
from qrl.envs import make_envs
from qrl.errors import QrlError
from qrl.evaluation.models import curve_from_checkpoints
from qrl.extractors import parameter_counts
from qrl.runs import open_run
from qrl.training import train

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
# Tiny runs: a few hundred steps, a learning curve point every 256 steps.
TINY = ("eval_freq=256", "eval_freq_episodes=2", "eval_episodes=2")


# --- statistics ---------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert float(iqm(np.array([0.0, 1, 2, 3, 4, 5, 6, 100]))) == pytest.approx(3.5)
    assert float(iqm(np.array([5.0, 5, 5, 5]))) == 5.0


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    x = rng.normal(100, 10, size=10)
    est = bootstrap(x, iqm)
    assert est.low <= est.value <= est.high and est.high - est.low > 1
    assert bootstrap(x, iqm) == est
    wide = bootstrap(rng.normal(100, 40, size=10), iqm)
    assert wide.high - wide.low > est.high - est.low
    same = bootstrap([500.0] * 5, iqm)
    assert (same.value, same.low, same.high) == (500.0, 500.0, 500.0)
    assert math.isnan(bootstrap([], iqm).value)


def test_median_steps_with_runs_that_never_reached():
    est = bootstrap([10_000, 20_000, math.inf, math.inf, math.inf], median)
    assert math.isinf(est.value) and est.low == 10_000 and math.isinf(est.high)
    est = bootstrap([10_000, 20_000, 30_000, math.inf], median)
    assert est.value == 25_000 and math.isinf(est.high)


def test_probability_of_improvement_counts_pairs():
    x, y = [1.0, 2.0, 3.0], [0.0, 2.0, 5.0]
    # pairs x > y: (1,0), (2,0), (3,0), (3,2); ties (2,2) count half: 4.5 / 9
    assert probability_of_improvement(x, y).value == pytest.approx(0.5)
    assert probability_of_improvement([10.0, 11, 12], [1.0, 2, 3]).format(2) == (
        "1.00 [1.00, 1.00]"
    )
    rng = np.random.default_rng(0)
    est = probability_of_improvement(rng.normal(1, 1, 10), rng.normal(0, 1, 10))
    assert est.low < est.value < est.high
    assert probability_of_improvement([1.0], [1.0]).value == 0.5


def test_steps_to_threshold_and_area_under_curve():
    steps, returns = [0, 10, 20, 30], [0.0, 50.0, 100.0, 100.0]
    assert steps_to_threshold(steps, returns, 100) == 20
    assert math.isinf(steps_to_threshold(steps, returns, 101))
    # trapezoids: (0+50)/2*10 + (50+100)/2*10 + 100*10 = 2000 over 30 steps
    assert area_under_curve(steps, returns) == pytest.approx(2000 / 30)
    center, low, high = curve_band([[0, 1], [2, 3], [4, 5], [6, 7]])
    assert center.tolist() == [3.0, 4.0] and (low <= center).all() and (center <= high).all()


# --- the grid -----------------------------------------------------------------------------


def test_grid_input_errors(tmp_path: Path):
    with pytest.raises(QrlError, match=r"unknown agent 'mlpp'.*did you mean 'mlp'"):
        plan(GridSpec(("mlp", "mlpp"), ("CartPole-v1",), (0,)), tmp_path)
    with pytest.raises(QrlError, match="unknown environment"):
        plan(GridSpec(("mlp",), ("CartPole-v9",), (0,)), tmp_path)
    with pytest.raises(QrlError, match="--seeds must be at least 1"):
        seed_list(0)
    with pytest.raises(QrlError, match="--seeds must be at least 1"):
        plan(GridSpec(("mlp",), ("CartPole-v1",), ()), tmp_path)
    with pytest.raises(QrlError, match="listed twice"):
        plan(GridSpec(("mlp", "mlp"), ("CartPole-v1",), (0,)), tmp_path)
    with pytest.raises(QrlError, match="unknown --set key"):
        plan(GridSpec(("mlp",), ("CartPole-v1",), (0,), overrides=("bogus=1",)), tmp_path)
    assert seed_list(3) == (0, 1, 2) and seed_list([4, 7]) == (4, 7)
    own = tmp_path / "fast.yaml"
    own.write_text("algorithm: ppo\nhyperparameters: {learning_rate: 0.01}\n")
    with pytest.raises(QrlError, match="different hyperparameters \\(learning_rate\\)"):
        plan(GridSpec(("mlp", str(own)), ("CartPole-v1",), (0,)), tmp_path)


def test_config_differences_ignore_evaluation_settings():
    a = resolve_config("mlp", "CartPole-v1", seed=0)
    b = resolve_config("mlp", "CartPole-v1", seed=0, overrides=["eval_freq=10", "eval_episodes=3"])
    assert config_differences(a, b) == []
    c = resolve_config("mlp", "CartPole-v1", seed=0, overrides=["hyperparameters.gamma=0.9"])
    assert config_differences(a, c) == ["hyperparameters.gamma: grid 0.98, folder 0.9"]


def _compare_cli(out: Path, *extra: str, agents=("mlp", "unentangled"), seeds=2, timesteps=512):
    args = ["compare", "--agents", *agents, "--env", "CartPole-v1", "--seeds", str(seeds)]
    args += ["--timesteps", str(timesteps), "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    return [*args, *extra]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2 agents x 2 seeds grid of tiny CartPole runs, trained through the CLI."""
    out = tmp_path_factory.mktemp("compare") / "grid"
    assert main(_compare_cli(out, "--workers", "2")) == 0
    return out


def _stamps(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted(out.glob("CartPole-v1/*/seed*/model.zip"))}


def test_compare_writes_runs_tables_and_plots(grid: Path):
    out = grid
    runs = sorted(out.glob("CartPole-v1/*/seed*"))
    assert [p.relative_to(out).as_posix() for p in runs] == [
        "CartPole-v1/mlp/seed0",
        "CartPole-v1/mlp/seed1",
        "CartPole-v1/unentangled/seed0",
        "CartPole-v1/unentangled/seed1",
    ]
    for run in runs:
        curve = open_run(run).curve()
        assert curve is not None and curve.timesteps[:3] == [0, 256, 512]
        assert all(len(r) == 2 for r in curve.returns)
        assert list((run / "tb").glob("events.out.tfevents.*"))
    summary = (out / "summary.md").read_text()
    assert "| unentangled | 2 | 183 (44) |" in summary and "| mlp | 2 | 9,155 (0) |" in summary
    assert "P(row > column)" in summary
    assert "**Warning**: CartPole-v1: fewer than 5 seeds (mlp 2, unentangled 2)" in summary
    assert "no learning-curve point" not in summary  # points at 0, 256, 512
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {r["agent"] for r in rows} == {"mlp", "unentangled"}
    quantum = next(r for r in rows if r["agent"] == "unentangled")
    assert quantum["parameters_quantum"] == "44" and quantum["runs"] == "2"
    per_run = list(csv.DictReader((out / "runs.csv").open()))
    finals = {(r["agent"], int(r["seed"])): float(r["final_return"]) for r in per_run}
    for run in runs:
        result = json.loads((run / "eval.json").read_text())
        assert finals[(run.parent.name, int(run.name[4:]))] == result["mean_return"]
    for name in ("curves", "final", "parameters"):
        for fmt in ("png", "svg"):
            assert (out / "plots" / f"CartPole-v1-{name}.{fmt}").stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs[0] / "tb"))
    events.Reload()
    assert "eval/mean_reward" in events.Tags()["scalars"]  # SB3's EvalCallback tag
    grid_data = json.loads((out / "grid.json").read_text())
    assert grid_data["agents"] == ["mlp", "unentangled"] and grid_data["seeds"] == [0, 1]


def test_rerun_reuses_finished_runs_and_refuses_other_settings(grid: Path, capsys):
    out = grid
    stamps = _stamps(out)
    assert len(stamps) == 4
    # The same command again trains nothing: it re-plots.
    assert main(_compare_cli(out)) == 0
    captured = capsys.readouterr()
    assert "4 finished (reused), 0 to resume, 0 to train" in captured.err
    assert captured.out.strip() == str(out / "summary.md")
    # So does `qrl compare --out DIR` alone, from grid.json.
    assert main(["compare", "--out", str(out)]) == 0
    # A grid with other settings refuses the folder instead of mixing runs.
    capsys.readouterr()
    assert main(_compare_cli(out, timesteps=600)) == 2
    err = capsys.readouterr().err
    assert "holds a grid trained with other settings (--timesteps: folder 512, " in err
    assert "this command 600)" in err
    # A run folder from another grid is refused too, naming the differences.
    (out / "grid.json").unlink()
    assert main(_compare_cli(out, timesteps=600)) == 2
    err = capsys.readouterr().err
    assert "holds a run from a different grid (timesteps: grid 600, folder 512)" in err
    assert stamps == _stamps(out) and not (out / "grid.json").exists()
    assert main(_compare_cli(out)) == 0  # grid.json is written again


def test_stopped_grid_resumes_without_rerunning_finished_runs(tmp_path: Path):
    out = tmp_path / "grid"
    cmd = ["qrl", *_compare_cli(out, "--workers", "1", agents=("mlp",), timesteps=8192)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    first, second = out / "CartPole-v1/mlp/seed0", out / "CartPole-v1/mlp/seed1"
    deadline = time.time() + 240
    # Stop the grid once the first run is finished and the second has saved a checkpoint.
    while time.time() < deadline and not (
        (first / "eval.json").is_file() and list((second / "checkpoints").glob("*.zip"))
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "Continue with the same command" in err
    assert json.loads((first / "run.json").read_text())["status"] == "finished"
    stopped = json.loads((second / "run.json").read_text())
    assert stopped["status"] == "interrupted" and 0 < stopped["num_timesteps"] < 8192
    stamp = (first / "model.zip").stat().st_mtime_ns

    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "1 finished (reused), 1 to resume, 0 to train" in done.stderr
    assert (first / "model.zip").stat().st_mtime_ns == stamp
    assert json.loads((second / "run.json").read_text())["status"] == "finished"
    assert "--resume" in (second / "train.log").read_text()
    curve = open_run(second).curve()
    assert curve is not None and curve.timesteps == sorted(set(curve.timesteps))
    assert {0, 256, 2048} <= set(curve.timesteps)


def test_reproduction_script_reads_the_verdict_inputs_from_a_grid(grid: Path):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_hsiao.py"
    spec = importlib.util.spec_from_file_location("reproduce_hsiao", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.verdicts("cartpole", grid)
    rows = {r["agent"]: r for r in csv.DictReader((grid / "summary.csv").open())}
    assert f"| {rows['unentangled']['parameters_total']} (44) | 9155 |" in text
    assert "Parameter ratio mlp / unentangled: 50.0x" in text
    ci = r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]"
    assert re.search(
        rf"P\(unentangled > mlp\): final return {ci}, mean return over training {ci}", text
    )


def test_failed_run_is_reported_and_the_rest_finish(grid: Path, tmp_path: Path, capsys):
    out = tmp_path / "grid"
    shutil.copytree(grid, out)
    run = out / "CartPole-v1/mlp/seed0"
    # An interrupted run whose saved models are damaged: its resume fails.
    status = json.loads((run / "run.json").read_text()) | {"status": "interrupted"}
    (run / "run.json").write_text(json.dumps(status))
    (run / "eval.json").unlink()
    for model in [run / "model.zip", *(run / "checkpoints").glob("*.zip")]:
        model.write_bytes(b"not a model")
    code = main(_compare_cli(out, seeds=3))
    err = capsys.readouterr().err
    assert code == 1 and "1 runs failed" in err and "mlp/seed0 (see " in err
    assert "corrupted" in (run / "train.log").read_text()
    for agent in ("mlp", "unentangled"):  # the new seed trained beside the failure
        status = json.loads((out / f"CartPole-v1/{agent}/seed2/run.json").read_text())
        assert status["status"] == "finished"
    assert "1 of 6 runs have not finished" in (out / "summary.md").read_text()


# --- Ray ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_ray_address_is_refused_before_any_work(tmp_path: Path, capsys):
    port = _free_port()
    code = main(_compare_cli(tmp_path / "g", "--ray-address", f"127.0.0.1:{port}"))
    err = capsys.readouterr().err
    assert code == 2 and f"cannot reach a Ray cluster at 127.0.0.1:{port}" in err
    assert not (tmp_path / "g").exists()
    assert main(_compare_cli(tmp_path / "g", "--ray-address", "nowhere")) == 2
    assert "host:port" in capsys.readouterr().err


def test_grid_on_a_local_ray_instance(tmp_path: Path):
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    env = ENV | {"RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, check=True, capture_output=True, env=env, timeout=120)
    try:
        out = tmp_path / "grid"
        result = compare(
            GridSpec(("unentangled",), ("CartPole-v1",), (0, 1), 256, TINY),
            out,
            ray_address=f"127.0.0.1:{port}",
        )
        assert not result.failed
        for seed in (0, 1):
            run = out / "CartPole-v1" / "unentangled" / f"seed{seed}"
            assert json.loads((run / "run.json").read_text())["status"] == "finished"
            assert (run / "curve.json").is_file()
        assert (out / "summary.md").is_file()
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env)


# --- learning curves ----------------------------------------------------------------------


def test_curve_from_checkpoints_matches_the_curve_recorded_in_training(tmp_path: Path):
    # Checkpoints every 256 steps (2560 / 10) and a curve point every 256 steps: each
    # checkpoint is the model a training-time evaluation saw.
    run = train(
        "mlp",
        "CartPole-v1",
        seed=2,
        timesteps=2560,
        run_dir=tmp_path / "run",
        progress=False,
        overrides=list(TINY),
    )
    recorded = run.curve()
    assert recorded is not None and recorded.timesteps[:2] == [0, 256]
    assert main(["curve", str(run.path), "--overwrite"]) == 0
    rebuilt = run.curve()
    assert rebuilt is not None and rebuilt.source == "checkpoints"
    common = sorted(set(recorded.timesteps) & set(rebuilt.timesteps))
    assert len(common) >= 10
    for t in common:
        i, j = recorded.timesteps.index(t), rebuilt.timesteps.index(t)
        assert recorded.returns[i] == rebuilt.returns[j], t


def test_evaluation_during_training_does_not_change_training(tmp_path: Path):
    models = []
    for freq in (0, 256):
        run = train(
            "unentangled",
            "CartPole-v1",
            seed=7,
            timesteps=768,
            run_dir=tmp_path / f"f{freq}",
            progress=False,
            overrides=[f"eval_freq={freq}", "eval_freq_episodes=2", "eval_episodes=1"],
        )
        models.append(PPO.load(run.model_path).policy.state_dict())
    assert open_run(tmp_path / "f0").curve() is None
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_curve_without_checkpoints_is_a_clear_error(tmp_path: Path):
    run = train(
        "mlp",
        "CartPole-v1",
        timesteps=64,
        run_dir=tmp_path / "r",
        progress=False,
        overrides=list(TINY),
    )
    shutil.rmtree(run.checkpoint_dir)
    with pytest.raises(QrlError, match="no checkpoints"):
        curve_from_checkpoints(run.path)


def test_compare_computes_missing_curves_from_checkpoints(grid: Path, tmp_path: Path, capsys):
    out = tmp_path / "grid"
    shutil.copytree(grid, out)
    run = out / "CartPole-v1/mlp/seed1"
    (run / "curve.json").unlink()  # as a run trained without eval_freq
    assert main(_compare_cli(out)) == 0
    assert "1 learning curves to compute" in capsys.readouterr().err
    curve = open_run(run).curve()
    assert curve is not None and curve.source == "checkpoints"


# --- baselines and ablations --------------------------------------------------------------


@pytest.mark.parametrize("env", ["CartPole-v1", "Acrobot-v1", "LunarLander-v3"])
def test_parameter_matched_mlp_is_within_ten_percent(env: str):
    def total(agent: str) -> int:
        config = resolve_config(agent, env)
        envs = make_envs(config, seed=0)
        try:
            return parameter_counts(build_model(config, envs))["total"]
        finally:
            envs.close()

    quantum, matched = total("unentangled"), total("mlp-matched")
    assert abs(matched - quantum) / quantum < 0.1, (quantum, matched)
    assert total("mlp") > 2 * quantum


def test_reservoir_trains_only_the_heads(tmp_path: Path):
    run = train(
        "reservoir",
        "CartPole-v1",
        timesteps=512,
        run_dir=tmp_path / "r",
        progress=False,
        overrides=list(TINY),
    )
    status = run.status()
    assert status.parameters == {"quantum": 0, "classical": 139, "total": 139}
    first = min(
        run.checkpoint_dir.glob("model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1])
    )
    start = PPO.load(first)
    end = PPO.load(run.model_path)
    circuit = ("features_extractor.theta", "features_extractor.input_scale")
    heads = "action_net.weight"
    s, e = start.policy.state_dict(), end.policy.state_dict()
    for name in circuit:
        assert torch.equal(s[name], e[name]), name
    assert not torch.equal(s[heads], e[heads])
    # The frozen circuit is the seed's random one, not zeros.
    assert s["features_extractor.theta"].abs().sum() > 0


def test_classical_twin_swaps_only_the_feature_layer():
    quantum = resolve_config("unentangled", "CartPole-v1")
    twin = resolve_config("classical-twin", "CartPole-v1")
    assert twin.hyperparameters == quantum.hyperparameters
    assert twin.policy["net_arch"] == quantum.policy["net_arch"]
    assert twin.policy["squash"] == quantum.policy["squash"]
    envs = make_envs(twin, seed=0)
    model = build_model(twin, envs)
    envs.close()
    extractor = model.policy.features_extractor
    assert extractor.features_dim == 12  # the unentangled circuit's <X>,<Y>,<Z> of 4 qubits
    out = extractor(torch.randn(5, 4) * 100)
    assert out.shape == (5, 12) and out.abs().max() <= 1
    assert parameter_counts(model) == {"quantum": 0, "classical": 199, "total": 199}


def test_presets_listed_with_descriptions(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp-matched", "reservoir", "classical-twin", "Acrobot-v1"):
        assert name in out
    data = yaml.safe_load(Path("envs/Acrobot-v1.yaml").read_text())
    assert data["solved"] == -100 and data["eval_freq"] > 0


@pytest.mark.parametrize("agent", ["reservoir", "classical-twin"])
def test_ablation_models_load_in_a_fresh_process(agent: str, tmp_path: Path):
    run = train(
        agent,
        "CartPole-v1",
        timesteps=256,
        run_dir=tmp_path / agent,
        progress=False,
        overrides=list(TINY),
    )
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    model = PPO.load(run.model_path)
    values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0]).flatten()
    script = (
        "import json, sys, numpy as np, qrl\n"
        "from stable_baselines3 import PPO\n"
        f"model = PPO.load({str(run.model_path)!r})\n"
        "obs = np.array(json.loads(sys.stdin.read()), dtype=np.float32)\n"
        "values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0])\n"
        "frozen = [n for n, p in model.policy.named_parameters() if not p.requires_grad]\n"
        "print(json.dumps({'values': values.flatten().tolist(), 'frozen': frozen}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(obs.tolist()),
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    fresh = json.loads(out.stdout)
    np.testing.assert_allclose(fresh["values"], values.tolist(), rtol=0, atol=1e-6)
    expected = [
        "features_extractor.theta",
        "features_extractor.input_scale",
        "features_extractor.output_scale",
    ]
    assert sorted(fresh["frozen"]) == (sorted(expected) if agent == "reservoir" else [])


def test_compare_warns_of_too_few_seeds_and_curves_outside_the_run(tmp_path: Path, capsys):
    """Two seeds and a curve interval longer than the budget: said on stderr and in
    summary.md, above the numbers it concerns."""
    out = tmp_path / "few"
    args = ["compare", "--agents", "mlp", "--env", "CartPole-v1", "--seeds", "2"]
    args += ["--timesteps", "256", "--out", str(out), "--workers", "1"]
    assert main([*args, "--set", "eval_freq=5000", "--set", "eval_episodes=2"]) == 0
    err = capsys.readouterr().err
    assert "warning: CartPole-v1: fewer than 5 seeds (mlp 2)" in err
    assert "warning: CartPole-v1: no learning-curve point inside the runs of mlp" in err
    summary = (out / "summary.md").read_text()
    assert summary.count("**Warning**") == 2
