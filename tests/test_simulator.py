"""The fast simulator's paths against PennyLane's default.qubit: NumPy kernels (CPU) and the
PyTorch kernels that CUDA tensors take, product and state-vector paths, every gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrl.circuits import GATES, make_circuit
from qrl.executors import make_executor
from qrl.simulator import (
    TorchSimulator,
    compiled,
    kernels,
    route,
    run_compiled,
    run_frame,
    run_product,
    run_statevector,
)
from qrl.simulator.frame import BASES, Monomial, Phase, Shared, groups, make_schedule
from qrl.simulator.plan import is_monomial, monomial
from qrl.simulator.reference import apply

CASES = [
    ("unentangled", 5, {}),
    ("unentangled", 3, {"encoding": "euler", "rotations": "xy", "observables": ["Y", "X"]}),
    ("unentangled", 4, {"encoding": "basis"}),
    ("entangled", 2, {}),
    ("entangled", 5, {"entangler": "cz", "encoding": "euler"}),
    ("entangled", 6, {"reupload": False, "n_layers": 3, "rotations": "y"}),
    ("entangled", 7, {"observables": ["Z"], "encoding": "ry"}),
    ("entangled", 9, {"encoding": "basis", "n_layers": 2, "observables": ["X", "Z"]}),
]


def _case(name, n_qubits, options, batch=6, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    circuit = make_circuit(name, n_qubits, **options)
    weights = {
        k: (torch.randn(s, generator=gen, dtype=dtype) * 2).requires_grad_()
        for k, s in circuit.weight_shapes.items()
    }
    inputs = torch.randn(batch, n_qubits, circuit.features_per_qubit, generator=gen, dtype=dtype)
    if options.get("encoding") == "basis":
        inputs = (inputs > 0).to(dtype)
    return circuit, weights, inputs.requires_grad_()


needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
# The kernels a CPU simulator runs: compiled (Numba, where installed), NumPy, and PyTorch's
# (the path of CUDA tensors).
KERNELS = [pytest.param("compiled", marks=needs_numba), "numpy", "torch"]


def _simulator(kernels_: str, frame: bool = True) -> TorchSimulator:
    return TorchSimulator(kernels_ == "torch", frame=frame, compiled=kernels_ == "compiled")


def _assert_same_values_and_gradients(out, ref, tensors):
    """Two paths' outputs agree to 1e-11, and the gradients of one weighting of them with
    respect to every tensor to 1e-10 (float64)."""
    mix = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * mix).sum(), tensors)
    ref_grads = torch.autograd.grad((ref * mix).sum(), tensors)
    torch.testing.assert_close(out, ref, atol=1e-11, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=0)


def _outputs_and_grads(executor, circuit, weights, inputs):
    out = executor(circuit, inputs, weights)
    mix = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    tensors = [inputs, *weights.values()]
    grads = torch.autograd.grad((out * mix).sum(), tensors)
    return out, grads


# Entangling circuits with shared weights on the frame path (the default) and, again, on
# the general per-sample path.
PATH_CASES = [(*case, True) for case in CASES] + [
    (*case, False) for case in CASES if case[0] == "entangled"
]


@pytest.mark.parametrize("kernels_", KERNELS)
@pytest.mark.parametrize(("name", "n_qubits", "options", "frame"), PATH_CASES)
def test_matches_default_qubit_with_input_gradients(name, n_qubits, options, kernels_, frame):
    """Every path against default.qubit."""
    circuit, weights, inputs = _case(name, n_qubits, options)
    simulator = _simulator(kernels_, frame)
    out, grads = _outputs_and_grads(simulator, circuit, weights, inputs)
    ref, ref_grads = _outputs_and_grads(make_executor("default.qubit"), circuit, weights, inputs)
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-9, rtol=0)


@pytest.mark.parametrize("kernels_", KERNELS)
@pytest.mark.parametrize("name", ["unentangled", "entangled"])
def test_float32_gradients(name, kernels_):
    circuit, weights, inputs = _case(name, 6, {}, batch=32, seed=3)
    ref, ref_grads = _outputs_and_grads(make_executor("default.qubit"), circuit, weights, inputs)
    w32 = {k: v.detach().float().requires_grad_() for k, v in weights.items()}
    x32 = inputs.detach().float().requires_grad_()
    out, grads = _outputs_and_grads(_simulator(kernels_), circuit, w32, x32)
    assert out.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in grads)
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), r, atol=5e-5, rtol=0)


@pytest.mark.parametrize("kernels_", KERNELS)
@pytest.mark.parametrize("name", ["unentangled", "entangled"])
def test_per_sample_theta_gradients(name, kernels_):
    """theta with a batch dimension (the fast weight programmer's angles): gradients per sample."""
    circuit, weights, inputs = _case(name, 4, {"entangler": "cz"} if name == "entangled" else {})
    theta = torch.randn(6, *circuit.weight_shapes["theta"], dtype=torch.float64)
    batched = {"theta": theta.requires_grad_(), "input_scale": weights["input_scale"]}
    out, grads = _outputs_and_grads(_simulator(kernels_), circuit, batched, inputs)
    ref, ref_grads = _outputs_and_grads(make_executor("default.qubit"), circuit, batched, inputs)
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-9, rtol=0)


