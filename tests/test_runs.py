"""Run folders that never mix, lie or break: one writer per folder, unique default folders,
one grid per compare folder, resume from the newest readable checkpoint, restart in place,
compare jobs that stop with compare, wall time of killed runs, budgets in whole rollouts."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import qrl.training  # noqa: F401  (imported once here: the in-process commands start fast)
from qrl.cli import main
from qrl.presets import RunConfig
from qrl.runs import default_run_dir

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
TINY = ["--set", "eval_episodes=1", "--set", "eval_freq=0", "--no-progress"]


def _train(run_dir: Path, timesteps: int, *extra: str) -> list[str]:
    """Arguments of a tiny classical CartPole run."""
    args = ["train", "--agent", "mlp", "--env", "CartPole-v1", "--timesteps", str(timesteps)]
    return [*args, "--run-dir", str(run_dir), *TINY, *extra]


def _background(args: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``qrl ARGS`` in its own process; its output goes to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            ["qrl", *args], stdout=out, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=cwd
        )


def _holder(folder: Path) -> dict[str, Any]:
    """What the lock file of a folder says (its last holder), or {}."""
    try:
        return dict(json.loads((folder / ".lock").read_text()))
    except (OSError, ValueError):
        return {}


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether a process runs (an unreaped zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``qrl ARGS`` in this process: exit status, stdout, stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qrl: error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])


def _status(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "run.json").read_text()))


def _checkpoints(run: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("model_*.zip"))


def _repeated_tensorboard_steps(run: Path) -> list[tuple[str, int]]:
    """(tag, step) pairs logged more than once over a run's event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    counts: collections.Counter[tuple[str, int]] = collections.Counter()
    for path in (run / "tb").rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if not value.tag.startswith("_hparams_/"):  # once per session, at step 0
                    counts[(value.tag, event.step)] += 1
    return [key for key, n in counts.items() if n > 1]


