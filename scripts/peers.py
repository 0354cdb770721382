"""Peer simulators for the benchmark: qrl's circuit, weights and inputs on another library.

Each contender runs the same circuit (built from qrl's moments: encodings, rotations,
entanglers, the readout of every qubit) on the same encoded inputs and weights, returns the
expectation values, and back-propagates a fixed weighting of them to the weights (``theta``
and ``input_scale``) through its own differentiation. Before it is timed, its values and
gradients are checked against qrl's.

- ``tensorcircuit``: tensorcircuit-ng on JAX, one jitted function of the whole batch
  (``jax.vmap`` over the samples, ``jax.value_and_grad``); its compile time is reported
  apart and not timed.
- ``qulacs``: Qulacs's ``ParametricQuantumCircuit`` per sample (it has no batch), its
  ``backprop`` for the gradient of the weighted observable.
- ``torchquantum``: TorchQuantum 0.1.8 (the release on PyPI) pins qiskit < 1.0 and imports
  it at start: it does not install beside the qiskit qrl's hardware executors use, and is
  reported as not installed where it cannot be imported.

PennyLane's ``lightning.kokkos`` is a PennyLane device: it runs through qrl's own PennyLane
executor as an executor of the layer section.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from qrl.circuits import Circuit
from qrl.circuits.model import InputAngle, WeightAngle

PEERS = ("tensorcircuit", "qulacs", "torchquantum")

Runner = Callable[[], tuple[np.ndarray, dict[str, np.ndarray]]]


def missing(peer: str) -> str | None:
    """Why a peer cannot run here (not installed, or not importable), or None."""
    module = {"tensorcircuit": "tensorcircuit", "qulacs": "qulacs", "torchquantum": "torchquantum"}
    try:
        __import__(module[peer])
        if peer == "tensorcircuit":
            __import__("jax")
    except Exception as error:  # an import failure of any kind means: not available here
        why = f"{peer} not importable here ({type(error).__name__}: {error})".splitlines()[0]
        if peer == "torchquantum":
            why += (
                "; TorchQuantum 0.1.8, the release on PyPI, requires qiskit < 1.0 and imports"
                " it at start, and does not run beside qiskit 1 or 2"
            )
        return why
    return None


def _angle(moment: Any, q: int, x: Any, theta: Any, scale: Any, xp: Any) -> Any:
    """The angle of a single-qubit moment on qubit q for one sample."""
    a = moment.angle
    if isinstance(a, InputAngle):
        if a.scale_layer is None:
            return xp.pi * x[q, a.feature]
        return scale[a.scale_layer, q, a.scale_index] * x[q, a.feature]
    if isinstance(a, WeightAngle):
        return theta[a.layer, q, a.index]
    return None


def tensorcircuit_runner(
    circuit: Circuit, inputs: np.ndarray, weights: dict[str, np.ndarray], mix: np.ndarray
) -> tuple[Runner, float]:
    """A jitted batch function on tensorcircuit-ng + JAX, and its compile time in seconds."""
    import jax
    import jax.numpy as jnp
    import tensorcircuit as tc

    tc.set_backend("jax")
    tc.set_dtype("complex64" if inputs.dtype == np.float32 else "complex128")
    n = circuit.n_qubits
    gates = {"RX": "rx", "RY": "ry", "RZ": "rz", "CNOT": "cnot", "CZ": "cz", "H": "h"}

    def one(x: Any, theta: Any, scale: Any) -> Any:
        c = tc.Circuit(n)
        for m in circuit.moments:
            name = gates[m.gate]
            if m.pairs:
                for a, b in m.pairs:
                    getattr(c, name)(a, b)
                continue
            for q in range(n):
                angle = _angle(m, q, x, theta, scale, jnp)
                if angle is None:
                    getattr(c, name)(q)
                else:
                    getattr(c, name)(q, theta=angle)
        paulis = {"X": "x", "Y": "y", "Z": "z"}
        values = [
            c.expectation_ps(**{paulis[o]: [q]}).real for q in range(n) for o in circuit.observables
        ]
        return jnp.stack(values)

    batch = jax.vmap(one, in_axes=(0, None, None))
    weighting = jnp.asarray(mix)

    def loss(theta: Any, scale: Any, x: Any) -> tuple[Any, Any]:
        values = batch(x, theta, scale)
        return (values * weighting).sum(), values

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    args = (jnp.asarray(weights["theta"]), jnp.asarray(weights["input_scale"]), jnp.asarray(inputs))
    start = time.perf_counter()
    jax.block_until_ready(step(*args))
    compile_s = time.perf_counter() - start

    def run() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        (_, values), (d_theta, d_scale) = step(*args)
        jax.block_until_ready(d_theta)
        return np.asarray(values), {
            "theta": np.asarray(d_theta),
            "input_scale": np.asarray(d_scale),
        }

    return run, compile_s


def qulacs_runner(
    circuit: Circuit, inputs: np.ndarray, weights: dict[str, np.ndarray], mix: np.ndarray
) -> tuple[Runner, float]:
    """Qulacs, one parametric circuit run per sample, backprop for the gradient."""
    from qulacs import Observable, ParametricQuantumCircuit, QuantumState

    n = circuit.n_qubits
    pc = ParametricQuantumCircuit(n)
    slots: list[tuple[Any, int]] = []  # (moment, qubit) of every parametric gate, in order
    for m in circuit.moments:
        if m.pairs:
            for a, b in m.pairs:
                {"CNOT": pc.add_CNOT_gate, "CZ": pc.add_CZ_gate}[m.gate](a, b)
            continue
        for q in range(n):
            if m.angle is None:
                pc.add_H_gate(q)
                continue
            getattr(pc, f"add_parametric_{m.gate}_gate")(q, 0.0)
            slots.append((m, q))
    qubit_of = {"X": "X", "Y": "Y", "Z": "Z"}
    observables = []
    for k, (q, o) in enumerate((q, o) for q in range(n) for o in circuit.observables):
        single = Observable(n)
        single.add_operator(1.0, f"{qubit_of[o]} {q}")
        observables.append((k, single))
    theta, scale = weights["theta"].astype(np.float64), weights["input_scale"].astype(np.float64)
    x64 = inputs.astype(np.float64)
    # Qulacs rotates by exp(+i angle / 2 P): its parameter is minus qrl's angle.
    angle_of = [(lambda x, m=m, q=q: -float(_angle(m, q, x, theta, scale, np))) for m, q in slots]

    def run() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        values = np.empty((len(x64), len(observables)))
        d_theta, d_scale = np.zeros_like(theta), np.zeros_like(scale)
        state = QuantumState(n)
        for b, x in enumerate(x64):
            for i, angle in enumerate(angle_of):
                pc.set_parameter(i, angle(x))
            state.set_zero_state()
            pc.update_quantum_state(state)
            weighted = Observable(n)
            for k, single in observables:
                values[b, k] = single.get_expectation_value(state).real
                q, o = divmod(k, len(circuit.observables))
                weighted.add_operator(float(mix[b, k]), f"{circuit.observables[o]} {q}")
            grads = pc.backprop(weighted)
            for (m, q), g in zip(slots, grads, strict=True):
                a = m.angle
                if isinstance(a, WeightAngle):
                    d_theta[a.layer, q, a.index] -= g
                elif isinstance(a, InputAngle) and a.scale_layer is not None:
                    d_scale[a.scale_layer, q, a.scale_index] -= g * x[q, a.feature]
        return values, {"theta": d_theta, "input_scale": d_scale}

    return run, 0.0


RUNNERS = {"tensorcircuit": tensorcircuit_runner, "qulacs": qulacs_runner}


def qrl_runner(
    circuit: Circuit, inputs: np.ndarray, weights: dict[str, np.ndarray], mix: np.ndarray
) -> Runner:
    """qrl's default executor on the same circuit, inputs and weights."""
    from qrl.simulator import TorchSimulator

    simulator = TorchSimulator()
    x = torch.from_numpy(inputs)
    tensors = {k: torch.from_numpy(v).requires_grad_() for k, v in weights.items()}
    weighting = torch.from_numpy(mix)

    def run() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        for t in tensors.values():
            t.grad = None
        values = simulator(circuit, x, tensors)
        (values * weighting).sum().backward()
        grads = {k: t.grad.numpy() for k, t in tensors.items() if t.grad is not None}
        return values.detach().numpy(), grads

    return run


def check(
    peer: str, got: tuple[np.ndarray, dict[str, np.ndarray]], want: tuple[Any, Any], tol: float
) -> None:
    """Refuse to time a peer whose values or gradients differ from qrl's."""
    values, grads = got
    if not np.allclose(values, want[0], atol=tol, rtol=0):
        raise AssertionError(
            f"{peer}: values differ from qrl's by {np.abs(values - want[0]).max()}"
        )
    for name, g in want[1].items():
        if not np.allclose(grads[name], g, atol=tol * 10, rtol=1e-3):
            gap = np.abs(grads[name] - g).max()
            raise AssertionError(f"{peer}: gradient of {name} differs from qrl's by {gap}")