@pytest.mark.parametrize("force_torch", [False, True], ids=["numpy", "torch"])
def test_gradcheck_both_paths(force_torch):
    for name in ("unentangled", "entangled"):
        circuit, weights, inputs = _case(name, 3, {}, batch=2, seed=5)
        run = run_statevector if name == "entangled" else run_product
        assert torch.autograd.gradcheck(
            lambda x, s, t, run=run, c=circuit: run(c, x, s, t, force_torch),
            (inputs, weights["input_scale"], weights["theta"]),
        )


def test_product_and_state_vector_paths_agree():
    circuit, weights, inputs = _case("unentangled", 7, {"encoding": "euler"}, batch=5)
    args = (circuit, inputs, weights["input_scale"], weights["theta"])
    torch.testing.assert_close(run_product(*args), run_statevector(*args), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("name", "node", "per_sample"),
    [
        ("unentangled", "ProductCircuit", False),
        ("entangled", "CompiledCircuit" if kernels.AVAILABLE else "FrameCircuit", False),
        ("entangled", "CompiledCircuit" if kernels.AVAILABLE else "StateVectorCircuit", True),
    ],
)
def test_inference_records_nothing(name, node, per_sample):
    """Under no_grad no autograd node is created; with grad, one node per circuit call, on
    the path the weights choose."""
    circuit, weights, inputs = _case(name, 4, {})
    if per_sample:
        theta = torch.randn(6, *circuit.weight_shapes["theta"]).double()
        weights["theta"] = theta.requires_grad_()
    with torch.no_grad():
        out = TorchSimulator()(circuit, inputs, weights)
    assert out.grad_fn is None
    out = TorchSimulator()(circuit, inputs, weights)
    assert type(out.grad_fn).__name__ == f"{node}Backward"


def _dense(gate: str, pairs, n: int) -> np.ndarray:
    """The pattern's 2^n x 2^n matrix, from the gate table through the reference simulator."""
    from qrl.circuits import gate as table

    state = torch.eye(2**n, dtype=torch.complex128).reshape(2**n, *([2] * n))
    for pair in pairs:
        state = apply(state, table(gate).unitary(), pair)
    return state.reshape(2**n, 2**n).T.numpy()


