"""Shots, noise and hardware: the qiskit executors, packing, retries, secrets, evaluation and
fine-tuning, all offline (fake IBM devices stand in for real ones)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit_aer")
pytest.importorskip("qiskit_ibm_runtime")

import qiskit_ibm_runtime
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from qrl.circuits import make_circuit
from qrl.errors import QrlError
from qrl.evaluation import comparison as evaluation
from qrl.evaluation.comparison import evaluate_executors, evaluation_cost
from qrl.executors import make_executor
from qrl.executors.jobs import SubmissionError, submit_with_retries

SECRET = "qrl-planted-token-5f2c9a71"


def _circuit(name: str, n: int = 3, **options):
    return make_circuit(
        name, n, n_layers=2, encoding="rx", rotations="zyz", observables=("X", "Y", "Z"), **options
    )


def _weights(circuit, seed: int = 0):
    weights = circuit.init_weights(torch.Generator().manual_seed(seed), dtype=torch.float64)
    return {k: v.requires_grad_() for k, v in weights.items()}


def _inputs(batch: int, n: int = 3) -> torch.Tensor:
    return torch.rand(batch, n, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# Trainable entanglers take the four-term shift rule of controlled rotations.
AER_CIRCUITS = {
    "unentangled": ("unentangled", {}),
    "entangled": ("entangled", {}),
    "crz-all": ("entangled", {"entangler": "crz", "pattern": "all"}),
    "crx-range2": ("entangled", {"entangler": "crx", "pattern": "range:2"}),
}


@pytest.mark.parametrize("case", sorted(AER_CIRCUITS))
@pytest.mark.parametrize("packing", [1, 3, 4])
def test_exact_aer_matches_simulator_with_parameter_shift_gradients(case, packing):
    """Without shots, Aer's packed circuits give the simulator's values and gradients."""
    name, options = AER_CIRCUITS[case]
    circuit, x = _circuit(name, **options), _inputs(5)
    weights = _weights(circuit)
    ref = make_executor("torch")(circuit, x, weights)
    ref_grads = torch.autograd.grad(ref.sum(), list(weights.values()))
    executor = make_executor("qiskit.aer", {"shots": None, "packing": packing})
    out = executor(circuit, x, weights)
    grads = torch.autograd.grad(out.sum(), list(weights.values()))
    assert torch.allclose(out, ref, atol=1e-10)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-9)
    units = 5 if packing == 1 else None
    assert executor.cost.submissions == 2  # one forward, one for all shifted circuits
    if units:
        assert executor.cost.circuits == executor.cost.policy_circuits


def test_exact_aer_matches_pennylane_default_qubit():
    circuit, x = _circuit("entangled"), _inputs(4)
    weights = _weights(circuit)
    ref = make_executor("default.qubit")(circuit, x, weights)
    out = make_executor("qiskit.aer", {"shots": None})(circuit, x, weights)
    assert torch.allclose(out, ref.to(out.dtype), atol=1e-10)


def test_packing_divides_circuits_and_keeps_results():
    circuit, x = _circuit("unentangled"), _inputs(8)
    weights = _weights(circuit)
    single = make_executor("qiskit.aer", {"shots": None})
    packed = make_executor("qiskit.aer", {"shots": None, "packing": 4})
    with torch.no_grad():
        a, b = single(circuit, x, weights), packed(circuit, x, weights)
    assert torch.allclose(a, b, atol=1e-12)
    assert single.cost.circuits == 8 and packed.cost.circuits == 2
    assert single.cost.submissions == packed.cost.submissions == 1


def test_wide_packed_circuits_run_as_matrix_product_states():
    circuit, x = _circuit("unentangled", 4), _inputs(8, 4)
    weights = _weights(circuit)
    packed = make_executor("qiskit.aer", {"shots": None, "packing": 8})  # 32 qubits
    with torch.no_grad():
        out = packed(circuit, x, weights)
        exact = make_executor("torch")(circuit, x, weights)
    assert torch.allclose(out, exact, atol=1e-10) and packed.cost.circuits == 1


def test_large_batches_split_into_jobs_of_max_circuits():
    circuit, x = _circuit("unentangled"), _inputs(5)
    weights = _weights(circuit)
    executor = make_executor("qiskit.aer", {"shots": None, "packing": 2, "max_circuits": 2})
    with torch.no_grad():
        out = executor(circuit, x, weights)
        exact = make_executor("torch")(circuit, x, weights)
    assert torch.allclose(out, exact, atol=1e-10)
    assert executor.cost.circuits == 3 and executor.cost.submissions == 2


def test_shots_estimate_expectations_within_shot_noise_and_are_seeded():
    circuit, x = _circuit("unentangled"), _inputs(6)
    weights = _weights(circuit)
    with torch.no_grad():
        exact = make_executor("torch")(circuit, x, weights)
        runs = [
            make_executor("qiskit.aer", {"shots": 4000, "seed": 7, "packing": p})(
                circuit, x, weights
            )
            for p in (1, 1, 6)
        ]
    sigma = 1 / np.sqrt(4000)
    for out in runs:
        assert float((out - exact).abs().max()) < 5 * sigma
    assert torch.equal(runs[0], runs[1])  # same seed, same samples


def test_fake_backend_transpiles_to_device_basis_and_reports_packing():
    circuit = _circuit("unentangled", 4)
    manila = make_executor("qiskit.aer", {"backend": "fake_manila", "shots": 128})
    info = manila.transpile_report(circuit, batch=8)
    basis = set(FakeManilaV2().operation_names)
    assert set(info["gates"]) <= basis and info["depth"] > 0
    assert info["packing"] == 1 and info["circuits_per_call"] == 24
    wide = make_executor("qiskit.aer", {"backend": "fake_sherbrooke", "packing": "auto"})
    assert wide.packing_factor(circuit) == 30  # 31 fit; a multiple of the 3 bases
    info = wide.transpile_report(circuit, batch=8)
    assert info["packing"] == 24 and info["circuits_per_call"] == 1
    assert len(set(info["physical_qubits"])) == 96
    with pytest.raises(QrlError, match="at most packing 1"):
        make_executor("qiskit.aer", {"backend": "fake_manila", "packing": 2}).packing_factor(
            circuit
        )


def test_device_noise_moves_expectations_and_entangled_circuits_route():
    circuit, x = _circuit("entangled", 4), _inputs(4, 4)
    weights = _weights(circuit)
    exact = make_executor("qiskit.aer", {"shots": None})
    noisy = make_executor("qiskit.aer", {"shots": None, "backend": "fake_manila"})
    with torch.no_grad():
        a, b = exact(circuit, x, weights), noisy(circuit, x, weights)
    assert 0.01 < float((a - b).abs().max()) < 0.6
    assert noisy.transpile_report(circuit)["two_qubit_gates"] >= 4


def test_remote_path_runs_offline_on_a_fake_backend(monkeypatch):
    """qiskit.remote submits through IBM Runtime's SamplerV2: one job per batch."""
    calls = []
    run = qiskit_ibm_runtime.SamplerV2.run

    def spy(self, pubs, *args, **kwargs):
        calls.append(len(pubs))
        return run(self, pubs, *args, **kwargs)

    monkeypatch.setattr(qiskit_ibm_runtime.SamplerV2, "run", spy)
    circuit, x = _circuit("unentangled", 4), _inputs(8, 4)
    weights = _weights(circuit)
    executor = make_executor("qiskit.remote", {"backend": "fake_manila", "shots": 256, "seed": 1})
    with torch.no_grad():
        out = executor(circuit, x, weights)
        exact = make_executor("torch")(circuit, x, weights)
    assert len(calls) == 1 and executor.cost.submissions == 1
    assert executor.cost.circuits == 24 and executor.cost.shots == 24 * 256
    assert float((out - exact).abs().mean()) < 0.15


