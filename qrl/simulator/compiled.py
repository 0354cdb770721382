"""Entangling circuits run by compiled kernels: one Numba call per step of the frame schedule.

Entangling circuits of fast-path gates, with weights shared by the batch (every policy
circuit: the frame path's circuits) or one set per sample (the fast weight programmer), on
the schedule of :mod:`~qrl.simulator.frame` (encodings as phases in a moving frame, the
shared gates as one unitary per wire, entanglers as permutations with phases), run by the
kernels of :mod:`~qrl.simulator.kernels` on the state's real and imaginary parts instead of a
few hundred small NumPy calls. Each wire's unitary is applied on its own (two complex
products per amplitude and wire, vectorised over the batch) rather than as Kronecker products
of groups. The steps before the first entangler run on one vector per wire (the frame path's
product prefix) from 11 qubits or 2^17 amplitudes, where that saves more than its NumPy calls
cost; the state starts as the Kronecker product of the wires' vectors, and every later step
is one kernel call. The backward pass mirrors the forward pass step by step:

- a phase step: the angles' gradient and lambda times the conjugate phase in one call;
- a shared step: the partial traces tau_q of sum_b psi lambda^H in one call, the gradient of
  each gate from them, lambda through U^H (with per-sample weights: the unitaries, traces and
  gradients per sample);
- an entangler: the inverse permutation;
- the product prefix: lambda contracted with each half of the product state, then the
  frame path's per-wire backward steps.

States come from :data:`POOL` and go back to it when their pass, or the autograd node that
saved them, is done.

Numba is an optional dependency (``pip install "qrl-quantum-rl[fast]"``): without it, or for
tensors off the CPU, :func:`run_compiled` is the frame path (the state-vector path for
per-sample weights).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import torch

from qrl.circuits import Circuit
from qrl.simulator import frame, kernels, statevector
from qrl.simulator.backend import NumpyOps, needs_graph, ops_for, unwrap_all, wrap_all
from qrl.simulator.frame import Monomial, Phase, Schedule, Shared, make_schedule
from qrl.simulator.plan import Plan, assemble, assemble_backward, fast_path_takes, make_plan

OPS = NumpyOps


class StatePool:
    """Free state arrays, (2, 2^n, batch) real and imaginary parts, kept for reuse.

    A forward and backward pass at 12 qubits allocates a few dozen megabyte-sized arrays.
    Freed, they go back to the operating system, and new ones come back zeroed page by page:
    at 12 qubits that cost more than the kernels that filled them (a gather took 3x as long
    as on reused memory). The compiled path takes its states from here and gives them back
    when its pass, or the autograd node that saved them, is done.

    :param limit: the most bytes kept free; arrays beyond it are left to the allocator
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free: dict[tuple[int, int, np.dtype], list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, dim: int, batch: int, dtype: Any) -> np.ndarray:
        """A (2, dim, batch) array of the dtype, its contents undefined."""
        key = (dim, batch, np.dtype(dtype))
        with self._lock:
            free = self._free.get(key)
            if free:
                array = free.pop()
                self._bytes -= array.nbytes
                return array
        return np.empty((2, dim, batch), dtype=key[2])

    def give(self, *arrays: np.ndarray) -> None:
        """Return arrays that nothing else refers to any more."""
        with self._lock:
            for array in arrays:
                if self._bytes + array.nbytes > self.limit:
                    return
                key = (array.shape[1], array.shape[2], array.dtype)
                self._free.setdefault(key, []).append(array)
                self._bytes += array.nbytes

    @property
    def free_bytes(self) -> int:
        """Bytes held free for reuse."""
        return self._bytes


POOL = StatePool(limit=256 << 20)


class Saved:
    """What a recorded forward pass keeps for the backward pass; its states go back to
    :data:`POOL` when it is freed (with the autograd node that holds it)."""

    __slots__ = ("__weakref__", "angles", "im", "matrices", "prefix", "re", "tape")

    def __init__(
        self,
        angles: np.ndarray,
        matrices: Any,
        prefix: tuple[Any, ...],
        tape: list[Any],
        state: np.ndarray,
        kept: list[np.ndarray],
    ) -> None:
        self.angles, self.matrices, self.tape = angles, matrices, tape
        # the product prefix: its step count, the wires' vectors, their tape, and the two
        # halves' product states as real and imaginary parts (2^k, batch)
        self.prefix = prefix
        self.re, self.im = state[0], state[1]
        weakref.finalize(self, POOL.give, state, *kept)


