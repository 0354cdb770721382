"""The quantum fast weight programmer: cell maths, RecurrentPPO integration, runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import RecurrentPPO as ContribRecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from torch import nn

import qrl
from qrl.cli import main
from qrl.errors import QrlError
from qrl.evaluation.models import evaluate
from qrl.fast_weights import MAX_SCAN_STEPS, FastWeightCell, QFWPPolicy
from qrl.recurrent import LSTMPolicy, RecurrentPPO, SequenceBuffer
from qrl.training import train

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
SPACE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


def make_cell(**options: object) -> FastWeightCell:
    torch.manual_seed(0)
    options = {"dtype": "float64", "circuit": "unentangled", "n_layers": 2} | options
    cell = FastWeightCell(SPACE, 3, **options)  # type: ignore[arg-type]
    with torch.no_grad():  # non-trivial scales and initial angles
        for p in cell.quantum_parameters():
            p.add_(0.3 * torch.randn_like(p))
    return cell


def zeros(cell: FastWeightCell, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.zeros(1, n, cell.hidden_size)
    return h, h.clone()


def manual_angles(cell: FastWeightCell, obs: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """theta_t written out from the definition, one sequence of shape (time, features)."""
    theta0 = cell.theta.detach().flatten().double()
    theta = theta0.clone()
    out = []
    for x, start in zip(obs, starts, strict=True):
        if start:
            theta = theta0.clone()
        reads = x.float() if cell.programmer_input == "observation" else cell.encoder(x[None])[0]
        z = cell.trunk(reads.flatten())
        outer = torch.outer(cell.layer_head(z), cell.qubit_head(z))  # (layers * rot, qubits)
        n_layers, n_qubits, n_rot = cell.shape
        delta = outer.reshape(n_layers, n_rot, n_qubits).transpose(1, 2).flatten().double()
        theta = cell.decay * theta + delta
        if cell.bound is not None:
            theta = cell.bound * torch.tanh(theta / cell.bound)
        out.append(theta)
    return torch.stack(out)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"decay": 0.8},
        {"bound": 1.5, "decay": 0.95},
        {"learn_init": True, "decay": 0.9},
        {"programmer_input": "encoded", "squash": "tanh", "memory_qubits": 2},
    ],
)
def test_angles_follow_the_definition(options: dict):
    cell = make_cell(**options)
    obs = torch.randn(7, 3)
    starts = torch.tensor([1, 0, 0, 1, 0, 0, 0.0])
    expected = manual_angles(cell, obs, starts)
    h, c = zeros(cell, 1)
    got = []
    with torch.no_grad():
        for x, start in zip(obs, starts, strict=True):
            _, (h, c) = cell.sequence(x[None], (h, c), start[None])
            got.append(h[0, 0].double() + cell.theta.flatten().double())
    torch.testing.assert_close(torch.stack(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "n_time"),
    [
        ({}, 9),
        ({"decay": 0.7, "learn_init": True}, 9),  # linear: one matrix product
        ({"decay": 0.9}, MAX_SCAN_STEPS + 3),  # linear, too long: a loop
        ({"bound": 2.0, "decay": 0.9, "learn_init": True}, 9),  # bounded: a loop
        ({"programmer_input": "encoded", "squash": "tanh", "memory_qubits": 1}, 9),
    ],
)
def test_step_by_step_equals_sequence(options: dict, n_time: int):
    cell = make_cell(**options)
    n_seq = 3
    obs = torch.randn(n_seq, n_time, 3)
    starts = (torch.rand(n_seq, n_time) < 0.25).float()
    h0 = 0.4 * torch.randn(1, n_seq, cell.hidden_size)
    with torch.no_grad():
        batched, (h_end, _) = cell.sequence(
            obs.reshape(-1, 3), (h0, torch.zeros_like(h0)), starts.reshape(-1)
        )
        h, c = h0, torch.zeros_like(h0)
        steps = []
        for t in range(n_time):
            out, (h, c) = cell.sequence(obs[:, t], (h, c), starts[:, t])
            steps.append(out)
    stepped = torch.stack(steps, dim=1).reshape(n_seq * n_time, -1)
    torch.testing.assert_close(batched, stepped, rtol=0, atol=2e-6)
    torch.testing.assert_close(h_end, h, rtol=0, atol=2e-6)
    # nn.LSTM's interface: (time, batch, features) without resets.
    with torch.no_grad():
        seq_out, _ = cell(obs.transpose(0, 1), zeros(cell, n_seq))
        flat, _ = cell.sequence(obs.reshape(-1, 3), zeros(cell, n_seq), torch.zeros(n_seq * n_time))
    torch.testing.assert_close(seq_out.transpose(0, 1).reshape(n_seq * n_time, -1), flat)


def test_state_resets_at_episode_starts():
    cell = make_cell(learn_init=True, decay=0.9)
    obs = torch.randn(1, 6, 3)
    with torch.no_grad():
        h = 5.0 * torch.randn(1, 1, cell.hidden_size)  # a long, drifted episode
        starts = torch.tensor([0, 0, 0, 1.0, 0, 0])
        out, _ = cell.sequence(obs.reshape(-1, 3), (h, torch.zeros_like(h)), starts)
        fresh, _ = cell.sequence(obs[0, 3:], zeros(cell, 1), torch.tensor([1.0, 0, 0]))
        from_zero, _ = cell.sequence(obs[0, 3:], zeros(cell, 1), torch.zeros(3))
    torch.testing.assert_close(out[3:], fresh, rtol=0, atol=1e-6)
    torch.testing.assert_close(fresh, from_zero, rtol=0, atol=1e-6)  # zero state == theta_0
    assert not torch.allclose(out[:3], from_zero)


def test_gradients_reach_the_programmer_through_time():
    cell = make_cell(decay=0.9, bound=3.0)
    obs = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    cell.double()
    out, _ = cell.sequence(obs.reshape(-1, 3), zeros(cell, 1), torch.tensor([1.0, 0, 0, 0, 0]))
    out[-1].sum().backward()
    assert obs.grad is not None and obs.grad[0, 0].abs().sum() > 1e-6  # first step -> last
    for name, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

    # The programmer's path through time against central differences (outputs are float32).
    def last_output(first: torch.Tensor) -> torch.Tensor:
        seq = torch.cat([first[None], obs[0, 1:].detach()])
        with torch.no_grad():
            return cell.sequence(seq, zeros(cell, 1), torch.tensor([1.0, 0, 0, 0, 0]))[0][-1]

    eps = 3e-3
    first = obs[0, 0].detach()
    numeric = torch.stack(
        [
            (last_output(first + eps * e) - last_output(first - eps * e)).sum() / (2 * eps)
            for e in torch.eye(3, dtype=torch.float64)
        ]
    )
    torch.testing.assert_close(obs.grad[0, 0].float(), numeric.float(), rtol=0, atol=2e-3)


@pytest.mark.parametrize(
    ("executor", "options"), [("default.qubit", None), ("qiskit.aer", {"shots": None})]
)
def test_torch_matches_pennylane_and_qiskit_for_programmed_angles(executor, options):
    """Per-sample programmed angles, values and gradients (Qiskit: by parameter shift)."""
    if executor.startswith("qiskit"):
        pytest.importorskip("qiskit_aer")
    cell = make_cell(decay=0.9, learn_init=True)
    obs = torch.randn(4, 5, 3)
    starts = torch.zeros(4, 5)
    starts[1, 2] = 1
    h0 = 0.5 * torch.randn(1, 4, cell.hidden_size)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        cell.zero_grad()
        out, _ = cell.sequence(obs.reshape(-1, 3), (h0, torch.zeros_like(h0)), starts.reshape(-1))
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        return out.detach(), [p.grad.clone() for p in cell.parameters()]  # type: ignore[union-attr]

    out_torch, grads_torch = run()
    cell.set_executor(executor, options)
    out_pl, grads_pl = run()
    torch.testing.assert_close(out_torch, out_pl, rtol=0, atol=1e-5)
    for a, b in zip(grads_torch, grads_pl, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_entangled_circuit_runs_in_the_cell():
    cell = make_cell(circuit="entangled", entangler="cz")
    out, (h, _) = cell.sequence(torch.randn(6, 3), zeros(cell, 2), torch.zeros(6))
    assert out.shape == (6, cell.output_size) and h.shape == (1, 2, cell.hidden_size)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"decay": 1.5}, "decay must be in [0, 1]"),
        ({"bound": 0}, "bound must be positive"),
        ({"programmer_activation": "sigmoid"}, "unknown programmer_activation"),
        ({"programmer": 8}, "programmer must be a list of layer sizes"),
        ({"programmer_input": "angles"}, "unknown programmer_input"),
        ({"circuit": "nope"}, "unknown circuit"),
    ],
)
def test_bad_cell_options(options: dict, message: str):
    with pytest.raises(QrlError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FastWeightCell(SPACE, 3, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "options"),
    [
        (QFWPPolicy, {"decay": 0.9, "learn_init": True}),
        (QFWPPolicy, {"decay": 0.9, "bound": 2.0, "learn_init": True}),
        (LSTMPolicy, {"lstm_hidden_size": 16}),
    ],
)
@pytest.mark.parametrize("algorithm", [RecurrentPPO, ContribRecurrentPPO])
def test_rollout_log_probs_and_values_are_reproduced_by_the_training_path(
    policy: type, options: dict, algorithm: type
):
    """What PPO relies on: the sequence path over the rollout buffer, with its resets,
    gives back the log-probabilities and values recorded step by step during the rollout
    (with qrl's buffer, the fast-weight cell's sequences hold episode starts inside)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    envs = make_vec_env("qrl/CartPoleNoVel-v1", n_envs=4, seed=0)
    model = algorithm(
        policy,
        envs,
        n_steps=64,
        batch_size=64,
        seed=0,
        policy_kwargs=options,
    )
    model.learn(256)  # trains, so the weights are not at their initial values

    class Noop(BaseCallback):
        def _on_step(self) -> bool:
            return True

    noop = Noop()
    noop.init_callback(model)
    model.collect_rollouts(model.env, noop, model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    assert buffer.episode_starts.sum() > 0  # the rollout contains resets
    inside = False
    model.policy.set_training_mode(False)
    with torch.no_grad():
        for batch in buffer.get(batch_size=64):
            values, log_prob, _ = model.policy.evaluate_actions(
                batch.observations,
                batch.actions.long().flatten(),
                batch.lstm_states,
                batch.episode_starts,
            )
            mask = batch.mask > 0
            n_seq = batch.lstm_states.pi[0].shape[1]
            inside |= bool(batch.episode_starts.reshape(n_seq, -1)[:, 1:].any())
            torch.testing.assert_close(log_prob[mask], batch.old_log_prob[mask], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                values.flatten()[mask], batch.old_values[mask], atol=1e-5, rtol=0
            )
    # Only qrl's algorithm with a cell that resets anywhere keeps episodes inside sequences.
    assert inside == (algorithm is RecurrentPPO and policy is QFWPPolicy)


def fill(buffer: RecurrentRolloutBuffer, seed: int) -> None:
    """A rollout of random data with episode starts, as RecurrentPPO writes it."""
    rng = np.random.default_rng(seed)
    n_envs, hidden = buffer.n_envs, buffer.hidden_state_shape
    for _ in range(buffer.buffer_size):
        states = [torch.as_tensor(rng.normal(size=hidden[1:]), dtype=torch.float32)]
        buffer.add(
            rng.normal(size=(n_envs, 3)).astype(np.float32),
            rng.integers(0, 2, size=(n_envs, 1)),
            rng.normal(size=n_envs),
            rng.random(n_envs) < 0.2,
            torch.as_tensor(rng.normal(size=n_envs)),
            torch.as_tensor(rng.normal(size=n_envs)),
            lstm_states=RNNStates((states[0], -states[0]), (2 * states[0], 3 * states[0])),
        )
    buffer.compute_returns_and_advantage(torch.zeros(n_envs), np.zeros(n_envs, dtype=bool))


@pytest.mark.parametrize("batch_size", [16, 37, 96])
def test_sequence_buffer_pads_as_sb3_contrib(batch_size: int):
    """qrl's buffer gives sb3-contrib's minibatches, field by field, with the same sequences;
    without splitting at episode starts it keeps the same transitions in fewer sequences."""
    args = (12, SPACE, gym.spaces.Discrete(2), (12, 1, 8, 5), "cpu")
    theirs = RecurrentRolloutBuffer(*args, n_envs=8)
    ours, whole = (SequenceBuffer(*args, n_envs=8, split_episodes=s) for s in (True, False))
    for buffer in (theirs, ours, whole):
        fill(buffer, seed=batch_size)
    seeds = np.random.get_state()
    batches = []
    for buffer in (theirs, ours, whole):
        np.random.set_state(seeds)
        batches.append(list(buffer.get(batch_size)))
    for a, b, c in zip(*batches, strict=True):
        for name in a._fields:
            if name == "lstm_states":
                for x, y in zip(
                    (*a.lstm_states.pi, *a.lstm_states.vf),
                    (*b.lstm_states.pi, *b.lstm_states.vf),
                    strict=True,
                ):
                    torch.testing.assert_close(x, y, atol=0, rtol=0)
                continue
            torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=0, rtol=0)
            valid = [getattr(x, name)[x.mask > 0] for x in (a, c)]
            torch.testing.assert_close(*valid, atol=0, rtol=0)
        assert c.lstm_states.pi[0].shape[1] <= a.lstm_states.pi[0].shape[1]