class _Job:
    def __init__(self, outcome):
        self.outcome = outcome

    def done(self):
        return self.outcome != "hang"

    def cancel(self):
        self.outcome = "cancelled"

    def result(self):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def test_submissions_are_retried_with_backoff_then_reported():
    outcomes = [ConnectionError("reset"), RuntimeError("queue"), "ok"]
    waits = []
    result, retries = submit_with_retries(
        lambda: _Job(outcomes.pop(0)), retries=3, backoff_s=1.5, sleep=waits.append
    )
    assert (result, retries, waits) == ("ok", 2, [1.5, 3.0])
    with pytest.raises(SubmissionError, match=r"failed after 3 attempts.*ConnectionError: down"):
        submit_with_retries(lambda: _Job(ConnectionError("down")), retries=2, sleep=lambda s: None)
    with pytest.raises(SubmissionError, match=r"no result within 0\.01 s"):
        submit_with_retries(lambda: _Job("hang"), retries=1, timeout_s=0.01, sleep=lambda s: None)
    with pytest.raises(TypeError):  # a bad submission is not retried
        submit_with_retries(lambda: _Job(TypeError("bad pub")), sleep=pytest.fail)


def test_executor_counts_retries(monkeypatch):
    circuit, x = _circuit("unentangled"), _inputs(2)
    executor = make_executor("qiskit.aer", {"shots": 32, "backoff_s": 0})
    primitive = executor._primitive
    failures = [ConnectionError("flaky")]

    class Flaky:
        def __init__(self, inner):
            self.inner = inner

        def run(self, pubs):
            if failures:
                raise failures.pop()
            return self.inner.run(pubs)

    monkeypatch.setattr(executor, "_primitive", lambda pubs: Flaky(primitive(pubs)))
    with torch.no_grad():
        executor(circuit, x, _weights(circuit))
    assert executor.cost.retries == 1 and executor.cost.submissions == 2


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("qiskit.remote", {"shots": 10}, "needs a backend"),
        ("qiskit.aer", {"backend": "fake_manilla"}, "did you mean 'fake_manila'"),
        ("qiskit.aer", {"shots": 0}, r"bad executor option shots: 0; allowed: a whole number"),
        ("qiskit.aer", {"shots": "abc"}, r"bad executor option shots: 'abc'"),
        ("qiskit.aer", {"shots": True}, r"bad executor option shots: True"),
        ("qiskit.aer", {"packing": "lots"}, r"bad executor option packing: 'lots'.* or auto"),
        ("qiskit.aer", {"retries": -1}, r"bad executor option retries: -1; .*>= 0"),
        ("qiskit.aer", {"retries": "abc"}, r"bad executor option retries: 'abc'"),
        ("qiskit.aer", {"timeout_s": "abc"}, r"bad executor option timeout_s: 'abc'; .*> 0"),
        ("qiskit.aer", {"timeout_s": 0}, r"bad executor option timeout_s: 0"),
        ("qiskit.aer", {"backoff_s": -1}, r"bad executor option backoff_s: -1"),
        ("qiskit.aer", {"optimization_level": 9}, r"optimization_level: 9; .*from 0 to 3"),
        ("qiskit.aer", {"seed": 1.5}, r"bad executor option seed: 1.5"),
        ("qiskit.aer", {"noise": "no"}, r"bad executor option noise: 'no'; allowed: true or"),
        ("qiskit.aer", {"method": "fastest"}, r"bad executor option method: 'fastest'"),
        ("qiskit.aer", {"max_circuits": 0}, r"bad executor option max_circuits: 0"),
        ("default.qubit", {"shots": "abc"}, r"bad executor option shots: 'abc'"),
        ("default.qubit", {"device_options": 3}, r"bad executor option device_options: 3"),
        ("qiskit.aer", {"token": "x"}, "executor option 'token' looks like a credential"),
        (
            "default.qubit",
            {"device_options": {"aws": [{"Secret-Access-Key": "x"}]}},
            r"option 'device_options\.aws\[0\]\.Secret-Access-Key' looks like a credential.*"
            "environment",
        ),
        ("qiskit.aer", {"shot": 10}, "unknown executor options"),
        ("qiskit.local", {}, "unknown executor 'qiskit.local'.*qiskit.aer"),
        ("braket.local.qubit", {}, "pip install 'qrl-quantum-rl\\[braket\\]'"),
    ],
)
def test_bad_executor_input_is_named(name, options, message):
    if name.startswith("braket") and "braket.local.qubit" in __import__("pennylane").plugin_devices:
        pytest.skip("the Braket plugin is installed here")
    with pytest.raises(QrlError, match=message):
        make_executor(name, options)


