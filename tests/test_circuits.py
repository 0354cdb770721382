"""Every registered circuit on the torch executor against PennyLane's default.qubit."""

from __future__ import annotations

import itertools

import pytest
import torch

from qrl.circuits import CIRCUITS, ENCODINGS, make_circuit
from qrl.errors import QrlError
from qrl.executors import make_executor
from qrl.simulator import run_statevector

OPTIONS = [
    {},
    {"encoding": "euler", "rotations": "x", "observables": ["Z"]},
    {"encoding": "ry", "rotations": "xy", "reupload": False, "n_layers": 3},
    {"encoding": "basis", "observables": ["Z", "X"]},
    {"encoding": "rx", "rotations": "z", "observables": ["Y"], "n_layers": 1},
]


def _case(name: str, options: dict, n_qubits: int, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    circuit = make_circuit(name, n_qubits, **options)
    weights = {
        k: (torch.randn(s, generator=gen, dtype=torch.float64) * 2).requires_grad_()
        for k, s in circuit.weight_shapes.items()
    }
    inputs = torch.randn(
        batch, n_qubits, circuit.features_per_qubit, generator=gen, dtype=torch.float64
    )
    if options.get("encoding") == "basis":
        inputs = (inputs > 0).to(torch.float64)
    return circuit, weights, inputs


def _run(executor: str, circuit, weights, inputs):
    out = make_executor(executor)(circuit, inputs, weights)
    # A weighted sum, so that every output contributes its own gradient.
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
    grads = torch.autograd.grad(loss, list(weights.values()))
    return out, grads


@pytest.mark.parametrize(
    ("name", "options", "n_qubits"),
    list(itertools.product(sorted(CIRCUITS), OPTIONS, [1, 3, 4])),
)
def test_torch_matches_default_qubit_float64(name, options, n_qubits):
    circuit, weights, inputs = _case(name, options, n_qubits, batch=7)
    out, grads = _run("torch", circuit, weights, inputs)
    ref_out, ref_grads = _run("default.qubit", circuit, weights, inputs)
    assert out.shape == (7, circuit.n_outputs)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_float32_matches_float64_reference(name):
    circuit, weights, inputs = _case(name, {}, 4, batch=16, seed=1)
    ref_out, ref_grads = _run("default.qubit", circuit, weights, inputs)
    w32 = {k: v.detach().float().requires_grad_() for k, v in weights.items()}
    out, grads = _run("torch", circuit, w32, inputs.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out, atol=1e-5, rtol=0)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), ref, atol=1e-4, rtol=0)


def test_product_path_equals_state_vector_path():
    circuit, weights, inputs = _case("unentangled", {"encoding": "euler"}, 5, batch=3)
    product = make_executor("torch")(circuit, inputs, weights)
    vector = run_statevector(circuit, inputs, weights.get("input_scale"), weights["theta"])
    torch.testing.assert_close(product, vector, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_gradients_match_finite_differences(name):
    circuit, weights, inputs = _case(name, {}, 3, batch=2, seed=2)
    assert torch.autograd.gradcheck(
        lambda theta, scale: make_executor("torch")(
            circuit, inputs, {"theta": theta, "input_scale": scale}
        ),
        (weights["theta"], weights["input_scale"]),
    )


@pytest.mark.parametrize("executor", ["torch", "default.qubit"])
def test_per_sample_angles_match_one_sample_at_a_time(executor):
    """theta with a batch dimension (as the fast weight programmer emits) runs per sample."""
    circuit, weights, inputs = _case("entangled", {}, 3, batch=4)
    theta = torch.randn(4, *circuit.weight_shapes["theta"], dtype=torch.float64)
    run = make_executor(executor)
    batched = run(circuit, inputs, {"theta": theta, "input_scale": weights["input_scale"]})
    for b in range(4):
        single = run(
            circuit, inputs[b : b + 1], {"theta": theta[b], "input_scale": weights["input_scale"]}
        )
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-10, rtol=0)


def test_known_state():
    """RX(pi) on |0> gives <Z> = -1 and <X> = <Y> = 0, whatever the scale is applied to."""
    circuit = make_circuit("unentangled", 1, n_layers=1, rotations="z", reupload=False)
    inputs = torch.full((1, 1, 1), torch.pi, dtype=torch.float64)
    weights = {
        "theta": torch.zeros(1, 1, 1, dtype=torch.float64),
        "input_scale": torch.ones(1, 1, 1, dtype=torch.float64),
    }
    out = make_executor("torch")(circuit, inputs, weights)
    torch.testing.assert_close(
        out, torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_weight_shapes_and_init():
    circuit = make_circuit("unentangled", 4, n_layers=2, rotations="zyz", reupload=False)
    assert circuit.weight_shapes == {"theta": (2, 4, 3), "input_scale": (1, 4, 1)}
    weights = circuit.init_weights(torch.Generator().manual_seed(0))
    assert torch.all(weights["input_scale"] == 1)
    assert weights["theta"].abs().max() <= torch.pi
    assert not make_circuit("unentangled", 4).entangling
    assert make_circuit("entangled", 4).entangling
    assert set(ENCODINGS) == {"rx", "ry", "euler", "basis"}


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, "unknown circuit 'nope'"),
        ("unentangled", {"encoding": "amplitude"}, "unknown encoding 'amplitude'"),
        ("unentangled", {"rotations": "xq"}, "rotations must be letters"),
        ("unentangled", {"observables": ["Z", "Z"]}, "observables must be distinct"),
        ("unentangled", {"entangler": "cnot"}, "takes no entangler"),
        ("entangled", {"entangler": "swap"}, "unknown entangler 'swap'"),
        ("unentangled", {"n_layers": 0}, "at least one qubit and one layer"),
        ("unentangled", {"depth": 3}, "bad option for circuit"),
    ],
)
def test_bad_circuit_options(name, options, message):
    with pytest.raises(QrlError, match=message):
        make_circuit(name, 3, **options)


def test_unknown_executor_lists_devices():
    with pytest.raises(QrlError, match=r"unknown executor 'default.qbit'.*default.qubit"):
        make_executor("default.qbit")


def test_drawing_without_pennylane():
    circuit = make_circuit("entangled", 3, n_layers=1, entangler="cz", observables=["Z"])
    lines = circuit.draw().splitlines()
    assert lines[0] == "0: ─RX(x)─RZ(θ)─RY(θ)─RZ(θ)─●───●─┤ <Z>"
    assert lines[1] == "1: ─RX(x)─RZ(θ)─RY(θ)─RZ(θ)─●─●─│─┤ <Z>"
    euler = make_circuit("unentangled", 1, n_layers=1, encoding="euler", rotations="y")
    assert euler.draw() == "0: ─H─RZ(x0)─RY(x1)─RZ(x2)─RY(θ)─┤ <X> <Y> <Z>"
