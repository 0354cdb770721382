"""Every registered circuit family, gate and entangling pattern on the torch executor against
PennyLane's default.qubit (values and gradients). The registries are the parametrization, so
a new entry is tested by registering it (tests/conftest.py registers the example family and
gate of examples/my_circuits.py)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch

from qrl.circuits import (
    CIRCUITS,
    ENCODINGS,
    GATES,
    PATTERNS,
    Circuit,
    InputAngle,
    Moment,
    WeightAngle,
    make_circuit,
    pattern_pairs,
)
from qrl.errors import QrlError
from qrl.executors import make_executor
from qrl.simulator import kernels, route, run_reference, run_statevector

ENTANGLERS = sorted(n.lower() for n, g in GATES.items() if g.wires == 2)
# Every registered pattern; those that take an argument with one.
PATTERN_SPECS = [*sorted(p if p != "range" else "range:2" for p in PATTERNS), "range:3"]

OPTIONS = [
    {},
    {"encoding": "euler", "rotations": "x", "observables": ["Z"]},
    {"encoding": "ry", "rotations": "xy", "reupload": False, "n_layers": 3},
    {"encoding": "basis", "observables": ["Z", "X"]},
    {"encoding": "rx", "rotations": "z", "observables": ["Y"], "n_layers": 1},
]


def _case(name: str, options: dict, n_qubits: int, batch: int, seed: int = 0):
    return _weights_and_inputs(make_circuit(name, n_qubits, **options), options, batch, seed)


def _weights_and_inputs(circuit: Circuit, options: dict, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    n_qubits = circuit.n_qubits
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


def _run(executor: str, circuit, weights, inputs, **options):
    out = make_executor(executor, options)(circuit, inputs, weights)
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


@pytest.mark.parametrize("pattern", PATTERN_SPECS)
@pytest.mark.parametrize("entangler", ENTANGLERS)
def test_every_entangler_and_pattern_matches_default_qubit(entangler, pattern):
    """Every two-qubit gate of the table on every pattern, values and gradients: the fast
    paths for fixed permutation gates, the reference simulator for trainable ones."""
    options = {"entangler": entangler, "pattern": pattern, "n_layers": 3}
    circuit, weights, inputs = _case("entangled", options, 4, batch=5)
    out, grads = _run("torch", circuit, weights, inputs)
    ref_out, ref_grads = _run("default.qubit", circuit, weights, inputs)
    torch.testing.assert_close(out, ref_out, atol=1e-9, rtol=0)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref, atol=1e-9, rtol=0)
    assert ("phi" in circuit.weight_shapes) == GATES[entangler.upper()].trainable


def _probe(name: str, n_qubits: int = 3) -> Circuit:
    """A circuit that puts one gate of the table between encodings and rotations."""
    spec = GATES[name]
    moments = [Moment("RX", InputAngle(0, 0, 0)), Moment("RY", WeightAngle(0, 0))]
    shapes: dict[str, tuple[int, ...]] = {
        "theta": (1, n_qubits, 2),
        "input_scale": (1, n_qubits, 1),
    }
    if spec.wires == 1:
        moments.append(Moment(name, WeightAngle(0, 1) if spec.trainable else None))
        if not spec.trainable:
            moments.append(Moment("RZ", WeightAngle(0, 1)))
    else:
        pairs = ((0, 1), (2, 1), (1, 0))
        angle = WeightAngle(0, 0, "phi") if spec.trainable else None
        moments += [Moment(name, angle, pairs), Moment("RZ", WeightAngle(0, 1))]
        if spec.trainable:
            shapes["phi"] = (1, len(pairs), 1)
    return Circuit(f"probe-{name}", n_qubits, 1, tuple(moments), ("X", "Y", "Z"), shapes)


@pytest.mark.parametrize("name", sorted(GATES))
def test_every_gate_matches_default_qubit(name):
    """Each gate of the table, through its matrix (torch) and its PennyLane name."""
    circuit, weights, inputs = _weights_and_inputs(_probe(name), {}, batch=4)
    out, grads = _run("torch", circuit, weights, inputs)
    ref_out, ref_grads = _run("default.qubit", circuit, weights, inputs)
    torch.testing.assert_close(out, ref_out, atol=1e-9, rtol=0)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", sorted(GATES))
def test_every_gate_runs_on_qiskit_by_its_name(name):
    """Each gate through its Qiskit name: exact Aer values and parameter-shift gradients."""
    pytest.importorskip("qiskit_aer")
    circuit, weights, inputs = _weights_and_inputs(_probe(name), {}, batch=3)
    out, grads = _run("torch", circuit, weights, inputs)
    ref_out, ref_grads = _run("qiskit.aer", circuit, weights, inputs, shots=None)
    torch.testing.assert_close(out, ref_out.to(out.dtype), atol=1e-9, rtol=0)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref.to(g.dtype), atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", sorted(n for n, g in GATES.items() if g.trainable))
def test_shift_rules_give_the_derivative(name):
    """The gate's parameter-shift rule reproduces autograd's derivative of an expectation."""
    circuit = _probe(name)
    _, weights, inputs = _weights_and_inputs(circuit, {}, batch=2, seed=5)
    key = "phi" if "phi" in weights else "theta"
    angle = weights[key].detach().clone().requires_grad_()

    def f(value: torch.Tensor) -> torch.Tensor:
        return run_reference(circuit, inputs, {**weights, key: value}).sum()

    (exact,) = torch.autograd.grad(f(angle), angle)
    shifted = torch.zeros_like(exact)
    flat = shifted.reshape(-1)
    for i in range(flat.numel()):
        for c, s in GATES[name].shift_rule:
            moved = angle.detach().clone().reshape(-1)
            moved[i] += s
            flat[i] += c * f(moved.reshape(angle.shape)).detach()
    # Only the angles of this gate's moment follow its rule (RY's own are two-term).
    mask = torch.zeros_like(exact, dtype=torch.bool)
    if key == "phi":
        mask[:] = True
    else:
        mask[..., 1] = True
    torch.testing.assert_close(shifted[mask], exact[mask], atol=1e-9, rtol=0)


def test_patterns():
    assert pattern_pairs("ring", 4, 0) == ((0, 1), (1, 2), (2, 3), (3, 0))
    assert pattern_pairs("ring", 2, 0) == ((0, 1),)
    assert pattern_pairs("chain", 4, 0) == ((0, 1), (1, 2), (2, 3))
    assert pattern_pairs("all", 3, 0) == ((0, 1), (0, 2), (1, 2))
    assert pattern_pairs("brick", 5, 0) == ((0, 1), (2, 3), (1, 2), (3, 4))
    assert [pattern_pairs("range:2", 4, layer)[0] for layer in range(3)] == [(0, 1), (0, 2), (0, 1)]
    with pytest.raises(QrlError, match=r"range:R needs a whole R from 1 to n_qubits - 1 = 3"):
        pattern_pairs("range:4", 4, 0)
    with pytest.raises(QrlError, match="unknown pattern 'star'"):
        pattern_pairs("star", 4, 0)


def test_range_pattern_cycles_as_strongly_entangling_layers():
    """range:(n-1) gives the CNOTs of PennyLane's StronglyEntanglingLayers, layer by layer."""
    import pennylane as qml

    n, layers = 4, 5
    template = qml.StronglyEntanglingLayers(torch.zeros(layers, n, 3), wires=range(n))
    cnots = [tuple(op.wires) for op in template.decomposition() if op.name == "CNOT"]
    ours = [pair for layer in range(layers) for pair in pattern_pairs(f"range:{n - 1}", n, layer)]
    assert ours == cnots