def test_missing_qiskit_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "qiskit_aer", None)
    with pytest.raises(QrlError, match=r"pip install 'qrl-quantum-rl\[ibm\]'"):
        make_executor("qiskit.aer", {})


def _no_account(monkeypatch, tmp_path):
    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account
    monkeypatch.setattr(
        "qiskit_ibm_runtime.accounts.management._DEFAULT_ACCOUNT_CONFIG_JSON_FILE",
        str(tmp_path / "qiskit-ibm.json"),
    )


def test_missing_credentials_are_reported_before_any_work(monkeypatch, tmp_path):
    _no_account(monkeypatch, tmp_path)
    with pytest.raises(QrlError, match="no IBM Quantum credentials: set QISKIT_IBM_TOKEN"):
        make_executor("qiskit.remote", {"backend": "ibm_brisbane", "shots": 100})


class _FakeService:
    """Stands in for QiskitRuntimeService: reads the token from the environment as the real
    one does, and serves a fake device under an IBM name."""

    def __init__(self):
        self.token = os.environ["QISKIT_IBM_TOKEN"]

    def backend(self, name):
        if name != "ibm_test":
            raise KeyError(name)
        return FakeManilaV2()

    def backends(self):
        return [FakeManilaV2()]


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(tiny_run, path)
    return path


