"""qrl tune: multi-seed trials on Optuna, pruning on the seeds' aggregate curve, failed
trials kept, studies continued, search spaces as data, and a study shared by two processes
through a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from qrl.cli import main
from qrl.tuning.study import make_storage, redacted, storage_url

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
TINY = [
    *["--set", "n_envs=1", "--set", "hyperparameters.n_steps=32"],
    *["--set", "hyperparameters.batch_size=32", "--set", "hyperparameters.n_epochs=1"],
    *["--set", "eval_episodes=2", "--set", "eval_freq_episodes=2"],
]
LEARNING_RATE = {
    "parameters": {"hyperparameters.learning_rate": {"float": [1e-4, 1e-2], "log": True}}
}


def _space(folder: Path, data: object, name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _tune(out: Path, *extra: str, trials: int = 2, seeds: int = 1) -> list[str]:
    return [
        *["tune", "--agent", "mlp", "--env", "CartPole-v1", "--timesteps", "64"],
        *["--trials", str(trials), "--seeds", str(seeds), "--out", str(out), *TINY, *extra],
    ]


def _study(out: Path, name: str = "CartPole-v1-mlp") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(storage_url(None, out)))


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def test_the_bar_command_leaves_a_study_csv_plots_and_a_preset_that_trains(tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = ["tune", "--agent", "unentangled", "--env", "CartPole-v1", "--trials", "3"]
    args += ["--seeds", "2", "--timesteps", "2048", "--out", str(out)]
    assert main(args) == 0
    assert (out / "study.db").is_file()
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 4 and "user_attrs_final_returns" in rows[0]
    assert {p.name for p in (out / "plots").glob("*.png")} >= {"history.png", "slice.png"}
    study = _study(out, "CartPole-v1-unentangled")
    assert set(_states(study)) <= {"COMPLETE", "PRUNED"} and study.trials[0].value is not None
    for trial in study.trials:  # two seeds side by side, the same setting
        runs = sorted(Path(trial.user_attrs["folder"]).glob("seed*"))
        assert [r.name for r in runs] == ["seed1000", "seed1001"]
        assert trial.intermediate_values  # the aggregate curve reached the pruner
        if trial.state.name == "COMPLETE":
            assert len(trial.user_attrs["final_returns"]) == 2
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["algorithm"] == "ppo" and best["policy"]["extractor"] == "quantum"
    run = tmp_path / "run"
    assert main(["train", "--agent", str(out / "best.yaml"), "--env", "CartPole-v1",
                 "--timesteps", "512", "--run-dir", str(run), "--set", "eval_episodes=2",
                 "--no-progress"]) == 0  # fmt: skip
    assert (run / "model.zip").is_file()
    args[args.index("--trials") + 1] = "5"
    assert main(args) == 0  # continues the same study
    assert len(_study(out, "CartPole-v1-unentangled").trials) == 5


def test_pruning_stops_a_setting_below_the_median(tmp_path: Path) -> None:
    """Episodes cut at 5 steps return at most 5 at every learning-curve point, below any
    policy on whole episodes: the median pruner stops those trials early."""
    space = _space(tmp_path, {"parameters": {"max_episode_steps": {"choices": [500, 5]}}})
    out = tmp_path / "study"
    extra = ["--space", str(space), "--sampler", "random", "--sampler-seed", "2", "--points", "4"]
    args = _tune(out, *extra, trials=5)
    args[args.index("--timesteps") + 1] = "4096"
    assert main(args) == 0
    study = _study(out)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, _states(study)
    assert all(t.params["max_episode_steps"] == 5 for t in pruned)
    for trial in pruned:  # judged before its last point (when its runs finish first,
        # on a fast machine, the trial is still pruned on the points they reached)
        assert 0 < len(trial.intermediate_values) < 4
        assert max(trial.intermediate_values) > 1365  # not pruned in the first third
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert any(t.params["max_episode_steps"] == 500 for t in complete)


def test_a_failing_trial_is_kept_as_failed_and_the_study_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = _space(tmp_path, {"parameters": {"policy.net_arch": {"choices": ["{pi: [-3]}"]}}})
    out = tmp_path / "study"
    assert main(_tune(out, "--space", str(space), trials=2)) == 0
    study = _study(out)
    assert _states(study) == ["FAIL", "FAIL"]
    assert "negative dimension" in study.trials[0].user_attrs["error"]
    assert "none completed" in capsys.readouterr().err
    assert not (out / "best.yaml").exists()


def test_an_interrupted_study_keeps_its_trial_as_failed_and_continues(tmp_path: Path) -> None:
    out = tmp_path / "study"
    space = _space(tmp_path, LEARNING_RATE)
    args = _tune(out, "--space", str(space), trials=3)
    args[args.index("hyperparameters.n_steps=32")] = "hyperparameters.n_steps=8"
    args[args.index("--timesteps") + 1] = "100000"
    process = subprocess.Popen(["qrl", *args], env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("trials/0000/seed1000/curve.json")):
        assert time.monotonic() < deadline and process.poll() is None, "the trial never started"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    study = _study(out)
    assert _states(study) == ["FAIL"]  # interrupted: failed, not lost, not left running
    args[args.index("--timesteps") + 1] = "64"
    assert main(args) != 0  # another budget: another study, refused in this folder
    args[args.index("--timesteps") + 1] = "100000"
    args[args.index("--trials") + 1] = "1"
    assert main(args) == 0  # the study already holds one trial: nothing to add
    assert len(_study(out).trials) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must hold a YAML mapping"),
        ("parameters: {}", "must have 'parameters'"),
        ("params: {a: 1}\nparameters: {x: {choices: [1]}}", "unknown key 'params'"),
        ("parameters: {hyperparameters.gamma: 0.9}", "must be a mapping with one of"),
        ("parameters: {hyperparameters.gamma: {float: [0.9]}}", "takes [low, high]"),
        ("parameters: {hyperparameters.gamma: {float: [0.99, 0.9]}}", "low must be below high"),
        ("parameters: {hyperparameters.learning_rate: {float: [0, 1], log: true}}", "log scale"),
        ("parameters: {policy.n_layers: {int: [1.5, 3]}}", "whole numbers"),
        ("parameters: {policy.n_layers: {choices: []}}", "non-empty list"),
        ("parameters: {policy.n_layers: {int: [1, 3], spread: 2}}", "unknown field 'spread'"),
        ("parameters: {x: {choices: [1]}", "malformed YAML"),
    ],
)
def test_bad_search_space_files_get_one_line(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = _space(tmp_path, content)
    assert main(_tune(tmp_path / "study", "--space", str(space))) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "study" / "study.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "grid"], "unknown sampler 'grid'"),
        (["--pruner", "asha"], "unknown pruner 'asha'"),
        (["--objective", "best"], "unknown objective 'best'"),
        (["--seeds", "0"], "--seeds"),
        (["--storage", "postgresql://u:hunter2@127.0.0.1:1/x"], "cannot open the study storage"),
    ],
)
def test_bad_tune_options_get_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = _space(tmp_path, LEARNING_RATE)
    assert main([*_tune(tmp_path / "study", "--space", str(space)), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert "hunter2" not in err


def test_redacted_hides_a_storage_password() -> None:
    assert redacted("postgresql://qrl:secret@db:5432/s") == "postgresql://qrl:***@db:5432/s"
    assert redacted("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "cmaes"])
def test_every_sampler_runs_a_study(sampler: str, tmp_path: Path) -> None:
    if sampler == "cmaes":
        pytest.importorskip("cmaes")
    space = _space(tmp_path, LEARNING_RATE)
    assert main(_tune(tmp_path / "s", "--space", str(space), "--sampler", sampler)) == 0
    assert _states(_study(tmp_path / "s")) == ["COMPLETE", "COMPLETE"]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_continued_study_draws_new_settings(sampler: str, tmp_path: Path) -> None:
    # A seeded sampler restarts its random stream: without mixing in the trial count a
    # continued study would run its first settings again.
    space = _space(tmp_path, LEARNING_RATE)
    args = _tune(tmp_path / "s", "--space", str(space), "--sampler", sampler)
    assert main(args) == 0
    args[args.index("--trials") + 1] = "4"
    assert main(args) == 0
    rates = [t.params["hyperparameters.learning_rate"] for t in _study(tmp_path / "s").trials]
    assert len(rates) == 4 and len(set(rates)) == 4


def test_the_shipped_spaces_cover_every_agent_preset() -> None:
    from qrl.agents import resolve_config
    from qrl.presets import preset_names
    from qrl.tuning.space import load_space

    for agent in preset_names("agents"):
        config = resolve_config(agent, "CartPole-v1")
        space = load_space(config, None, {})
        keys = {p.key for p in space.parameters}
        assert "hyperparameters.learning_rate" in keys, agent
        if config.policy.get("circuit") == "entangled":
            assert {"policy.entangler", "policy.pattern"} <= keys


# -- a study shared through a real PostgreSQL server ---------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of its own, started for these tests (Debian's server refuses to
    run as root: as root it runs as the ``postgres`` user); its URL."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no PostgreSQL server here (initdb and pg_ctl not on PATH)")
    pytest.importorskip("psycopg")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as its user")
        as_user = ["runuser", "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="qrl-postgres-"))
    home.chmod(0o777)
    data, port = home / "data", _free_port()
    if as_user:
        shutil.chown(home, "postgres")
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "qrl"],
                       check=True, capture_output=True)  # fmt: skip
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        log = str(home / "log")
        start = [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", log, "-w", "start"]
        subprocess.run(start, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {exc.stderr.decode()[-300:]}")
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "qrl", "-d",
                        "postgres", "-c", "CREATE DATABASE studies"], check=True,
                       capture_output=True)  # fmt: skip
        yield f"postgresql://qrl@127.0.0.1:{port}/studies"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def test_two_processes_share_one_study_through_postgresql(postgres: str, tmp_path: Path) -> None:
    space = _space(tmp_path, LEARNING_RATE)
    common = ["--space", str(space), "--storage", postgres, "--study-name", "shared"]
    processes = [
        subprocess.Popen(
            ["qrl", *_tune(tmp_path / f"machine{i}", *common, "--sampler-seed", str(i), trials=4)],
            env=ENV,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=postgres)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    states = [(t.state.name, t.user_attrs.get("folder")) for t in study.trials]
    assert 4 <= len(finished) <= 5, states  # both stop at 4; the last may overlap
    folders = {Path(t.user_attrs["folder"]).parent.parent.name for t in finished}
    assert folders == {"machine1", "machine2"}  # both processes ran trials of the study
    for i in (1, 2):
        assert (tmp_path / f"machine{i}" / "best.yaml").is_file()
