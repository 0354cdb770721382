"""The fast simulator's paths against PennyLane's default.qubit: NumPy kernels (CPU) and the
PyTorch kernels that CUDA tensors take, product and state-vector paths, every gradient."""

from __future__ import annotations

import pytest
import torch

from qrl.circuits import make_circuit
from qrl.executors import make_executor
from qrl.simulator import TorchSimulator, run_product, run_statevector
from qrl.simulator.statevector import entangler_table

CASES = [
    ("unentangled", 5, {}),
    ("unentangled", 3, {"encoding": "euler", "rotations": "xy", "observables": ["Y", "X"]}),
    ("unentangled", 4, {"encoding": "basis"}),
    ("entangled", 2, {}),
    ("entangled", 5, {"entangler": "cz", "encoding": "euler"}),
    ("entangled", 6, {"reupload": False, "n_layers": 3, "rotations": "y"}),
    ("entangled", 7, {"observables": ["Z"], "encoding": "ry"}),
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


def _outputs_and_grads(executor, circuit, weights, inputs):
    out = executor(circuit, inputs, weights)
    mix = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    tensors = [inputs, *weights.values()]
    grads = torch.autograd.grad((out * mix).sum(), tensors)
    return out, grads


@pytest.mark.parametrize("force_torch", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize(("name", "n_qubits", "options"), CASES)
def test_matches_default_qubit_with_input_gradients(name, n_qubits, options, force_torch):
    circuit, weights, inputs = _case(name, n_qubits, options)
    out, grads = _outputs_and_grads(TorchSimulator(force_torch), circuit, weights, inputs)
    ref, ref_grads = _outputs_and_grads(make_executor("default.qubit"), circuit, weights, inputs)
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-9, rtol=0)


@pytest.mark.parametrize("force_torch", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("name", ["unentangled", "entangled"])
def test_float32_gradients(name, force_torch):
    circuit, weights, inputs = _case(name, 6, {}, batch=32, seed=3)
    ref, ref_grads = _outputs_and_grads(make_executor("default.qubit"), circuit, weights, inputs)
    w32 = {k: v.detach().float().requires_grad_() for k, v in weights.items()}
    x32 = inputs.detach().float().requires_grad_()
    out, grads = _outputs_and_grads(TorchSimulator(force_torch), circuit, w32, x32)
    assert out.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in grads)
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), r, atol=5e-5, rtol=0)


@pytest.mark.parametrize("force_torch", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("name", ["unentangled", "entangled"])
def test_per_sample_theta_gradients(name, force_torch):
    """theta with a batch dimension (the fast weight programmer's angles): gradients per sample."""
    circuit, weights, inputs = _case(name, 4, {"entangler": "cz"} if name == "entangled" else {})
    theta = torch.randn(6, *circuit.weight_shapes["theta"], dtype=torch.float64)
    batched = {"theta": theta.requires_grad_(), "input_scale": weights["input_scale"]}
    out, grads = _outputs_and_grads(TorchSimulator(force_torch), circuit, batched, inputs)
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
    ("name", "node"), [("unentangled", "ProductCircuit"), ("entangled", "StateVectorCircuit")]
)
def test_inference_records_nothing(name, node):
    """Under no_grad no autograd node is created; with grad, one node per circuit call."""
    circuit, weights, inputs = _case(name, 4, {})
    with torch.no_grad():
        out = TorchSimulator()(circuit, inputs, weights)
    assert out.grad_fn is None
    out = TorchSimulator()(circuit, inputs, weights)
    assert type(out.grad_fn).__name__ == f"{node}Backward"


def test_cnot_ring_table_is_a_permutation_and_matches_gates():
    table = entangler_table("CNOT", ((0, 1), (1, 2), (2, 0)), 3)
    assert sorted(table.tolist()) == list(range(8))
    # |100> -> CNOT(0,1) |110> -> CNOT(1,2) |111> -> CNOT(2,0) |011>: new[3] = old[4]
    assert table[0b011] == 0b100


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


@pytest.mark.parametrize("force_torch", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize(("name", "n_qubits", "options"), CASES)
def test_inference_path_matches_training_path(name, n_qubits, options, force_torch):
    circuit, weights, inputs = _case(name, n_qubits, options)
    simulator = TorchSimulator(force_torch)
    with torch.no_grad():
        fast = simulator(circuit, inputs, weights)
    torch.testing.assert_close(fast, simulator(circuit, inputs, weights).detach(), atol=0, rtol=0)