def test_lstm_policy_matches_sb3_contrib():
    """One LSTM call per minibatch gives sb3-contrib's step-by-step outputs and states."""
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5)
    n_seq, n_time = 4, 7
    features = torch.randn(n_seq * n_time, 3)
    states = (torch.randn(1, n_seq, 5), torch.randn(1, n_seq, 5))
    starts = torch.zeros(n_seq, n_time)
    starts[[0, 2], 0] = 1
    for case in (starts, torch.zeros(n_seq, n_time)):
        ours = LSTMPolicy._process_sequence(features, states, case.reshape(-1), lstm)
        theirs = RecurrentActorCriticPolicy._process_sequence(
            features, states, case.reshape(-1), lstm
        )
        torch.testing.assert_close(ours[0], theirs[0])
        torch.testing.assert_close(ours[1], theirs[1])


@pytest.fixture(scope="module")
def qfwp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qfwp") / "run"
    train(
        "qfwp",
        "qrl/CartPoleNoVel-v1",
        seed=1,
        timesteps=512,
        run_dir=path,
        progress=False,
        overrides=["eval_episodes=3", "policy.decay=0.9", "policy.learn_init=true"],
    )
    return path


def test_qfwp_run_folder_and_tensorboard(qfwp_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    status = json.loads((qfwp_run / "run.json").read_text())
    assert status["status"] == "finished"
    # Per cell, 2 features + 2 memory qubits: 2 layers x 4 qubits input scales, 12 output
    # scales, 24 initial angles.
    assert status["parameters"]["quantum"] == 2 * (8 + 12 + 24)
    result = json.loads((qfwp_run / "eval.json").read_text())
    assert result["env"] == "qrl/CartPoleNoVel-v1" and len(result["returns"]) == 3
    events = EventAccumulator(str(qfwp_run / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "quantum/actor/fast_weight_norm",
        "quantum/actor/fast_weight_norm_episode_end",
        "quantum/actor/update_norm",
        "quantum/critic/fast_weight_norm",
        "quantum/actor/grad_norm/layer_head.weight",
        "quantum/circuit_executions",
    ):
        assert tag in scalars, (tag, sorted(scalars))
    norms = [e.value for e in events.Scalars("quantum/actor/fast_weight_norm")]
    assert norms and all(np.isfinite(norms)) and max(norms) > 0


def _episode_actions(model: RecurrentPPO, steps: int = 80) -> tuple[list[int], list[float]]:
    """Deterministic actions over episodes of CartPoleNoVel, the state carried and reset."""
    env = gym.make("qrl/CartPoleNoVel-v1")
    obs, _ = env.reset(seed=5)
    state, start = None, np.ones(1, bool)
    actions, norms = [], []
    for _ in range(steps):
        action, state = model.predict(
            obs[None], state=state, episode_start=start, deterministic=True
        )
        actions.append(int(action[0]))
        norms.append(float(np.abs(state[0]).sum()))
        obs, _, term, trunc, _ = env.step(int(action[0]))
        start = np.array([term or trunc])
        if term or trunc:
            obs, _ = env.reset()
    return actions, norms


def test_saved_qfwp_acts_identically_in_fresh_process(qfwp_run: Path):
    script = textwrap.dedent(
        f"""
        import json
        from sb3_contrib import RecurrentPPO
        from tests.test_fast_weights import _episode_actions
        model = RecurrentPPO.load({str(qfwp_run / "model.zip")!r})
        print(json.dumps(_episode_actions(model)))
        """
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
        cwd=root,
    )
    fresh_actions, fresh_norms = json.loads(out.stdout)
    model = RecurrentPPO.load(qfwp_run / "model.zip")
    assert isinstance(model.policy, QFWPPolicy)
    actions, norms = _episode_actions(model)
    assert fresh_actions == actions
    np.testing.assert_allclose(fresh_norms, norms, rtol=0, atol=1e-6)
    assert max(norms) > 0  # the state was carried


def test_qfwp_evaluates_on_pennylane_with_its_state(qfwp_run: Path):
    exact = evaluate(qfwp_run, episodes=2)
    pennylane = evaluate(qfwp_run, episodes=2, executor="default.qubit")
    assert pennylane["executor"] == "default.qubit"
    assert pennylane["returns"] == exact["returns"]


def test_qfwp_cli_train_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run_dir = tmp_path / "cli"
    code = main(
        [
            "train",
            "--agent",
            "qfwp",
            "--env",
            "CartPoleNoVel-v1",
            "--timesteps",
            "256",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--set",
            "eval_episodes=2",
            "--set",
            "policy.critic_programmer=shared",
        ]
    )
    assert code == 0 and capsys.readouterr().out.strip() == str(run_dir)
    assert main(["evaluate", str(run_dir), "--episodes", "2"]) == 0
    assert "qrl/CartPoleNoVel-v1 qfwp (torch)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["policy.critic_programmer=both"], "unknown critic_programmer"),
        (["policy.lstm_hidden_size=8"], "unknown policy option 'lstm_hidden_size'"),
        (["policy.cell=gru"], "unknown cell 'gru'"),
        (["policy.extractor=quantum"], "the qfwp cell runs its own circuit"),
        (["algorithm=ppo"], "policy.cell is for recurrent_ppo"),
    ],
)
def test_bad_qfwp_options(overrides: list[str], message: str, tmp_path: Path):
    with pytest.raises(QrlError, match=message):
        train("qfwp", "qrl/CartPoleNoVel-v1", timesteps=64, overrides=overrides, run_dir=tmp_path)
    assert not (tmp_path / "config.yaml").exists()