# Tables per schedule or step and dtype, by identity (schedules are cached per circuit, and
# their arrays make them unhashable); each entry keeps its key object alive and checks it.
_TABLES: dict[tuple[int, Any, bool], tuple[Any, tuple[np.ndarray, ...]]] = {}


def _cached(owner: Any, dtype: Any, flag: bool, make: Any) -> tuple[np.ndarray, ...]:
    key = (id(owner), np.dtype(dtype), flag)
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is owner:
        return hit[1]
    if len(_TABLES) > 1024:
        _TABLES.clear()
    value = make(owner, dtype, flag)
    _TABLES[key] = (owner, value)
    return value


def _gather_tables(step: Monomial, dtype: Any, inverse: bool) -> tuple[np.ndarray, ...]:
    """Source indices and phases of an entangler step, new[i] = ph[i] old[source[i]]; for the
    inverse, ph[i] = conj(phase[inverse[i]]) and source = inverse."""
    return _cached(step, dtype, inverse, _make_gather)


def _make_gather(step: Monomial, dtype: Any, inverse: bool) -> tuple[np.ndarray, ...]:
    dim = len(step.perm)
    phase = np.ones(dim, dtype=complex) if step.phase is None else step.phase[:, 0]
    if inverse:
        source = np.asarray(step.inverse, dtype=np.int64)
        ph = phase[source].conj()
    else:
        source = np.asarray(step.perm, dtype=np.int64)
        ph = phase
    return source, np.ascontiguousarray(ph.real, dtype), np.ascontiguousarray(ph.imag, dtype)


def _shared_tables(step: Shared, dtype: Any) -> tuple[np.ndarray, ...]:
    """A shared step's positions, axes, and frame changes (4,) in the complex dtype."""
    return _cached(step, dtype, False, _make_shared)


def _make_shared(step: Shared, dtype: Any, _: bool) -> tuple[np.ndarray, ...]:
    complex_ = np.result_type(dtype, np.complex64)
    return (
        np.asarray(step.positions, dtype=np.int64),
        np.asarray(step.axes, dtype=np.int64),
        np.ascontiguousarray(step.left.reshape(4), complex_),
        np.ascontiguousarray(step.right.reshape(4), complex_),
    )


def _gate_matrices(schedule: Schedule, angles: np.ndarray, per_sample: bool) -> Any:
    """exp(-i angle / 2 n.sigma) of every shared row, entries row-major: (rows, n, 4), or
    (rows, n, batch, 4) with one set of weights per sample."""
    if not per_sample:
        shared = frame.gate_matrices(OPS, schedule, angles)
        return (
            None if shared is None else np.ascontiguousarray(shared.reshape(*shared.shape[:2], 4))
        )
    if not schedule.shared_rows:
        return None
    half = angles[list(schedule.shared_rows)][..., None] * 0.5  # (rows, n, batch, 1)
    complex_ = np.result_type(angles.dtype, np.complex64)
    gate_cos = schedule.gate_cos.astype(complex_)[:, :, None, :]  # (rows, 1, 1, 4)
    gate_sin = schedule.gate_sin.astype(complex_)[:, :, None, :]
    return np.ascontiguousarray(gate_cos * np.cos(half) + gate_sin * np.sin(half))


