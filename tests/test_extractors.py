"""The quantum features extractor inside SB3 algorithms, on every kind of observation space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC

from qrl.errors import QrlError
from qrl.extractors import QuantumExtractor, parameter_counts, set_executor
from qrl.observations import ObservationEncoder


def _kwargs(**extractor):
    return {"features_extractor_class": QuantumExtractor, "features_extractor_kwargs": extractor}


@pytest.mark.parametrize(
    ("algo", "env_id", "extra"),
    [
        (PPO, "CartPole-v1", {"n_steps": 32, "batch_size": 32}),
        (A2C, "CartPole-v1", {}),
        (DQN, "CartPole-v1", {"learning_starts": 16, "train_freq": 8, "batch_size": 16}),
        (SAC, "Pendulum-v1", {"learning_starts": 16, "batch_size": 16}),
    ],
)
@pytest.mark.parametrize("circuit", ["unentangled", "entangled"])
def test_algorithms_train_with_quantum_extractor(algo, env_id, extra, circuit):
    model = algo("MlpPolicy", env_id, policy_kwargs=_kwargs(circuit=circuit), seed=0, **extra)
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters() if "theta" in n}
    model.learn(64)
    after = dict(model.policy.named_parameters())
    assert before and any(not torch.equal(v, after[n]) for n, v in before.items())
    counts = parameter_counts(model)
    assert counts["quantum"] > 0 and counts["total"] == counts["quantum"] + counts["classical"]


class _FakeEnv(gym.Env):
    def __init__(self, space: spaces.Space) -> None:
        self.observation_space = space
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 1.0, False, False, {}


@pytest.mark.parametrize(
    ("space", "n_qubits"),
    [
        (spaces.Box(-1, 1, (3,)), 3),
        (spaces.Box(-np.inf, np.inf, (2, 3)), 6),  # any shape is flattened
        (spaces.Discrete(16), 4),  # FrozenLake-style states, 4 bits
        (spaces.Discrete(5), 3),
        (spaces.MultiBinary(5), 5),
    ],
)
def test_observation_spaces(space, n_qubits):
    model = PPO("MlpPolicy", _FakeEnv(space), policy_kwargs=_kwargs(), n_steps=16, batch_size=16)
    extractor = model.policy.features_extractor
    assert extractor.circuit.n_qubits == n_qubits
    model.learn(16)
    action, _ = model.predict(space.sample(), deterministic=True)
    assert action in (0, 1)


def test_basis_encoding_loads_integer_bits():
    space = spaces.Discrete(16)
    encoder = ObservationEncoder(space, n_qubits=4, per_qubit=1)
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 5, 15]), 16).float()
    bits = encoder(one_hot)[..., 0]
    assert bits.tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1]]
    # Basis state |0101>: <Z> = +1, -1, +1, -1 on the four qubits, before any rotation.
    extractor = QuantumExtractor(
        space, circuit="unentangled", n_layers=1, observables=["Z"], rotations="z"
    )
    values = extractor(one_hot[1:2]) / extractor.output_scale.detach()
    torch.testing.assert_close(values, torch.tensor([[1.0, -1.0, 1.0, -1.0]]), atol=1e-6, rtol=0)


def test_euler_encoding_packs_three_features_per_qubit():
    extractor = QuantumExtractor(
        spaces.Box(-1, 1, (7,)), encoding="euler", rotations="x", observables=["Z"]
    )
    assert extractor.circuit.n_qubits == 3  # ceil(7 / 3), the last qubit padded
    assert extractor.features_dim == 3
    assert extractor(torch.zeros(2, 7)).shape == (2, 3)


def test_feature_selection_and_squash():
    low, high = np.array([-4.8, -np.inf], np.float32), np.array([4.8, np.inf], np.float32)
    space = spaces.Box(low, high, dtype=np.float32)
    auto = ObservationEncoder(space, n_qubits=2, per_qubit=1, squash="auto")
    x = torch.tensor([[4.8, 1.0]])
    torch.testing.assert_close(auto(x)[0, :, 0], torch.tensor([torch.pi / 2, torch.pi / 4]))
    picked = QuantumExtractor(spaces.Box(-1, 1, (4,)), features=[1, 3])
    assert picked.circuit.n_qubits == 2


@pytest.mark.parametrize(
    ("space", "kwargs", "message"),
    [
        (spaces.Dict({"a": spaces.Discrete(2)}), {}, "cannot encode observation space"),
        (spaces.Box(-1, 1, (3,)), {"encoding": "basis"}, "basis encoding needs"),
        (spaces.Box(-1, 1, (3,)), {"features": [0, 5]}, "out of range"),
        (spaces.Box(-1, 1, (3,)), {"n_qubits": 2}, "do not fit on 2 qubits"),
        (spaces.Box(-1, 1, (3,)), {"squash": "sigmoid"}, "unknown squash"),
        (spaces.Box(-1, 1, (3,)), {"dtype": "float16"}, "unknown dtype"),
        (spaces.Box(-1, 1, (3,)), {"executor": "nope.qubit"}, "unknown executor"),
        (spaces.Box(-1, 1, (40,)), {"circuit": "entangled"}, "needs .* for a single sample"),
    ],
)
def test_bad_extractor_input(space, kwargs, message):
    with pytest.raises(QrlError, match=message):
        QuantumExtractor(space, **kwargs)


def test_executor_switch_keeps_outputs():
    torch.manual_seed(0)
    extractor = QuantumExtractor(spaces.Box(-5, 5, (4,)), circuit="entangled", dtype="float64")
    obs = torch.randn(9, 4)
    on_torch = extractor(obs)
    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs=_kwargs(dtype="float64"))
    assert set_executor(model, "default.qubit") == 1
    extractor.set_executor("default.qubit")
    torch.testing.assert_close(extractor(obs), on_torch, atol=1e-6, rtol=0)
    assert extractor.circuit_executions == 18 and extractor.circuit_calls == 2


def test_classical_policy_rejects_executor():
    model = PPO("MlpPolicy", "CartPole-v1")
    with pytest.raises(QrlError, match="no quantum circuit"):
        set_executor(model, "default.qubit")