def test_one_writer_per_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A second train, resume or evaluate is refused at once while a process writes the
    folder, and changes nothing; a run killed outright keeps its wall time; a damaged newest
    checkpoint is skipped on resume; TensorBoard never holds a step twice."""
    run = tmp_path / "r"
    first = _background(_train(run, 81920), tmp_path / "first.log")
    _wait_for(lambda: _holder(run).get("pid") == first.pid, "the first run's lock")
    _wait_for(lambda: (run / "run.json").is_file(), "the first run's run.json")
    config = (run / "config.yaml").read_bytes()

    other = ["train", "--agent", "mlp", "--seed", "7", "--env", "CartPole-v1"]
    code, out, err = _cli(capsys, *other, "--run-dir", str(run), "--timesteps", "64", *TINY)
    assert code == 2 and out == ""
    _one_line_error(err, f"{run} is in use by process {first.pid}", "--timesteps 81920")
    code, _, err = _cli(capsys, "train", "--resume", str(run))
    assert code == 2
    _one_line_error(err, f"in use by process {first.pid}")
    _wait_for(lambda: _status(run)["num_timesteps"] > 0, "a checkpoint, recorded in run.json")
    code, _, err = _cli(capsys, "evaluate", str(run), "--executor", "default.qubit")
    assert code == 2
    _one_line_error(err, f"in use by process {first.pid}")
    assert (run / "config.yaml").read_bytes() == config
    assert not (run / "eval.json").exists() and not (run / "evaluations").exists()
    assert _holder(run)["pid"] == first.pid

    # Killed outright: run.json holds the steps and time up to its latest checkpoint.
    _wait_for(lambda: len(_checkpoints(run)) >= 2, "two checkpoints (one to fall back to)")
    first.kill()
    assert first.wait(timeout=30) == -signal.SIGKILL
    killed = _status(run)
    assert killed["status"] == "running" and killed["num_timesteps"] in _checkpoints(run)
    assert killed["num_timesteps"] > 0 and killed["wall_time_s"] > 0

    # Two resumes of one folder: the second is refused.
    second = _background(
        ["train", "--resume", str(run), "--timesteps", "8192000", "--no-progress"],
        tmp_path / "second.log",
    )
    _wait_for(lambda: _holder(run).get("pid") == second.pid, "the resume's lock")
    code, _, err = _cli(capsys, "train", "--resume", str(run))
    assert code == 2
    _one_line_error(err, f"in use by process {second.pid}", "--resume")
    _wait_for(lambda: _status(run).get("pid") == second.pid, "the resume to train")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 130, (tmp_path / "second.log").read_text()
    stopped = _status(run)
    assert stopped["status"] == "interrupted"
    assert stopped["wall_time_s"] > killed["wall_time_s"]

    # The newest checkpoint is damaged: resume continues from the one before, and says so.
    steps = _checkpoints(run)
    newest = run / "checkpoints" / f"model_{steps[-1]}_steps.zip"
    newest.write_bytes(b"PK\x03")
    before = steps[-2]
    code, out, err = _cli(capsys, "train", "--resume", str(run), "--timesteps", str(before + 256))
    assert code == 0, err
    assert f"skipped checkpoints/{newest.name} (corrupted" in err
    assert f"resuming {run} from model_{before}_steps.zip ({before} steps)" in err
    assert (run / "checkpoints" / f"{newest.name}.damaged").is_file()
    done = _status(run)
    assert done["status"] == "finished" and done["num_timesteps"] == before + 256
    assert done["wall_time_s"] > stopped["wall_time_s"]
    assert _repeated_tensorboard_steps(run) == []


def test_default_run_folders_are_unique(tmp_path: Path):
    config = RunConfig(agent="mlp", env="CartPole-v1", env_id="CartPole-v1", algorithm="ppo")
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: default_run_dir(config, tmp_path / "many"), range(8)))
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)

    # Two runs without --run-dir started together get two folders.
    args = ["train", "--agent", "mlp", "--env", "CartPole-v1", "--timesteps", "64", *TINY]
    procs = [_background(args, tmp_path / f"{k}.log", cwd=tmp_path) for k in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert _status(folder)["status"] == "finished"


def test_run_killed_before_its_first_checkpoint_starts_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = tmp_path / "r"
    proc = _background(_train(run, 4096000), tmp_path / "killed.log")
    _wait_for(lambda: (run / "run.json").is_file(), "run.json")
    proc.kill()
    proc.wait(timeout=30)
    assert (run / "config.yaml").is_file() and not _checkpoints(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)

    # The command again (another budget, to be quick): starts over in place.
    code, out, err = _cli(capsys, *_train(run, 64))
    assert code == 0 and out.strip() == str(run)
    assert "stopped before its first checkpoint (nothing trained to keep): starting it again" in err
    assert _status(run)["status"] == "finished" and _status(run)["num_timesteps"] == 256

    # --resume: trains from the start with the recorded configuration.
    code, out, err = _cli(capsys, "train", "--resume", str(copy), "--timesteps", "64")
    assert code == 0, err
    assert "has no checkpoint (it stopped before its first one): training it from the start" in err
    assert _status(copy)["status"] == "finished" and _status(copy)["num_timesteps"] == 256


def test_refused_resume_and_damaged_files_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = tmp_path / "r"
    assert _cli(capsys, *_train(run, 256))[0] == 0
    config = (run / "config.yaml").read_bytes()
    code, _, err = _cli(capsys, "train", "--resume", str(run), "--timesteps", "100")
    assert code == 2
    _one_line_error(err, "already trained 256 steps, --timesteps 100 is no more")
    assert (run / "config.yaml").read_bytes() == config
    for name in ("run.json", "eval.json"):
        whole = (run / name).read_bytes()
        (run / name).write_bytes(whole[:20])
        code, _, err = _cli(capsys, "train", "--resume", str(run), "--timesteps", "512")
        assert code == 2
        _one_line_error(err, f"{run / name} is damaged")
        assert (run / "config.yaml").read_bytes() == config
        (run / name).write_bytes(whole)


def test_budgets_are_whole_rollouts(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    target = tmp_path / "ft"
    finetune = ["finetune", str(tiny_run), "--run-dir", str(target), "--no-progress"]
    code, _, err = _cli(
        capsys, *finetune, "--executor", "qiskit.aer", "--shots", "64", "--timesteps", "8"
    )
    assert code == 2 and not target.exists()
    _one_line_error(
        err,
        "--timesteps 8 is less than one rollout (n_steps 32 x n_envs 8 = 256 steps)",
        "give --timesteps 256 or more",
        "--set hyperparameters.n_steps=1 (1 x 8 = 8 steps)",
    )
    code, _, err = _cli(
        capsys,
        *finetune,
        "--executor",
        "default.qubit",
        "--timesteps",
        "40",
        "--set",
        "hyperparameters.n_steps=4",
    )
    assert code == 0, err
    said = "training 64 steps, not 40: ppo collects whole rollouts of n_steps 4 x n_envs 8 = 32"
    assert said in err and err.index(said) < err.index("sent ")
    assert _status(target)["num_timesteps"] == 64

    # A plain Gymnasium id: SB3's 2048-step rollouts.
    args = ["train", "--agent", "mlp", "--env", "MountainCar-v0", "--timesteps", "128"]
    code, _, err = _cli(capsys, *args, "--run-dir", str(tmp_path / "mc"), *TINY)
    assert code == 0
    assert "training 2048 steps, not 128: ppo collects whole rollouts of n_steps 2048" in err
    assert _status(tmp_path / "mc")["num_timesteps"] == 2048


def test_one_comparison_per_folder_and_its_jobs_stop_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "grid"
    grid = ["compare", "--agents", "mlp", "--env", "CartPole-v1", "--seeds", "1", "--out", str(out)]
    grid += ["--timesteps", "4096000", "--workers", "1"]
    grid += ["--set", "eval_episodes=1", "--set", "eval_freq=0"]
    cell = out / "CartPole-v1" / "mlp" / "seed0"
    compare = _background(grid, tmp_path / "compare.log")
    _wait_for(lambda: _holder(cell).get("pid") not in (None, compare.pid), "the job's lock")
    job = int(_holder(cell)["pid"])
    _wait_for(lambda: (cell / "run.json").is_file(), "the job's run.json")

    # A second comparison on the same folder, with another setting: refused while it runs.
    other = [*grid, "--set", "hyperparameters.learning_rate=0.01"]
    code, _, err = _cli(capsys, *other)
    assert code == 2
    _one_line_error(err, f"{out} is in use by process {compare.pid} (qrl compare --agents mlp")

    # Killed outright, the comparison takes its job with it; the job saves as on Ctrl-C.
    compare.kill()
    compare.wait(timeout=30)
    _wait_for(lambda: not _alive(job), "the job to stop")
    stopped = _status(cell)
    assert stopped["status"] == "interrupted" and stopped["wall_time_s"] > 0
    assert "interrupted after" in (cell / "train.log").read_text()

    # The other setting is refused before any training, naming the difference.
    stamp = (cell / "run.json").stat().st_mtime_ns
    code, _, err = _cli(capsys, *other)
    assert code == 2
    _one_line_error(
        err,
        f"{out} holds a grid trained with other settings",
        "--set hyperparameters.learning_rate: folder not given, this command 0.01",
    )
    assert (cell / "run.json").stat().st_mtime_ns == stamp

    # A damaged run.json: the run is reported failed, naming the file; compare goes on.
    (cell / "run.json").write_text('{"status": "interr')
    code, _, err = _cli(capsys, "compare", "--out", str(out))
    assert code == 1
    assert f"CartPole-v1/mlp/seed0: {cell / 'run.json'} is damaged" in err
    assert "Traceback" not in err and (out / "summary.md").is_file()


def test_a_stuck_run_is_time_boxed_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture):
    """``--run-timeout``: a run that takes longer is stopped (it saves) and reported; the
    grid goes on, and the same command without the limit resumes it."""
    out = tmp_path / "grid"
    args = ["compare", "--agents", "mlp", "--env", "CartPole-v1", "--seeds", "1"]
    args += ["--timesteps", "4096000", "--workers", "1", "--out", str(out)]
    args += ["--set", "eval_freq=0", "--set", "eval_episodes=1"]
    assert main([*args, "--run-timeout", "12"]) == 1  # well past the start on a busy machine
    err = capsys.readouterr().err
    assert "CartPole-v1/mlp/seed0: TIMED OUT after 12.0 s (stopped and saved)" in err
    status = json.loads((out / "CartPole-v1/mlp/seed0/run.json").read_text())
    assert status["status"] == "interrupted" and status["num_timesteps"] > 0
    assert "stopped after its time limit" in (out / "CartPole-v1/mlp/seed0/train.log").read_text()


def test_atomic_writes_give_files_the_usual_mode(tmp_path: Path):
    """The temporary file behind an atomic write is private; the file it becomes gets the
    mode of a plainly created file (0o666 less the umask), so that run folders can be shared."""
    from stable_baselines3 import PPO

    from qrl.runs import FILE_MODE, save_model, write_atomic

    mask = os.umask(0)
    os.umask(mask)
    assert (0o666 & ~mask) == FILE_MODE
    write_atomic(tmp_path / "a.yaml", "a: 1\n")
    save_model(PPO("MlpPolicy", "CartPole-v1", n_steps=64), tmp_path / "model.zip")
    for name in ("a.yaml", "model.zip"):
        assert (tmp_path / name).stat().st_mode & 0o777 == FILE_MODE


def test_models_are_saved_atomically(tmp_path: Path):
    from stable_baselines3 import PPO

    from qrl.runs import save_model

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64)
    target = tmp_path / "model.zip"
    target.write_bytes(b"the previous model")
    save_model(model, target)
    assert PPO.load(target).n_steps == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]  # no temporary left