def test_partially_observable_tasks():
    for env_id, base, size in (
        ("qrl/CartPoleNoVel-v1", "CartPole-v1", 2),
        ("qrl/LunarLanderNoVel-v3", "LunarLander-v3", 5),
    ):
        env, full = gym.make(env_id), gym.make(base)
        obs, _ = env.reset(seed=3)
        full_obs, _ = full.reset(seed=3)
        assert obs.shape == (size,) and env.observation_space.contains(obs)
        keep = env.unwrapped.spec is not None and env.get_wrapper_attr("keep")
        np.testing.assert_array_equal(obs, full_obs[keep])
        assert env.spec is not None and env.spec.reward_threshold == gym.spec(base).reward_threshold
    lengths = set()
    env = gym.make("qrl/CartPoleNoVel-v1")
    for seed in range(3):
        env.reset(seed=seed)
        n, done = 0, False
        while not done:
            _, _, term, trunc, _ = env.step(1)
            n, done = n + 1, term or trunc
        lengths.add(n)
    assert max(lengths) < 500  # pushing right always fails: the dynamics are CartPole's
    code = "import gymnasium as gym, qrl; gym.make('qrl/CartPoleNoVel-v1')"
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


def test_env_preset_found_by_its_id():
    from qrl.agents import resolve_config

    by_id = resolve_config("qfwp", "qrl/CartPoleNoVel-v1")
    by_name = resolve_config("qfwp", "CartPoleNoVel-v1")
    assert by_id == by_name and by_id.env == "CartPoleNoVel-v1" and by_id.solved == 475
    assert (
        by_id.hyperparameters == resolve_config("unentangled", "CartPoleNoVel-v1").hyperparameters
    )