def test_trainable_entanglers_take_the_reference_path_and_fixed_ones_the_fast_paths():
    assert route(make_circuit("entangled", 4, entangler="crz", pattern="all"), False) == "reference"
    shared = route(make_circuit("entangled", 4, entangler="cz", pattern="brick"), False)
    assert shared == ("compiled" if kernels.AVAILABLE else "frame")
    per_sample = route(make_circuit("entangled", 4, pattern="chain"), True)
    assert per_sample == ("compiled" if kernels.AVAILABLE else "statevector")
    assert route(make_circuit("unentangled", 4), False) == "product"


def test_user_family_trains_and_evaluates_from_the_cli(tmp_path, monkeypatch):
    """The example family (a file outside the package) trains through an agent preset file
    and its saved model evaluates in a fresh process."""
    from conftest import ROOT

    from qrl.cli import main

    monkeypatch.chdir(ROOT)
    run = tmp_path / "iswap"
    args = ["train", "--agent", "examples/iswap_agent.yaml", "--env", "CartPole-v1"]
    args += ["--timesteps", "256", "--run-dir", str(run), "--no-progress"]
    assert main([*args, "--set", "eval_episodes=2"]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "qrl.cli", "evaluate", str(run), "--episodes", "2", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"mean_return"' in done.stdout


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
        ("entangled", {"entangler": "rx"}, "unknown entangler 'rx'"),
        ("entangled", {"pattern": "star"}, "unknown pattern 'star'"),
        ("entangled", {"pattern": "range:x"}, "range:R needs a whole R"),
        ("no_such_module:family", {}, "cannot import 'no_such_module'"),
        ("qrl.circuits:nothing_here", {}, "has no function .nothing_here."),
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


def test_circuits_are_checked_when_built():
    """Angles outside the declared weights, unknown gates and bad families: one clear line."""
    rx = Moment("RX", WeightAngle(1, 0))
    declared = r"reads theta\[1, :3, 0\], but theta is declared \(1, 3, 1\)"
    with pytest.raises(QrlError, match=declared):
        Circuit("c", 3, 1, (rx,), ("Z",), {"theta": (1, 3, 1)})
    with pytest.raises(QrlError, match="declared nowhere"):
        Circuit("c", 3, 1, (Moment("CRZ", WeightAngle(0, 0, "phi"), ((0, 1),)),), ("Z",), {})
    with pytest.raises(QrlError, match="gate 'NOPE' is not registered"):
        Circuit("c", 1, 1, (Moment("NOPE"),), ("Z",), {})
    with pytest.raises(QrlError, match="write module:function"):
        make_circuit(":f", 2)
    with pytest.raises(QrlError, match="takes no pattern"):
        make_circuit("unentangled", 2, pattern="all")
    # Two circuits that differ only in their weight shapes are different circuits.
    a = Circuit("c", 2, 1, (Moment("RX", WeightAngle(0, 0)),), ("Z",), {"theta": (1, 2, 1)})
    b = Circuit("c", 2, 1, (Moment("RX", WeightAngle(0, 0)),), ("Z",), {"theta": (1, 2, 2)})
    assert a != b and hash(a) != hash(b)


def test_gates_are_checked_when_registered():
    from qrl.circuits import Gate, register_gate
    from qrl.circuits.gates import TWO_TERM, fixed, rotation

    with pytest.raises(QrlError, match="already registered with a different matrix"):
        register_gate(Gate("RX", 1, rotation("Y"), True, "RY", "ry", TWO_TERM), replace=True)
    with pytest.raises(QrlError, match="shift rule"):
        register_gate(Gate("HALF", 1, rotation("Y"), True, "RY", "ry", ((1.0, 0.5),)))
    with pytest.raises(QrlError, match="must be a 2x2 unitary"):
        register_gate(Gate("TWICE", 1, fixed(((2, 0), (0, 2))), False, "X", "x"))
    assert "HALF" not in GATES and "TWICE" not in GATES