def _split(u: np.ndarray, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of per-wire unitaries, (n, 4) or (n, 4, batch)."""
    return np.ascontiguousarray(u.real, dtype), np.ascontiguousarray(u.imag, dtype)


# Until the first entangler the state is a product: the frame path keeps it as one 2-vector
# per wire and builds the state from their Kronecker product (forward), and the backward pass
# contracts lambda with the other wires' vectors; that saves the first layer's passes over
# the state, for a few dozen small NumPy calls. It pays from 11 qubits (1.1-1.2x at 12, batch
# 1 to 64) or 2^17 amplitudes in all; below, it was slower (0.74-0.96x at 8 and 10 qubits,
# batch 1 to 64).
PREFIX_QUBITS = 11
PREFIX_AMPLITUDES = 1 << 17


def _product_prefix(n: int, batch: int, per_sample: bool) -> bool:
    """Whether a pass runs the steps before the first entangler as a product state (not with
    one set of weights per sample)."""
    return not per_sample and (n >= PREFIX_QUBITS or batch << n >= PREFIX_AMPLITUDES)


def _parts(half: np.ndarray | None, batch: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of a half's product state, (2^k, batch) (a state the batch
    shares is repeated; no second half (one wire) is the number 1)."""
    if half is None:
        half = np.ones((1, 1), dtype=complex)
    half = np.broadcast_to(half, (half.shape[0], batch))
    return np.ascontiguousarray(half.real, dtype), np.ascontiguousarray(half.imag, dtype)


def compiled_values(
    plan: Plan, schedule: Schedule, x: Any, s: Any, t: Any, record: bool
) -> tuple[np.ndarray, Saved | None]:
    """Expectation values (batch, outputs) and, if recorded, what the backward pass needs."""
    angles = assemble(OPS, plan, x, s, t)  # (rows, n, batch)
    dtype = angles.dtype
    batch = x.shape[0]
    dim = 1 << schedule.n
    per_sample = t.ndim == 4
    matrices = _gate_matrices(schedule, angles, per_sample)
    count = schedule.prefix if _product_prefix(schedule.n, batch, per_sample) else 0
    pairs = None if matrices is None or per_sample else matrices.reshape(*matrices.shape[:2], 2, 2)
    wires, prefix_tape = frame.product_prefix(OPS, schedule, angles, pairs, record, count)
    first, second = frame.half_products(wires, schedule.n)
    halves = (*_parts(first, batch, dtype), *_parts(second, batch, dtype))  # real, imaginary
    state = POOL.take(dim, batch, dtype)
    kernels.product_state(*halves, state)
    re, im = state
    tape: list[tuple[Any, ...]] = []
    kept: list[np.ndarray] = []  # the states the tape holds

    def keep() -> tuple[np.ndarray, np.ndarray]:
        if not record:
            return re, im
        copy = POOL.take(dim, batch, dtype)
        np.copyto(copy, state)
        kept.append(copy)
        return copy[0], copy[1]

    for step in schedule.steps[count:]:
        if isinstance(step, Phase):
            half = frame.step_angles(angles, step) * 0.5
            cos, sin = np.cos(half), np.sin(half)
            kernels.phase(re, im, cos, sin, 1.0)
            tape.append((cos, sin, *keep()))
        elif isinstance(step, Shared):
            positions, _, left, right = _shared_tables(step, dtype)
            if per_sample:
                u = _split(kernels.sample_unitaries(matrices, positions, left, right), dtype)
                kernels.sample_wires(re, im, *u, False)
            else:
                u = _split(kernels.shared_unitaries(matrices, positions, left, right), dtype)
                kernels.wires(re, im, *u, False)
            tape.append((u, *keep()))
        else:
            new = POOL.take(dim, batch, dtype)
            kernels.gather(re, im, *_gather_tables(step, dtype, False), new)
            POOL.give(state)
            state = new
            re, im = state
            tape.append(())
    tilde = kernels.readout(re, im, schedule.n)  # (3, n, batch)
    rotation = schedule.readout.astype(dtype)  # (observables, 3)
    values = (rotation @ tilde.reshape(3, -1)).reshape(-1, schedule.n, batch)
    out = np.ascontiguousarray(values.transpose(2, 1, 0).reshape(batch, -1))
    if not record:
        POOL.give(state)
        return out, None
    prefix = (count, wires, prefix_tape, halves)
    return out, Saved(angles, matrices, prefix, tape, state, kept)


def _wire_gradients(lam: np.ndarray, wires: Any, halves: tuple[np.ndarray, ...], n: int) -> Any:
    """The gradient of each wire's conjugate vector at the end of the product prefix,
    (n, 2, batch): lambda (2, 2^n, batch) contracted with the other wires' vectors."""
    batch = lam.shape[2]
    wires = wires + np.zeros((1, 1, batch), wires.dtype)
    if n == 1:
        return frame.contract_wires(OPS, lam[0] + 1j * lam[1], wires)
    left, right = kernels.half_contractions(lam[0], lam[1], *halves)
    a, _ = statevector.halves(n)
    return np.concatenate(
        [
            frame.contract_wires(OPS, left[0] + 1j * left[1], wires[:a]),
            frame.contract_wires(OPS, right[0] + 1j * right[1], wires[a:]),
        ]
    )


def compiled_backward(schedule: Schedule, saved: Saved, grad: np.ndarray) -> tuple[Any, Any]:
    """Gradients of the angles: of per-sample rows (rows, n, batch), and of shared rows
    summed over the batch (rows, n)."""
    angles, matrices = saved.angles, saved.matrices
    rows, n, batch = angles.shape
    dtype = angles.dtype
    rotation = schedule.readout.astype(dtype)
    g = grad.reshape(batch, n, -1) @ rotation  # (batch, n, 3)
    lam = POOL.take(saved.re.shape[0], batch, dtype)
    kernels.readout_backward(saved.re, saved.im, np.ascontiguousarray(g.transpose(2, 1, 0)), lam)
    lam_re, lam_im = lam
    d_angles = np.zeros((rows, n, batch), dtype=dtype)
    d_shared = np.zeros((rows, n), dtype=dtype)
    count, wires, prefix_tape, halves = saved.prefix
    for step, record in zip(schedule.steps[count:][::-1], saved.tape[::-1], strict=True):
        if isinstance(step, Phase):
            cos, sin, out_re, out_im = record
            d_phi = kernels.phase_backward(lam_re, lam_im, out_re, out_im, cos, sin)
            for r in step.rows:
                d_angles[r] = d_phi
        elif isinstance(step, Shared):
            u, out_re, out_im = record
            positions, axes, left, _ = _shared_tables(step, dtype)
            if matrices.ndim == 4:  # one set of weights per sample
                traces = kernels.sample_traces(out_re, out_im, lam_re, lam_im)
                values = kernels.sample_gradients(matrices, positions, axes, left, traces)
                d_angles[list(step.rows)] = values
                kernels.sample_wires(lam_re, lam_im, *u, True)
            else:
                traces = kernels.wire_traces(out_re, out_im, lam_re, lam_im)
                values = kernels.shared_gradients(matrices, positions, axes, left, traces)
                d_shared[list(step.rows)] = values
                kernels.wires(lam_re, lam_im, *u, True)
        else:
            new = POOL.take(lam.shape[1], batch, dtype)
            kernels.gather(lam_re, lam_im, *_gather_tables(step, dtype, True), new)
            POOL.give(lam)
            lam = new
            lam_re, lam_im = lam
    if count:
        g = _wire_gradients(lam, wires, halves, schedule.n)
        frame.prefix_backward(OPS, schedule, prefix_tape, g, d_angles, d_shared, angles)
    POOL.give(lam)
    return d_angles, d_shared


class CompiledCircuit(torch.autograd.Function):
    """Inputs and shared weights to expectation values, in one autograd node."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        scale: torch.Tensor | None,
        theta: torch.Tensor,
        circuit: Circuit,
    ) -> torch.Tensor:
        plan, schedule = make_plan(circuit), make_schedule(circuit)
        x, s, t = wrap_all(OPS, inputs, scale, theta)
        values, saved = compiled_values(plan, schedule, x, s, t, True)
        ctx.plan, ctx.schedule, ctx.arrays, ctx.saved = plan, schedule, (x, s, t), saved
        return OPS.unwrap(values, inputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, s, t = ctx.arrays
        d_angles, d_shared = compiled_backward(ctx.schedule, ctx.saved, OPS.wrap(grad))
        shared = None if t.ndim == 4 else d_shared
        grads = assemble_backward(OPS, ctx.plan, d_angles, x, s, t, shared=shared)
        return (*unwrap_all(OPS, grads, grad), None)


def run_compiled(
    circuit: Circuit,
    inputs: torch.Tensor,
    scale: torch.Tensor | None,
    theta: torch.Tensor,
    force_torch: bool = False,
) -> torch.Tensor:
    """Expectation values of an entangling circuit whose weights the batch shares,
    (batch, circuit.n_outputs), by compiled kernels; the frame path without Numba, for
    tensors off the CPU, or with ``force_torch``.

    :param circuit: a circuit the frame path takes
    :param inputs: encoded features, (batch, n_qubits, features_per_qubit)
    :param scale: ``input_scale``, or None for basis encoding
    :param theta: (layers, n_qubits, rotations), shared by the batch
    :param force_torch: run the frame path's kernels on PyTorch tensors
    """
    if not kernels.AVAILABLE or ops_for(inputs, force_torch) is not NumpyOps:
        run = statevector.run_statevector if theta.ndim == 4 else frame.run_frame
        return run(circuit, inputs, scale, theta, force_torch)
    if theta.ndim not in (3, 4):
        raise ValueError(
            f"theta must be (layers, qubits, rotations) or (batch, layers, qubits, rotations),"
            f" got {tuple(theta.shape)}"
        )
    if needs_graph(inputs, scale, theta):
        out: torch.Tensor = CompiledCircuit.apply(inputs, scale, theta, circuit)
        return out
    x, s, t = wrap_all(OPS, inputs, scale, theta)
    values, _ = compiled_values(make_plan(circuit), make_schedule(circuit), x, s, t, False)
    return OPS.unwrap(values, inputs)


def takes(circuit: Circuit, per_sample: bool) -> bool:
    """Entangling circuits of fast-path gates (see
    :func:`~qrl.simulator.plan.fast_path_takes`), with weights shared by the batch or one set
    per sample, when Numba is installed."""
    return kernels.AVAILABLE and circuit.entangling and fast_path_takes(circuit)
