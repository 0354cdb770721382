"""Classical encoders in front of a circuit (``policy.encoder``): every registered encoder.

The tests that take an encoder are parametrized over :data:`qrl.encoders.ENCODERS`, each on
the first of :data:`SPACES` it reads, so a new entry is tested by registering it.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import NatureCNN

import qrl
from qrl.encoders import DEFAULT_QUBITS, ENCODERS, make_encoder, nature_trunk
from qrl.errors import QrlError
from qrl.extractors import QuantumExtractor, build_circuit, parameter_counts
from qrl.fast_weights import QFWPPolicy

VECTOR = spaces.Box(-np.inf, np.inf, (5,), np.float32)
IMAGE = spaces.Box(0, 255, (36, 36, 3), np.uint8)  # the smallest image NatureCNN reads
SPACES = (VECTOR, IMAGE)


def readable_space(name: str) -> spaces.Box:
    """The first test space the encoder ``name`` accepts."""
    for space in SPACES:
        try:
            make_encoder(name, space, 1)
        except QrlError:
            continue
        return space
    raise AssertionError(f"encoder {name!r} reads none of the test spaces")


def batch(space: spaces.Space, n: int = 4) -> torch.Tensor:
    """Observations as SB3 preprocesses them (images scaled to [0, 1])."""
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(n)])).float()
    return obs / 255.0 if obs.dim() == 4 else obs


class ObservationEnv(gym.Env):
    """Random observations of a given space, two actions, episodes of 8 steps."""

    def __init__(self, space: spaces.Space) -> None:
        self.observation_space = space
        self.action_space = spaces.Discrete(2)
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.steps += 1
        return self.observation_space.sample(), float(action), self.steps >= 8, False, {}


def ppo(space: spaces.Space, **circuit: object) -> PPO:
    kwargs = {"features_extractor_class": QuantumExtractor, "features_extractor_kwargs": circuit}
    env = ObservationEnv(space)
    return PPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=kwargs)


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize(("encoding", "per_qubit"), [("rx", 1), ("euler", 3)])
def test_encoder_outputs_bounded_angles_for_every_qubit(name, encoding, per_qubit):
    space = readable_space(name)
    spec, encoder = build_circuit(space, encoder=name, n_qubits=3, encoding=encoding)
    assert spec.n_qubits == 3
    angles = encoder(batch(space))
    assert angles.shape == (4, 3, per_qubit)
    assert bool((angles.abs() < torch.pi / 2).all())  # arctan of the encoder's outputs
    extractor = QuantumExtractor(space, encoder=name, n_qubits=3, encoding=encoding)
    assert extractor(batch(space)).shape == (4, extractor.features_dim)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_default_qubits_and_memory_qubits(name):
    space = readable_space(name)
    spec, _ = build_circuit(space, encoder=name)
    assert spec.n_qubits == DEFAULT_QUBITS
    spec, encoder = build_circuit(space, encoder=name, memory_qubits=2)
    assert spec.n_qubits == DEFAULT_QUBITS + 2
    angles = encoder(batch(space))
    assert bool((angles[:, DEFAULT_QUBITS:] == 0).all())  # memory qubits load nothing


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_gradients_reach_the_encoder(name):
    space = readable_space(name)
    extractor = QuantumExtractor(space, encoder=name, n_qubits=2)
    extractor(batch(space)).sum().backward()
    network = extractor.encoder.network
    assert network is not None
    grads = [p.grad for p in network.parameters()]
    assert grads and all(g is not None for g in grads)
    assert any(bool(g.abs().sum() > 0) for g in grads if g is not None)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_parameters_count_as_classical(name):
    space = readable_space(name)
    model = ppo(space, encoder=name, n_qubits=3)
    extractor = model.policy.features_extractor
    n_encoder = sum(p.numel() for p in extractor.encoder.parameters())
    # The circuit's own parameters are those of the same circuit without an encoder.
    plain = QuantumExtractor(spaces.Box(-1, 1, (3,), np.float32))
    n_circuit = sum(p.numel() for p in plain.parameters())
    counts = parameter_counts(model)
    assert n_encoder > 0
    assert counts["quantum"] == n_circuit
    assert counts["classical"] == sum(p.numel() for p in model.policy.parameters()) - n_circuit
    # A quantum reservoir freezes the circuit, not the classical encoder.
    frozen = QuantumExtractor(space, encoder=name, n_qubits=3, trainable=False)
    assert not any(p.requires_grad for p in frozen.quantum_parameters())
    assert all(p.requires_grad for p in frozen.encoder.parameters())


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_save_and_load_restore_the_encoder(name, tmp_path: Path):
    space = readable_space(name)
    model = ppo(space, encoder=name, n_qubits=2)
    model.learn(16)
    kwargs = model.policy_kwargs["features_extractor_kwargs"]
    assert yaml.safe_load(yaml.safe_dump(kwargs)) == kwargs  # plain data
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip")
    before, after = model.policy.state_dict(), loaded.policy.state_dict()
    assert any(".network." in key for key in after)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    obs = np.stack([space.sample() for _ in range(3)])
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )


def test_no_encoder_is_unchanged():
    torch.manual_seed(0)
    plain = QuantumExtractor(VECTOR)
    for none in (None, "none"):
        torch.manual_seed(0)
        same = QuantumExtractor(VECTOR, encoder=none)
        assert same.encoder.network is None
        assert plain.state_dict().keys() == same.state_dict().keys()
        assert all(torch.equal(v, same.state_dict()[k]) for k, v in plain.state_dict().items())
    assert [p.shape for p in plain.quantum_parameters()] == [p.shape for p in plain.parameters()]


def test_cnn_has_the_layers_of_nature_cnn():
    chw = spaces.Box(0, 255, (3, 36, 36), np.uint8)
    assert str(nature_trunk(3)) == str(NatureCNN(chw).cnn)
    # Channel-first and channel-last images, and flattened ones, give the same features.
    hwc = make_encoder("cnn", IMAGE, 4)
    first = make_encoder("cnn", chw, 4)
    first.load_state_dict(hwc.state_dict())
    images = batch(IMAGE)
    out = hwc(images)
    torch.testing.assert_close(first(images.permute(0, 3, 1, 2)), out)
    torch.testing.assert_close(hwc(images.flatten(1)), out)


@pytest.mark.parametrize(
    ("space", "options", "message"),
    [
        (VECTOR, {"encoder": "cnn"}, r"cnn encoder needs an image .*Box.*use encoder: linear"),
        (spaces.Box(0, 255, (20, 20, 3), np.uint8), {"encoder": "cnn"}, "too small"),
        (VECTOR, {"encoder": "cnnn"}, r"unknown encoder 'cnnn'.*valid choices: cnn, linear, mlp"),
        (VECTOR, {"encoder": "mlp", "features": [0, 1]}, "encoder reads the whole observation"),
        (VECTOR, {"encoder": "linear", "encoder_hidden": [8]}, "use encoder: mlp"),
        (VECTOR, {"encoder": "mlp", "encoder_hidden": [0]}, "list of layer sizes"),
        (VECTOR, {"encoder": "mlp", "encoder_hidden": 64}, "list of layer sizes"),
        (VECTOR, {"encoder_hidden": [8]}, "set policy.encoder too"),
        (VECTOR, {"encoder": "mlp", "squash": "none"}, "unbounded"),
        (VECTOR, {"encoder": "mlp", "encoding": "basis"}, "encoder outputs angles"),
    ],
)
def test_bad_encoder_options(space, options, message):
    with pytest.raises(QrlError, match=message):
        QuantumExtractor(space, **options)


def test_bad_encoder_through_a_preset(tmp_path: Path):
    with pytest.raises(QrlError, match=r"needs an image observation space.*Box"):
        qrl.train(
            "unentangled",
            "CartPole-v1",
            overrides=["policy.encoder=cnn"],
            run_dir=tmp_path / "run",
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def test_memory_refusal_names_the_encoder():
    with pytest.raises(QrlError, match=r"40 qubits needs 8.0 TiB.*policy.encoder"):
        build_circuit(IMAGE, circuit="entangled", encoder="cnn", n_qubits=40)


def test_image_policy_trains():
    model = ppo(IMAGE, encoder="cnn", n_qubits=4, circuit="entangled")
    network = model.policy.features_extractor.encoder.network
    before = [p.detach().clone() for p in network.parameters()]
    model.learn(32)
    assert any(not torch.equal(b, p) for b, p in zip(before, network.parameters(), strict=True))


def test_fast_weight_cell_takes_an_encoder():
    """qfwp: the cell reads flattened observations; the cnn encoder reshapes them."""
    kwargs = {"encoder": "cnn", "n_qubits": 2, "programmer_input": "encoded"}
    model = RecurrentPPO(
        QFWPPolicy, ObservationEnv(IMAGE), n_steps=8, batch_size=8, n_epochs=1, policy_kwargs=kwargs
    )
    model.learn(16)
    cell = model.policy.lstm_actor
    n_encoder = sum(p.numel() for p in cell.encoder.parameters())
    counts = parameter_counts(model)
    assert n_encoder > 0 and counts["quantum"] == 2 * (2 * 2 + 6)  # input, output scales


def test_car_racing_trains_and_evaluates(tmp_path: Path):
    """The hybrid CarRacing run of docs/hybrid.md, on a short budget (about 10 s)."""
    run = qrl.train(
        "unentangled",
        "CarRacing-v3",
        timesteps=256,
        overrides=[
            "policy.encoder=cnn",
            "policy.n_qubits=8",
            "hyperparameters.n_steps=256",
            "eval_episodes=1",
            "env_kwargs.max_episode_steps=100",
        ],
        run_dir=tmp_path / "car",
        progress=False,
        checkpoints=1,
    )
    status = json.loads((run.path / "run.json").read_text())
    assert status["status"] == "finished" and status["num_timesteps"] == 256
    assert status["parameters"]["quantum"] == 88  # 8 qubits: the encoder is classical
    evaluation = json.loads((run.path / "eval.json").read_text())
    assert evaluation["episodes"] == 1 and evaluation["lengths"] == [100]