def test_unknown_ibm_backend_lists_the_account_devices(monkeypatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", _FakeService)
    with pytest.raises(QrlError, match=r"unknown IBM Quantum backend 'ibm_nope'.*fake_manila"):
        make_executor("qiskit.remote", {"backend": "ibm_nope", "shots": 10})


def test_planted_token_never_reaches_any_file(monkeypatch, run_copy: Path, capsys):
    """Evaluate and fine-tune through the IBM path with a token in the environment; no file
    of the run folders (configs, models, progress, TensorBoard) contains it."""
    from qrl.training import finetune

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", _FakeService)
    options = {"backend": "ibm_test", "shots": 64, "seed": 3}
    report = evaluate_executors(run_copy, "qiskit.remote", options, episodes=2)
    assert [v["label"] for v in report["variants"]] == ["exact", "shots", "device"]
    tuned = finetune(
        run_copy,
        "qiskit.remote",
        options,
        timesteps=16,
        overrides=[
            "hyperparameters.n_steps=2",
            "hyperparameters.batch_size=16",
            "hyperparameters.n_epochs=1",
        ],
        progress=False,
    )
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    files = [p for root in (run_copy, tuned.path) for p in root.rglob("*") if p.is_file()]
    assert any("tfevents" in p.name for p in files) and len(files) > 10
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_evaluation_side_by_side_dry_run_and_resume(monkeypatch, run_copy: Path, capsys):
    options = {"backend": "fake_manila", "shots": 64, "seed": 5}
    cost = evaluation_cost(run_copy, "qiskit.aer", options, episodes=3)
    device = cost["variants"][-1]
    assert device["max_submissions"] == 500 and device["max_circuits"] == 500 * 9
    assert device["max_shots"] == 500 * 9 * 64

    played: list[list[int]] = []
    real_play = evaluation.play_episodes

    def interrupt_in_second_round(model, config, episodes, seed, deterministic, **kw):
        played.append(list(episodes))
        on_episode, ended = kw["on_episode"], []

        def stop_after_nine(episode):  # the first round of 8, and one of the second's two
            on_episode(episode)
            ended.append(episode)
            if len(ended) == 9:
                raise KeyboardInterrupt

        return real_play(
            model, config, episodes, seed, deterministic, **kw | {"on_episode": stop_after_nine}
        )

    monkeypatch.setattr(evaluation, "play_episodes", interrupt_in_second_round)
    with pytest.raises(KeyboardInterrupt):
        evaluate_executors(run_copy, "qiskit.aer", options, episodes=10)
    progress = run_copy / "evaluations" / "qiskit.aer-fake_manila-64shots.json"
    saved = json.loads(progress.read_text())["variants"]
    assert len(saved["exact"]["episodes"]) == 9  # the first round, and one episode of the second
    finished = next(s for s in ("10011", "10012") if s in saved["exact"]["episodes"])

    played.clear()
    monkeypatch.setattr(
        evaluation,
        "play_episodes",
        lambda *a, **kw: (played.append(list(a[2])), real_play(*a, **kw))[1],
    )
    report = evaluate_executors(run_copy, "qiskit.aer", options, episodes=10)
    assert "resuming qiskit.aer-fake_manila-64shots: 9 episodes done" in capsys.readouterr().err
    # only the unfinished episode (episode k has seed 10003 + k: the run's seed 3 + 10000)
    assert played[0] == [8 + (finished == "10011")]
    assert played[1:] == [list(range(10))] * 2  # the other variants play every episode
    assert [len(v["returns"]) for v in report["variants"]] == [10, 10, 10]
    device = report["variants"][-1]
    assert "action_agreement" not in report["variants"][0]  # exact is the reference
    assert 0.5 < device["action_agreement"] <= 1
    assert device["cost"]["submissions"] == max(device["lengths"][:8]) + max(device["lengths"][8:])
    assert device["cost"]["circuits"] == 3 * sum(device["lengths"])
    stored = json.loads((run_copy / "eval.json").read_text())["executors"]
    assert stored["qiskit.aer-fake_manila-64shots"]["variants"][0]["label"] == "exact"

    assert report["returns"] == device["returns"] and report["executor"] == "qiskit.aer"
    assert report["mean_return"] == device["mean_return"]

    played.clear()
    again = evaluate_executors(run_copy, "qiskit.aer", options, episodes=10)
    assert "resuming" not in capsys.readouterr().err  # finished: reported, nothing played
    assert not any(played) and again["variants"][-1]["returns"] == device["returns"]


def test_cli_evaluate_and_finetune_on_a_fake_device(run_copy: Path, tmp_path: Path, capsys):
    """Through the command line in fresh processes; the fine-tuned model reloads on its
    executor and logs its cost to TensorBoard."""
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "qrl.cli"]
    from qrl.cli import main

    args = ["evaluate", str(run_copy), "--executor", "qiskit.aer", "--backend", "fake_manila"]
    assert main([*args, "--shots", "32", "--episodes", "2", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "nothing was run" in dry and "depth" in dry
    done = subprocess.run(
        [
            *cmd,
            "evaluate",
            str(run_copy),
            "--executor",
            "qiskit.aer",
            "--backend",
            "fake_manila",
            "--shots",
            "32",
            "--episodes",
            "2",
            "--packing",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "device  qiskit.aer fake_manila 32 shots" in done.stdout
    out = tmp_path / "tuned"
    tuned = subprocess.run(
        [
            *cmd,
            "finetune",
            str(run_copy),
            "--executor",
            "qiskit.aer",
            "--backend",
            "fake_manila",
            "--shots",
            "32",
            "--timesteps",
            "16",
            "--run-dir",
            str(out),
            "--set",
            "hyperparameters.n_steps=2",
            "--set",
            "hyperparameters.batch_size=16",
            "--set",
            "hyperparameters.n_epochs=1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert tuned.stdout.strip() == str(out) and "submissions" in tuned.stderr
    status = json.loads((out / "run.json").read_text())
    assert status["num_timesteps"] == 16 and status["quantum_cost"]["shots"] > 0
    check = (
        "from qrl.agents import load_model; from qrl.extractors import circuit_modules;"
        f"m = load_model({str(out / 'model.zip')!r}, 'ppo');"
        "print([(e.executor_name, e.executor_options) for _, e in circuit_modules(m)])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, check=True
    )
    assert "('qiskit.aer', {'shots': 32, 'backend': 'fake_manila'})" in loaded.stdout
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((out / "tb").glob("*")))).Reload()
    assert {"quantum/shots", "quantum/circuits", "quantum/submissions"} <= set(
        events.Tags()["scalars"]
    )


def test_an_exact_pennylane_device_is_reported_beside_the_simulator(run_copy: Path):
    report = evaluate_executors(run_copy, "default.qubit", {}, episodes=2)
    exact, pennylane = report["variants"]
    assert (exact["label"], pennylane["label"]) == ("exact", "default.qubit")
    assert pennylane["returns"] == exact["returns"] and pennylane["action_agreement"] == 1.0


def test_pennylane_devices_with_shots_count_their_cost():
    circuit, x = _circuit("unentangled"), _inputs(4)
    weights = _weights(circuit)
    mixed = make_executor("default.mixed")
    sampled = make_executor("default.qubit", {"shots": 100, "diff_method": "parameter-shift"})
    with torch.no_grad():
        exact = make_executor("torch")(circuit, x, weights)
        assert torch.allclose(mixed(circuit, x, weights), exact, atol=1e-8)
        sampled(circuit, x, weights)
    assert sampled.cost.circuits == 4 and sampled.cost.shots == 400


def test_failed_submissions_stop_the_evaluation_and_keep_its_episodes(
    monkeypatch, run_copy: Path, capsys
):
    from qrl.cli import main
    from qrl.executors.qiskit_executor import QiskitExecutor

    def down(self, pubs):
        raise ConnectionError("service unavailable")

    monkeypatch.setattr(QiskitExecutor, "_primitive", down)
    args = ["evaluate", str(run_copy), "--executor", "qiskit.aer", "--shots", "16"]
    args += ["--episodes", "2", "--option", "retries=1", "--option", "backoff_s=0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "failed after 2 attempts" in err and "ConnectionError: service unavailable" in err
    assert "run the same command to continue" in err
    progress = json.loads((run_copy / "evaluations" / "qiskit.aer-16shots.json").read_text())
    assert len(progress["variants"]["exact"]["episodes"]) == 2


def test_a_dry_run_costs_the_shots_the_run_spends(run_copy: Path, capsys):
    """Without --shots, the dry run and the run both use the executor's default (1024 shots
    per circuit, read from the executor's options), and the bound holds the real cost."""
    import inspect

    from qrl.cli import main
    from qrl.executors.qiskit_executor import QiskitExecutor

    default = inspect.signature(QiskitExecutor.__init__).parameters["shots"].default
    args = ["evaluate", str(run_copy), "--executor", "qiskit.aer", "--episodes", "2", "--json"]
    assert main([*args, "--dry-run"]) == 0
    bound = json.loads(capsys.readouterr().out)["variants"][-1]
    assert bound["description"] == f"qiskit.aer {default} shots"
    assert bound["max_shots"] == bound["max_circuits"] * default > 0
    assert main([*args, "--no-reference", "--option", "seed=1"]) == 0
    spent = json.loads(capsys.readouterr().out)["variants"][-1]
    assert spent["description"] == bound["description"]
    assert spent["cost"]["shots"] == spent["cost"]["circuits"] * default > 0
    assert spent["cost"]["shots"] <= bound["max_shots"]
    assert main([*args, "--shots", "0", "--dry-run"]) == 2  # never "0 shots", never a default
    assert "bad executor option shots: 0" in capsys.readouterr().err


def test_an_unreachable_ibm_service_is_named_as_such(monkeypatch):
    """Offline, IBM Runtime blames the token; qrl finds the connection error behind it. A
    service that answered (an HTTP error) keeps its own message."""
    import requests
    from qiskit_ibm_runtime.accounts.exceptions import InvalidAccountError

    def service(cause: Exception):
        class Service:
            def __init__(self):
                try:
                    raise cause
                except Exception as exc:
                    message = "Please check that you are using a valid API token."
                    raise InvalidAccountError(message) from exc

        return Service

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    options = {"backend": "ibm_brisbane", "shots": 10}
    offline = requests.exceptions.ConnectionError("Failed to resolve 'iam.cloud.ibm.com'")
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", service(offline))
    with pytest.raises(QrlError, match="IBM Quantum is unreachable: the network") as caught:
        make_executor("qiskit.remote", options)
    assert "API token" not in str(caught.value) and SECRET not in str(caught.value)
    refused = requests.exceptions.HTTPError("401 Unauthorized", response=requests.Response())
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", service(refused))
    with pytest.raises(QrlError, match=r"could not open IBM Quantum: .*valid API token"):
        make_executor("qiskit.remote", options)


def test_negative_retries_submit_nothing():
    with pytest.raises(QrlError, match=r"bad retries: -1"):
        submit_with_retries(lambda: pytest.fail("submitted"), retries=-1)
