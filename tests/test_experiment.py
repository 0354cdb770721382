"""Runs end to end: train, save, load in a fresh process, evaluate, interrupt, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO

import qrl
from qrl.callbacks import ProgressBar
from qrl.cli import main
from qrl.errors import QrlError
from qrl.evaluation.models import evaluate
from qrl.runs import open_run
from qrl.threads import THREADS_VARIABLE, limited_threads, thread_count
from qrl.training import resume, train

ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def test_run_folder_describes_itself(tiny_run: Path):
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert (
        config["seed"] == 3
        and config["agent"] == "unentangled"
        and config["env_id"] == "CartPole-v1"
    )
    assert config["versions"]["pennylane"] and config["versions"]["torch"]
    assert config["policy"]["extractor"] == "quantum"
    status = json.loads((tiny_run / "run.json").read_text())
    assert status["status"] == "finished" and status["num_timesteps"] >= 512
    assert status["parameters"] == {"quantum": 44, "classical": 139, "total": 183}
    assert (tiny_run / "model.zip").is_file()
    assert list((tiny_run / "checkpoints").glob("model_*_steps.zip"))
    assert list((tiny_run / "tb").glob("events.out.tfevents.*"))
    result = json.loads((tiny_run / "eval.json").read_text())
    assert result["episodes"] == 4 and len(result["returns"]) == 4
    assert result["min_return"] <= result["mean_return"] <= result["max_return"]
    assert result["solved_threshold"] == 475


def test_tensorboard_has_quantum_namespace(tiny_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "quantum/weight_norm/theta",
        "quantum/grad_norm/theta",
        "quantum/grad_norm/input_scale",
        "quantum/input_scale_mean",
        "quantum/output_scale_mean",
        "quantum/circuit_executions",
        "quantum/n_qubits",
        "quantum/parameters_total",
        "rollout/ep_rew_mean",
        "train/value_loss",
    ):
        assert tag in scalars, tag
    tensors = set(events.Tags()["tensors"])
    assert "quantum/circuit/text_summary" in tensors and "quantum/executor/text_summary" in tensors
    drawing = events.Tensors("quantum/circuit/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "RX" in drawing and "<Z>" in drawing
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    plugins = {
        value.metadata.plugin_data.plugin_name
        for path in (tiny_run / "tb").glob("events.out.tfevents.*")
        for event in EventFileLoader(str(path)).Load()
        for value in event.summary.value
    }
    assert "hparams" in plugins


def _actions_script(model: Path, obs: np.ndarray) -> str:
    return textwrap.dedent(
        f"""
        import json, numpy as np
        import qrl  # noqa: F401
        from stable_baselines3 import PPO
        model = PPO.load({str(model)!r})
        obs = np.array({obs.tolist()!r}, dtype=np.float32)
        actions, _ = model.predict(obs, deterministic=True)
        values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0])
        print(json.dumps({{"actions": actions.tolist(), "values": values.flatten().tolist()}}))
        """
    )


def test_saved_model_acts_identically_in_fresh_process(tiny_run: Path):
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    model = PPO.load(tiny_run / "model.zip")
    actions, _ = model.predict(obs, deterministic=True)
    values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0]).flatten().tolist()
    script = _actions_script(tiny_run / "model.zip", obs)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=ENV, check=True
    )
    fresh = json.loads(out.stdout)
    assert fresh["actions"] == actions.tolist()
    np.testing.assert_allclose(fresh["values"], values, rtol=0, atol=1e-6)


def test_default_qubit_takes_the_same_actions(tiny_run: Path):
    obs = np.random.default_rng(1).normal(size=(256, 4)).astype(np.float32)
    on_torch = PPO.load(tiny_run / "model.zip")
    on_pennylane = PPO.load(tiny_run / "model.zip")
    qrl.set_executor(on_pennylane, "default.qubit")
    a, _ = on_torch.predict(obs, deterministic=True)
    b, _ = on_pennylane.predict(obs, deterministic=True)
    assert (a == b).all()
    exact = evaluate(tiny_run, episodes=3)
    pennylane = evaluate(tiny_run, episodes=3, executor="default.qubit")
    assert pennylane["executor"] == "default.qubit" and exact["executor"] == "torch"
    assert pennylane["returns"] == exact["returns"] and pennylane["lengths"] == exact["lengths"]


def test_evaluate_model_file_and_checkpoint(tiny_run: Path):
    checkpoint = sorted((tiny_run / "checkpoints").glob("*.zip"))[0]
    assert evaluate(checkpoint, episodes=2)["episodes"] == 2
    loose = tiny_run.parent / "loose.zip"
    loose.write_bytes((tiny_run / "model.zip").read_bytes())
    with pytest.raises(QrlError, match="not inside a run folder"):
        evaluate(loose, episodes=2)
    assert evaluate(loose, episodes=2, env="CartPole-v1")["env"] == "CartPole-v1"


def test_corrupted_and_missing_models(tmp_path: Path, tiny_run: Path):
    broken = tmp_path / "run"
    broken.mkdir()
    (broken / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    (broken / "model.zip").write_bytes(b"not a zip file")
    with pytest.raises(QrlError, match="corrupted"):
        evaluate(broken, episodes=1)
    truncated = tmp_path / "run2"
    truncated.mkdir()
    (truncated / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    (truncated / "model.zip").write_bytes((tiny_run / "model.zip").read_bytes()[:500])
    with pytest.raises(QrlError, match="corrupted"):
        evaluate(truncated, episodes=1)
    with pytest.raises(QrlError, match="does not exist"):
        evaluate(tmp_path / "nothing.zip")
    with pytest.raises(QrlError, match="not a qrl run folder"):
        evaluate(tmp_path)


def test_video(tiny_run: Path, tmp_path: Path):
    pytest.importorskip("moviepy")
    evaluate(tiny_run, episodes=2, video=tmp_path / "video")
    assert len(list((tmp_path / "video").glob("*.mp4"))) == 2


def test_interrupt_saves_and_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """Ctrl-C during training keeps the model; --resume continues to the full budget."""
    original = ProgressBar._on_step

    def interrupt(self):
        if self.model.num_timesteps >= 300:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(ProgressBar, "_on_step", interrupt)
    run = train(
        "unentangled",
        "CartPole-v1",
        timesteps=1024,
        run_dir=tmp_path / "r",
        overrides=["eval_episodes=2", "n_envs=2", "hyperparameters.batch_size=64"],
    )
    status = run.status()
    assert status.status == "interrupted" and 300 <= status.num_timesteps < 1024
    assert run.model_path.is_file() and run.evaluation() is None
    assert run.latest_checkpoint()[1] == status.num_timesteps
    monkeypatch.setattr(ProgressBar, "_on_step", original)
    assert main(["train", "--resume", str(run.path), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run.path)
    resumed = open_run(run.path)
    assert resumed.status().status == "finished"
    assert resumed.status().num_timesteps >= 1024
    assert resumed.evaluation()["num_timesteps"] == resumed.status().num_timesteps
    with pytest.raises(QrlError, match="already trained"):
        resume(run.path)
    (run.path / "eval.json").unlink()  # as if Ctrl-C hit the final evaluation
    assert resume(run.path).evaluation()["num_timesteps"] == resumed.status().num_timesteps
    assert main(["train", "--resume", str(run.path), "--agent", "mlp"]) == 2
    assert "--resume continues a run as configured; drop --agent" in capsys.readouterr().err


def test_off_policy_run_and_resume(tmp_path: Path):
    overrides = [
        "algorithm=dqn",
        "policy.net_arch=[]",
        "eval_episodes=1",
        "n_envs=1",
        "hyperparameters.learning_starts=50",
        "hyperparameters.train_freq=16",
        "hyperparameters.gradient_steps=1",
        "hyperparameters.batch_size=16",
    ]
    run = train(
        "unentangled",
        "CartPole-v1",
        timesteps=200,
        run_dir=tmp_path / "dqn",
        overrides=overrides,
        progress=False,
    )
    assert run.status().status == "finished"
    assert list(run.checkpoint_dir.glob("model_replay_buffer_*_steps.pkl"))
    extended = resume(run.path, timesteps=300, progress=False)
    assert extended.status().num_timesteps >= 300


def test_train_on_pennylane_executor(tmp_path: Path):
    run = train(
        "unentangled",
        "CartPole-v1",
        timesteps=64,
        executor="default.qubit",
        run_dir=tmp_path / "pl",
        progress=False,
        overrides=[
            "eval_episodes=1",
            "n_envs=2",
            "hyperparameters.n_steps=32",
            "hyperparameters.batch_size=64",
            "hyperparameters.n_epochs=1",
        ],
    )
    assert run.evaluation()["executor"] == "default.qubit"
    assert open_run(run.path).config.policy["executor"] == "default.qubit"


def test_existing_run_folder_is_not_overwritten(tiny_run: Path):
    with pytest.raises(QrlError, match="already holds a run"):
        train("unentangled", "CartPole-v1", run_dir=tiny_run)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--agent", "quantum", "--env", "CartPole-v1"], "unknown agent 'quantum'"),
        (["train", "--agent", "mlp", "--env", "CartPol-v1"], "unknown environment 'CartPol-v1'"),
        (
            [
                "train",
                "--agent",
                "unentangled",
                "--env",
                "CartPole-v1",
                "--executor",
                "qiskit.nope",
            ],
            "unknown executor",
        ),
        (
            ["train", "--agent", "mlp", "--env", "CartPole-v1", "--set", "foo=1"],
            "unknown --set key 'foo'",
        ),
        (["train", "--agent", "mlp"], "needs --agent and --env"),
        (
            ["train", "--agent", "unentangled", "--env", "Blackjack-v1"],
            "cannot encode observation space",
        ),
        (
            ["train", "--agent", "mlp", "--env", "Blackjack-v1"],
            "observation space is not supported",
        ),
        (
            [
                *["train", "--agent", "unentangled", "--env", "CartPole-v1"],
                *["--set", "algorithm=dqn", "--set", "policy.net_arch={pi: [8]}"],
            ],
            "bad policy.net_arch",
        ),
        (["evaluate", "no/such/run"], "does not exist"),
        (["evaluate", ".", "--shots", "10"], "--packing and --option need an --executor"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("qrl: error:")


def test_cli_debug_shows_traceback():
    with pytest.raises(QrlError):
        main(["--debug", "train", "--agent", "nope", "--env", "CartPole-v1"])


def test_cli_presets(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "unentangled" in out and "LunarLander-v3" in out


def test_cli_evaluate_json(tiny_run: Path, capsys):
    assert main(["evaluate", str(tiny_run), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


def test_console_script_sigint_keeps_model(tmp_path: Path):
    """The real command: train prints only the run path on stdout; SIGINT saves and exits 130."""
    run_dir = tmp_path / "sig"
    proc = subprocess.Popen(
        [
            "qrl",
            "train",
            "--agent",
            "unentangled",
            "--env",
            "CartPole-v1",
            "--run-dir",
            str(run_dir),
            "--timesteps",
            "1000000",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    # Wait until TensorBoard events grow after the first write: a rollout has finished.
    deadline = time.time() + 120
    sizes: list[int] = []
    while time.time() < deadline and (len(sizes) < 2 or sizes[-1] == sizes[0]):
        events = list((run_dir / "tb").glob("events.out.tfevents.*")) if run_dir.exists() else []
        if events and events[0].stat().st_size:
            sizes.append(events[0].stat().st_size)
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert out.strip().splitlines()[-1] == str(run_dir)
    assert "qrl train --resume" in err
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "interrupted" and status["num_timesteps"] > 0
    assert PPO.load(run_dir / "model.zip").num_timesteps == status["num_timesteps"]


def test_public_api_resolves_lazily():
    for name in qrl.__all__:
        assert getattr(qrl, name) is not None
    code = "import sys, qrl, qrl.cli; assert 'torch' not in sys.modules, 'qrl --help imports torch'"
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


def test_training_threads_default_override_and_restore(monkeypatch):
    """Training runs PyTorch and NumPy's BLAS on one thread unless QRL_TORCH_THREADS says
    otherwise; the previous settings come back afterwards, and a bad value is one clear
    error."""
    import torch
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before, blas_before = torch.get_num_threads(), blas_threads()
    assert blas_before  # NumPy's BLAS is seen
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert thread_count() == 1
    with limited_threads(thread_count()):
        assert torch.get_num_threads() == 1
        assert set(blas_threads()) == {1}  # NumPy's BLAS too
    assert torch.get_num_threads() == before
    assert blas_threads() == blas_before
    monkeypatch.setenv(THREADS_VARIABLE, "2")
    with limited_threads(thread_count()):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    monkeypatch.setenv(THREADS_VARIABLE, "many")
    with pytest.raises(QrlError, match="must be a whole number"):
        thread_count()