def test_cnot_ring_table_is_a_permutation_and_matches_gates():
    perm, phase = monomial(np.asarray(_dense("CNOT", ((0, 1),), 2)), ((0, 1), (1, 2), (2, 0)), 3)
    assert phase is None
    assert sorted(perm.tolist()) == list(range(8))
    # |100> -> CNOT(0,1) |110> -> CNOT(1,2) |111> -> CNOT(2,0) |011>: new[3] = old[4]
    assert perm[0b011] == 0b100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    for name in ("unentangled", "entangled"):
        circuit, weights, inputs = _case(name, 5, {}, dtype=torch.float32)
        cpu, cpu_grads = _outputs_and_grads(TorchSimulator(), circuit, weights, inputs)
        cuda_w = {k: v.detach().cuda().requires_grad_() for k, v in weights.items()}
        cuda_x = inputs.detach().cuda().requires_grad_()
        gpu, gpu_grads = _outputs_and_grads(TorchSimulator(), circuit, cuda_w, cuda_x)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)
        for g, c in zip(gpu_grads, cpu_grads, strict=True):
            torch.testing.assert_close(g.cpu(), c, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kernels_", KERNELS)
@pytest.mark.parametrize(("name", "n_qubits", "options"), CASES)
def test_inference_path_matches_training_path(name, n_qubits, options, kernels_):
    circuit, weights, inputs = _case(name, n_qubits, options)
    simulator = _simulator(kernels_)
    with torch.no_grad():
        fast = simulator(circuit, inputs, weights)
    torch.testing.assert_close(fast, simulator(circuit, inputs, weights).detach(), atol=0, rtol=0)


FRAME_CASES = [
    (1, {}),
    (2, {"entangler": "cz"}),
    (3, {"encoding": "ry"}),
    (3, {"encoding": "ry", "entangler": "cz"}),
    (4, {"encoding": "euler", "rotations": "xz"}),
    (5, {"encoding": "basis", "observables": ["Y"]}),
    (5, {"reupload": False, "n_layers": 3}),
    (9, {"n_layers": 2, "rotations": "zyz", "observables": ["Z", "X", "Y"]}),
]


@pytest.mark.parametrize("kernels_", KERNELS)
@pytest.mark.parametrize(("n_qubits", "options"), FRAME_CASES)
def test_frame_path_matches_general_path(n_qubits, options, kernels_):
    """Shared weights (the frame path, compiled or not) against the general state-vector
    path: values and the gradients of inputs, input scales and weights, for every encoding,
    entangler and frame."""
    circuit, weights, inputs = _case("entangled", n_qubits, options, batch=5, seed=n_qubits)
    scale = weights.get("input_scale")
    tensors = [t for t in (inputs, scale, weights["theta"]) if t is not None]
    force_torch = kernels_ == "torch"
    run = run_compiled if kernels_ == "compiled" else run_frame
    out = run(circuit, inputs, scale, weights["theta"], force_torch)
    ref = run_statevector(circuit, inputs, scale, weights["theta"], force_torch)
    node = "CompiledCircuit" if kernels_ == "compiled" else "FrameCircuit"
    assert type(out.grad_fn).__name__ == f"{node}Backward"
    _assert_same_values_and_gradients(out, ref, tensors)


@pytest.mark.parametrize("kernels_", KERNELS)
def test_gradcheck_frame_path(kernels_):
    circuit, weights, inputs = _case("entangled", 4, {"encoding": "ry"}, batch=2, seed=7)
    run = run_compiled if kernels_ == "compiled" else run_frame
    assert torch.autograd.gradcheck(
        lambda x, s, t: run(circuit, x, s, t, kernels_ == "torch"),
        (inputs, weights["input_scale"], weights["theta"]),
    )


def test_without_numba_the_frame_path_runs(monkeypatch):
    """The compiled path is optional: without Numba its circuits take the frame path, and
    run_compiled falls back to it (as it does for tensors off the CPU)."""
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    circuit, weights, inputs = _case("entangled", 4, {}, batch=3, seed=2)
    assert route(circuit, False, ("not a path",)) == "frame"
    out = run_compiled(circuit, inputs, weights["input_scale"], weights["theta"])
    assert type(out.grad_fn).__name__ == "FrameCircuitBackward"
    out = TorchSimulator()(circuit, inputs, weights)
    assert type(out.grad_fn).__name__ == "FrameCircuitBackward"
    theta = torch.randn(3, *circuit.weight_shapes["theta"], dtype=torch.float64)
    out = run_compiled(circuit, inputs, weights["input_scale"], theta.requires_grad_())
    assert type(out.grad_fn).__name__ == "StateVectorCircuitBackward"


@needs_numba
@pytest.mark.parametrize(("n_qubits", "options"), FRAME_CASES)
def test_compiled_per_sample_weights_match_general_path(n_qubits, options):
    """One set of weights per sample (fast weights) on the compiled path against the general
    state-vector path: values and every gradient."""
    circuit, weights, inputs = _case("entangled", n_qubits, options, batch=5, seed=n_qubits)
    scale = weights.get("input_scale")
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(5, *circuit.weight_shapes["theta"], generator=gen, dtype=torch.float64)
    tensors = [t for t in (inputs, scale, theta.requires_grad_()) if t is not None]
    out = run_compiled(circuit, inputs, scale, theta)
    ref = run_statevector(circuit, inputs, scale, theta)
    assert type(out.grad_fn).__name__ == "CompiledCircuitBackward"
    _assert_same_values_and_gradients(out, ref, tensors)


@needs_numba
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("prefix", [True, False])
@pytest.mark.parametrize(("n_qubits", "options"), FRAME_CASES)
def test_compiled_product_prefix_matches_general_path(
    n_qubits, options, prefix, batch, monkeypatch
):
    """The compiled path runs the steps before the first entangler on one vector per wire
    from 11 qubits (or many amplitudes) on: both ways, at every size, against the general
    state-vector path, values and every gradient; one sample (the readout's own loops) and
    several."""
    monkeypatch.setattr(compiled, "PREFIX_QUBITS", 1 if prefix else 99)
    monkeypatch.setattr(compiled, "PREFIX_AMPLITUDES", 1 if prefix else 1 << 60)
    circuit, weights, inputs = _case("entangled", n_qubits, options, batch=batch, seed=n_qubits + 1)
    scale = weights.get("input_scale")
    tensors = [t for t in (inputs, scale, weights["theta"]) if t is not None]
    out = run_compiled(circuit, inputs, scale, weights["theta"])
    ref = run_statevector(circuit, inputs, scale, weights["theta"])
    _assert_same_values_and_gradients(out, ref, tensors)
    assert compiled._product_prefix(n_qubits, batch, False) is prefix


@needs_numba
def test_compiled_states_are_reused_only_once_free():
    """The compiled path takes its states from a pool and gives them back when the pass is
    done: a graph kept for a second backward pass keeps its states, while other passes run
    in between, and gives the same gradients again."""
    circuit, weights, inputs = _case("entangled", 5, {}, batch=4, seed=3)
    scale, theta = weights["input_scale"], weights["theta"]
    out = run_compiled(circuit, inputs, scale, theta)
    loss = (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).sum()
    first = torch.autograd.grad(loss, [inputs, theta], retain_graph=True)
    for seed in range(3):  # other passes take and give back states of the same shape
        _, other, x = _case("entangled", 5, {}, batch=4, seed=10 + seed)
        run_compiled(circuit, x, other["input_scale"], other["theta"]).sum().backward()
        with torch.no_grad():
            run_compiled(circuit, x, other["input_scale"], other["theta"])
    second = torch.autograd.grad(loss, [inputs, theta])
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert 0 < compiled.POOL.free_bytes <= compiled.POOL.limit


def test_state_pool_keeps_at_most_its_limit():
    pool = compiled.StatePool(limit=3 * 2 * 8 * 2 * 8)  # three (2, 8, 2) float64 arrays
    arrays = [pool.take(8, 2, np.float64) for _ in range(5)]
    assert len({id(a) for a in arrays}) == 5
    pool.give(*arrays)
    assert pool.free_bytes == pool.limit
    again = [pool.take(8, 2, np.float64) for _ in range(4)]
    assert sum(any(a is b for b in arrays) for a in again) == 3  # three reused, one new
    assert pool.take(8, 3, np.float64).shape == (2, 8, 3)  # another shape: a new array


@needs_numba
def test_compiled_path_takes_the_frame_paths_circuits():
    circuit = make_circuit("entangled", 5, entangler="cz", pattern="brick")
    assert route(circuit, False) == "compiled"
    assert route(circuit, False, ("compiled",)) == "frame"
    assert route(circuit, True) == "compiled"  # one set of weights per sample
    assert route(circuit, True, ("compiled",)) == "statevector"
    kernels.compile_all()
    assert kernels.compile_all() < 5  # compiled (or loaded from Numba's cache) once


def test_frame_schedule_keeps_cnot_rings_in_the_hadamard_frame():
    """RX encoding with CNOT rings: per layer one phase, one shared unitary, one gather
    (the ring in the Hadamard frame is a permutation); with CZ the frame is left first."""
    cnot = make_schedule(make_circuit("entangled", 4, n_layers=3))
    assert [type(s) for s in cnot.steps] == [Phase, Shared, Monomial] * 3
    assert all(s.phase is None for s in cnot.steps if isinstance(s, Monomial))
    cz = make_schedule(make_circuit("entangled", 4, n_layers=2, entangler="cz"))
    assert [type(s) for s in cz.steps] == [Phase, Shared, Monomial, Shared, Phase, Shared, Monomial]


@pytest.mark.parametrize("gate", [g for g in GATES if is_monomial(g)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_frame_entanglers_are_the_conjugated_patterns(gate, axis):
    """Every gather the schedule uses equals (B^H)^n E B^n as a dense matrix, for every
    entangler of the gate table the fast paths take."""
    from qrl.simulator.frame import _monomial

    n, pairs = 3, ((0, 1), (1, 2), (2, 0))
    basis = BASES[axis]
    dense = _dense(gate, pairs, n)
    frame = np.kron(np.kron(basis, basis), basis)
    conjugated = frame.conj().T @ dense @ frame
    found = _monomial(gate, pairs, n, basis)
    if found is None:  # allowed only where the pattern is not monomial in that frame
        assert (np.abs(conjugated) > 1e-9).sum(1).max() > 1
        return
    perm, phase = found
    rebuilt = np.zeros((2**n, 2**n), dtype=complex)
    rebuilt[np.arange(2**n), perm] = 1 if phase is None else phase
    np.testing.assert_allclose(rebuilt, conjugated, atol=1e-12)


def test_wire_groups():
    assert groups(1) == (1,) and groups(4) == (4,) and groups(8) == (4, 4)
    assert groups(9) == (3, 3, 3) and groups(12) == (4, 4, 4) and groups(13) == (4, 3, 3, 3)


def test_a_circuit_that_cannot_fit_is_refused_before_any_work():
    """40 entangled qubits: one sample's state vector alone is 8 TiB."""
    from gymnasium import spaces

    from qrl.errors import QrlError
    from qrl.extractors import build_circuit

    space = spaces.Box(-1, 1, (40,))
    with pytest.raises(QrlError, match=r"40 qubits needs 8.0 TiB .*policy.encoder"):
        build_circuit(space, circuit="entangled")
    build_circuit(space, circuit="unentangled")  # a product state: 40 Bloch vectors


def test_a_batch_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    from qrl.errors import QrlError
    from qrl.simulator import memory

    monkeypatch.setattr(memory, "available_memory", lambda device=None: 2**30)
    circuit = make_circuit("entangled", 20, n_layers=1)
    inputs = torch.zeros(256, 20, 1)
    weights = circuit.init_weights()
    with pytest.raises(QrlError, match=r"20 entangled qubits on a batch of 256 needs about .* GiB"):
        TorchSimulator()(circuit, inputs, weights)