def test_public_api_exports_qfwp():
    assert qrl.QFWPPolicy is QFWPPolicy and qrl.FastWeightCell is FastWeightCell


@pytest.mark.parametrize("agent", ["qfwp", "lstm", "unentangled"])
def test_lunar_lander_no_velocity_presets_build_and_act(agent: str):
    from qrl.agents import build_model, resolve_config
    from qrl.envs import make_envs

    config = resolve_config(agent, "LunarLanderNoVel-v3", overrides=["n_envs=2"])
    envs = make_envs(config, seed=0)
    model = build_model(config, envs)
    obs = envs.reset()
    actions, state = model.predict(obs, episode_start=np.ones(2, bool), deterministic=True)
    assert actions.shape == (2,) and envs.action_space.contains(int(actions[0]))
    if agent == "qfwp":
        cell = model.policy.lstm_actor
        assert isinstance(cell, FastWeightCell) and cell.circuit.n_qubits == 5 + 2
        assert state is not None and state[0].shape == (1, 2, cell.hidden_size)


def test_qfwp_run_resumes(tmp_path: Path):
    from qrl.training import resume

    train("qfwp", "CartPoleNoVel-v1", timesteps=256, run_dir=tmp_path, progress=False)
    run = resume(tmp_path, timesteps=512, progress=False)
    assert run.status().num_timesteps == 512 and run.status().status == "finished"
    assert RecurrentPPO.load(tmp_path / "model.zip").num_timesteps == 512
