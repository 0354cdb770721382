"""Entangling circuits whose weights the batch shares: per-sample phases in a moving frame.

In a policy circuit only the encoding rotations differ between samples; the trainable
rotations, Hadamards and entanglers are the same for the whole batch. A rotation about a
fixed axis k is diagonal in a fixed basis, R_k(phi) = B_k RZ(phi) B_k^H, so the simulator
keeps the batched state in a *frame* B: it stores psi~ with psi = (B x ... x B) psi~ and
changes frame only when it must. Then

- every encoding moment is a diagonal phase, exp(-i/2 sum_q phi_q z_q) (z_q(j) = +-1 the
  sign of bit q of j): one elementwise product with the outer product of two halves' phases;
- the shared gates between two encoding moments, with the change of frame, are one unitary
  per wire, the same for every sample. The wires are cut into groups of at most four and
  each group's Kronecker product (at most 16 x 16) is applied to the whole batch at once, the
  batch folded into the columns of a matrix product;
- a CNOT or CZ pattern conjugated by the frame is often still a permutation with phases
  (a CNOT ring in the Hadamard frame is the reversed ring): one gather. Where it is not (a
  CZ ring in the Hadamard frame), the frame is left first;
- the readout measures B^H sigma B on psi~: <Z~_q> is |psi~|^2 times the signs z_q,
  <X~_q> + i <Y~_q> a sum of products of the amplitude pairs that differ in bit q, and the
  frame's 3x3 Bloch rotation turns them into the measured Paulis.

Until the first entangler the state is a product: it is kept as one 2-vector per wire and
sample, and the entangler's input is their Kronecker product (no matrix products for the
first layer). After it the state is held as (2^n, batch), the batch innermost.

The backward pass is written out, one autograd node per call. With lambda the gradient of
the loss with respect to the conjugate amplitudes after a step and psi the amplitudes after
it:

- an encoding angle phi_q gets Im sum_j z_q(j) conj(lambda_j) psi_j;
- a shared unitary U_q = A G(theta) C of wire q, for a rotation G about sigma, gets
  Im Tr(sigma A^H tau_q A), where tau_q, the partial trace onto q of sum_batch psi lambda^H,
  comes from one batch-folded product per group;
- lambda goes back through every step by its adjoint; at the product state it becomes one
  gradient per wire (lambda contracted with the other wires' vectors), and the first
  layer's steps are undone wire by wire.

Circuits with one set of weights per sample (the fast weight programmer) take the compiled
path (:mod:`~qrl.simulator.compiled`, which runs this schedule with Numba kernels), or without
Numba the general path of :mod:`~qrl.simulator.statevector`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qrl.circuits import Circuit, gate
from qrl.simulator.backend import Ops, device_of, needs_graph, ops_for, unwrap_all, wrap_all
from qrl.simulator.plan import (
    Plan,
    assemble,
    assemble_backward,
    by_identity,
    fast_path_takes,
    make_plan,
    monomial,
)
from qrl.simulator.statevector import embed, halves, kron, pauli_operators

GROUP = 4  # wires per group: Kronecker products of at most 16 x 16
_I = np.eye(2, dtype=complex)
_H = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)
_S = np.diag([1, 1j])
# Per rotation axis (x, y, z), a basis B with B Z B^H = sigma_axis.
BASES = {0: _H, 1: _S @ _H, 2: _I}
_AXES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / math.sqrt(2), 0, 1 / math.sqrt(2)]])


@dataclass(frozen=True)
class Shared:
    """U_q = left G_rows[-1] ... G_rows[0] right on every wire, the same for every sample."""

    rows: tuple[int, ...]
    axes: tuple[int, ...]
    left: np.ndarray
    right: np.ndarray
    positions: tuple[int, ...]  # of the rows in Schedule.shared_rows


@dataclass(frozen=True)
class Phase:
    """exp(-i/2 sum_q phi_q Z_q) per sample, phi the sum of the rows' angles."""

    rows: tuple[int, ...]


@dataclass(frozen=True)
class Monomial:
    """new[i] = phase[i] * old[perm[i]]; phase (2^n, 1), or None for all ones."""

    perm: tuple[int, ...]
    phase: np.ndarray | None
    inverse: tuple[int, ...]
    phase_conj: np.ndarray | None


Step = Shared | Phase | Monomial


@dataclass(frozen=True)
class Schedule:
    """A circuit as steps on its state in moving frames.

    :param wire_start: (2, 1), every wire's initial state in the first frame
    :param steps: the steps, in order
    :param prefix: the number of leading steps before the first entangler: until then the
        state stays a product, kept as one vector per wire and sample
    :param n: the number of wires
    :param readout: (observables, 3), the rows of the final frame's Bloch rotation:
        <sigma_o> = sum_c readout[o, c] <sigma~_c>
    :param shared_rows: the rows of all shared steps, in order
    :param gate_cos: (shared rows, 1, 4): a gate's entries are these times cos(angle / 2)...
    :param gate_sin: ... plus these times sin(angle / 2)
    """

    wire_start: np.ndarray
    steps: tuple[Step, ...]
    prefix: int
    n: int
    readout: np.ndarray
    shared_rows: tuple[int, ...]
    gate_cos: np.ndarray
    gate_sin: np.ndarray


def groups(n: int) -> tuple[int, ...]:
    """Wires per group: as even as possible, at most :data:`GROUP` each."""
    count = max(1, -(-n // GROUP))
    return tuple(n // count + (i < n % count) for i in range(count))


@by_identity
def make_schedule(circuit: Circuit) -> Schedule:
    """The steps of a circuit in moving frames (cached per circuit)."""
    return _make_schedule(circuit)


@functools.lru_cache(maxsize=64)
def _make_schedule(circuit: Circuit) -> Schedule:
    plan = make_plan(circuit)
    n = circuit.n_qubits
    per_sample = set(plan.input_rows)
    steps: list[Step] = []
    frame: np.ndarray = _I
    pending: list[tuple[int, int]] = []  # shared (row, axis) not yet applied
    start: np.ndarray | None = None  # one wire's initial state, once a step has been taken
    zero = np.array([1, 0], dtype=complex)

    def leave(target: np.ndarray) -> None:
        """Apply the pending gates and move from the frame to ``target``."""
        nonlocal start
        left = target.conj().T
        if not pending and _up_to_phase(left @ frame, _I):
            return
        if start is None and not pending:  # still |0...0>: a constant product state
            start = left @ frame @ zero
        else:
            start = zero if start is None else start
            first = sum(len(st.rows) for st in steps if isinstance(st, Shared))
            rows, axes = tuple(r for r, _ in pending), tuple(a for _, a in pending)
            positions = tuple(range(first, first + len(rows)))
            steps.append(Shared(rows, axes, left, frame, positions))
        pending.clear()

    row = 0
    for moment in circuit.moments:
        if moment.spec.wires == 2:
            found = _monomial(moment.gate, moment.pairs, n, frame)
            if found is None:  # not a permutation in this frame: leave it
                leave(_I)
                frame = _I
                found = _monomial(moment.gate, moment.pairs, n, frame)
                assert found is not None
            else:
                leave(frame)
            start = zero if start is None else start
            steps.append(_as_step(*found))
            continue
        axis = plan.axes[row]
        if row in per_sample and axis < 3:
            leave(BASES[axis])
            frame = BASES[axis]
            start = zero if start is None else start
            if steps and isinstance(steps[-1], Phase):
                steps[-1] = Phase((*steps[-1].rows, row))
            else:
                steps.append(Phase((row,)))
        else:
            pending.append((row, axis))
        row += 1
    leave(frame)
    start = zero if start is None else start
    prefix = next((i for i, st in enumerate(steps) if isinstance(st, Monomial)), len(steps))
    rows, gate_cos, gate_sin = _gate_tables(steps)
    rotation = _rotation(frame, plan.observables)
    return Schedule(
        start[:, None].copy(), tuple(steps), prefix, n, rotation, rows, gate_cos, gate_sin
    )


def _up_to_phase(m: np.ndarray, target: np.ndarray) -> bool:
    """Whether two 2x2 unitaries agree up to a global phase."""
    return bool(abs(abs(np.trace(target.conj().T @ m)) - 2) < 1e-9)


def _monomial(
    gate_name: str, pairs: tuple[tuple[int, int], ...], n: int, basis: np.ndarray
) -> tuple[tuple[int, ...], np.ndarray | None] | None:
    """An entangling pattern in the frame, (B^H)^n E B^n, as new[i] = phase[i] old[perm[i]];
    None when it is not a permutation with phases there."""
    frame = np.kron(basis, basis)
    local = frame.conj().T @ gate(gate_name).unitary().numpy() @ frame
    found = monomial(local, pairs, n)
    if found is None:
        return None
    perm, phase = found
    return tuple(int(i) for i in perm), phase


def _as_step(perm: tuple[int, ...], phase: np.ndarray | None) -> Monomial:
    inverse = tuple(int(i) for i in np.argsort(perm))
    if phase is None:
        return Monomial(perm, None, inverse, None)
    column = phase[:, None].copy()
    return Monomial(perm, column, inverse, column.conj())


def _rotation(frame: np.ndarray, observables: tuple[int, ...]) -> np.ndarray:
    """R[o, c] = Tr(B^H sigma_o B sigma_c) / 2: <sigma_o> = sum_c R[o, c] <sigma~_c>."""
    pulled = frame.conj().T @ _PAULIS[list(observables)] @ frame
    return np.einsum("oij,cji->oc", pulled, _PAULIS).real / 2


_PAULIS = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)


def _gate_tables(steps: list[Step]) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The shared rows and the coefficients of their gates' entries (see Schedule)."""
    shared = [st for st in steps if isinstance(st, Shared)]
    rows = tuple(r for st in shared for r in st.rows)
    unit = _AXES[[a for st in shared for a in st.axes]].reshape(-1, 3)
    nx, ny, nz = (unit[:, i : i + 1] for i in range(3))
    gate_cos = np.tile(np.array([1, 0, 0, 1], dtype=complex), (len(rows), 1))
    gate_sin = np.concatenate([-1j * nz, -1j * nx - ny, -1j * nx + ny, 1j * nz], 1)
    return rows, gate_cos[:, None].copy(), gate_sin[:, None].copy()


@functools.lru_cache(maxsize=64)
def _signs(n: int, transposed: bool = False) -> np.ndarray:
    """z_q(j) = +1 where bit q of j is 0, else -1: (n, 2^n), or (2^n, n) transposed."""
    j = np.arange(2**n)
    z = np.array([1 - 2 * ((j >> (n - 1 - q)) & 1) for q in range(n)], dtype=np.float64)
    return np.ascontiguousarray(z.T) if transposed else z


@functools.lru_cache(maxsize=32)
def _trace_map(k: int) -> np.ndarray:
    """Partial traces of a k-wire operator M (D x D) onto each wire as one matrix T:
    M.reshape(1, D * D) @ T holds the k traces (2 x 2 each), flattened."""
    d = 2**k
    x = np.arange(d)
    out = np.zeros((d * d, 4 * k))
    for q in range(k):
        bit = 1 << (k - 1 - q)
        for c in range(2):
            for e in range(2):
                rows = x[((x & bit) != 0) == bool(c)]
                cols = (rows & ~bit) | (bit * e)
                out[rows * d + cols, 4 * q + 2 * c + e] = 1
    return out


_CONSTANTS: dict[tuple[Any, ...], tuple[np.ndarray, Any]] = {}
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _const(ops: Ops, value: np.ndarray, like: Any, complex_: bool = False) -> Any:
    """A constant (of a cached schedule or table) in the real or complex dtype matching the
    real array ``like``, on its device; converted once."""
    key = (id(value), like.dtype, complex_, device_of(like))
    hit = _CONSTANTS.get(key)
    if hit is not None and hit[0] is value:
        return hit[1]
    if len(_CONSTANTS) > 1024:
        _CONSTANTS.clear()
    data = np.ascontiguousarray(value if complex_ else value.real)
    array: Any
    if ops.xp is np:
        array = data.astype(np.result_type(like.dtype, np.complex64) if complex_ else like.dtype)
    else:
        dtype = _COMPLEX[like.dtype] if complex_ else like.dtype
        array = torch.as_tensor(data, dtype=dtype, device=like.device)
    _CONSTANTS[key] = (value, array)
    return array


def _unit_phase(ops: Ops, t: Any) -> Any:
    """exp(-i t / 2) of a real array."""
    if ops.xp is np:
        out = np.empty(t.shape, dtype=np.result_type(t.dtype, np.complex64))
        half = t * 0.5
        out.real = np.cos(half)
        out.imag = -np.sin(half)
        return out
    return torch.polar(torch.ones_like(t), -0.5 * t)


def _dagger(m: Any) -> Any:
    return m.conj().swapaxes(-1, -2)


def _gram(ops: Ops, a: Any, b: Any) -> Any:
    """a @ b^H for (..., D, Q) arrays."""
    if ops.xp is np:  # PyTorch's complex GEMM takes the conjugate transpose without a copy
        ta = torch.from_numpy(np.ascontiguousarray(a))
        tb = torch.from_numpy(np.ascontiguousarray(b))
        return (ta @ tb.transpose(-1, -2).conj()).resolve_conj().numpy()
    return a @ b.transpose(-1, -2).conj()


# --- steps ------------------------------------------------------------------------------


def gate_matrices(ops: Ops, schedule: Schedule, angles: Any) -> Any:
    """exp(-i angle / 2 n.sigma) of every shared row: (shared rows, n, 2, 2)."""
    if not schedule.shared_rows:
        return None
    rows = ops.index(schedule.shared_rows, device_of(angles))
    half = angles[rows, :, :1] * 0.5  # (rows, n, 1): the batch shares them
    cos_part = _const(ops, schedule.gate_cos, angles, True)
    sin_part = _const(ops, schedule.gate_sin, angles, True)
    entries = cos_part * ops.xp.cos(half) + sin_part * ops.xp.sin(half)
    return entries.reshape(*entries.shape[:2], 2, 2)


def unitaries(ops: Ops, step: Shared, matrices: Any, angles: Any) -> tuple[Any, list[Any]]:
    """U_q (n, 2, 2) of a shared step, and its gates."""
    gates = [matrices[p] for p in step.positions]
    u = ops.zeros((angles.shape[1], 1, 1), angles, complex_=True)
    u = u + _const(ops, step.right, angles, True)
    for g in gates:
        u = g @ u
    return _const(ops, step.left, angles, True) @ u, gates


def _group_operators(ops: Ops, u: Any, sizes: tuple[int, ...]) -> list[Any]:
    """Kronecker products of each group's unitaries."""
    out, first = [], 0
    for k in sizes:
        out.append(ops.contiguous(kron(ops, u[first : first + k])))
        first += k
    return out


def apply_groups(ops: Ops, operators: list[Any], state: Any, sizes: tuple[int, ...]) -> Any:
    """(K_1 x ... x K_g) psi for a state (2^n, batch), K_i on group i."""
    shape = state.shape
    before = 1
    for k, op in zip(sizes, operators, strict=True):
        d = 2**k
        state = ops.matmul(op, state.reshape(before, d, -1) if before > 1 else state.reshape(d, -1))
        before *= d
    return state.reshape(shape)


def wire_traces(ops: Ops, psi: Any, lam: Any, sizes: tuple[int, ...]) -> Any:
    """tau_q, the partial trace onto wire q of sum_batch psi lambda^H: (n, 2, 2)."""
    before, parts = 1, []
    for k in sizes:
        d = 2**k
        m = _gram(ops, psi.reshape(before, d, -1), lam.reshape(before, d, -1)).sum(0)
        parts.append(m.reshape(1, -1) @ _const(ops, _trace_map(k), psi.real, True))
        before *= d
    return ops.xp.concatenate(parts, 1).reshape(-1, 2, 2)


def _phases(ops: Ops, phi: Any, n: int) -> tuple[Any, Any | None]:
    """exp(-i/2 sum_q phi_q z_q) over each half of the wires: (2^a, batch), (2^b, batch)."""
    a, b = halves(n)
    both = _unit_phase(ops, ops.matmul(_const(ops, _half_signs(n), phi), phi))
    return (both, None) if not b else (both[: 2**a], both[2**a :])


@functools.lru_cache(maxsize=64)
def _half_signs(n: int) -> np.ndarray:
    """The signs z_q of each half's wires, block-diagonal: (2^a + 2^b, n)."""
    a, b = halves(n)
    out = np.zeros((2**a + (2**b if b else 0), n))
    out[: 2**a, :a] = _signs(a, True)
    if b:
        out[2**a :, a:] = _signs(b, True)
    return out


def _times_phases(state: Any, first: Any, second: Any | None) -> Any:
    out = state.reshape(first.shape[0], -1, first.shape[1]) * first[:, None, :]
    if second is not None:
        out *= second[None, :, :]
    return out.reshape(state.shape[0], -1)


def _gather(ops: Ops, state: Any, step: Monomial, inverse: bool) -> Any:
    if inverse:
        if step.phase_conj is not None:
            state = state * _const(ops, step.phase_conj, state.real, True)
        return state[ops.index(step.inverse, device_of(state))]
    out = state[ops.index(step.perm, device_of(state))]
    if step.phase is not None:
        out = out * _const(ops, step.phase, state.real, True)
    return out


# --- readout ---------------------------------------------------------------------------


def _readout(ops: Ops, schedule: Schedule, state: Any) -> Any:
    """Expectation values (batch, n * observables).

    <Z~_q> is |psi~|^2 times the signs z_q; <X~_q> + i <Y~_q> = 2 sum conj(psi~_j) psi~_j',
    j' = j with bit q set, over the j with bit q clear; both turn into the measured Paulis
    B^H sigma B by the frame's Bloch rotation.
    """
    n, batch = schedule.n, state.shape[-1]
    conj = state.conj()
    prob = ops.contiguous((conj * state).real)
    z = ops.matmul(_const(ops, _signs(n), prob), prob)
    w = ops.zeros((n, batch), state)
    for q in range(n):
        pairs = conj.reshape(2**q, 2, -1)[:, 0] * state.reshape(2**q, 2, -1)[:, 1]
        w[q] = pairs.reshape(-1, batch).sum(0)
    tilde = ops.xp.stack([2 * w.real, 2 * w.imag, z])  # (3, n, batch)
    rotation = _const(ops, schedule.readout, prob)  # (observables, 3)
    values = (rotation @ tilde.reshape(3, -1)).reshape(-1, n, batch)
    return ops.permute(values, 2, 1, 0).reshape(batch, -1)


def _readout_backward(ops: Ops, schedule: Schedule, state: Any, grad: Any) -> Any:
    """lambda (2^n, batch) for the gradient (batch, n * observables) of the values: per
    sample O_A X + X O_B^T, X the amplitudes as a 2^a x 2^b matrix and O_A, O_B the sums of
    each half's wires' weighted Paulis (in the frame)."""
    n, batch = schedule.n, state.shape[-1]
    a, b = halves(n)
    x = ops.contiguous(state.T).reshape(batch, 2**a, 2**b)
    rotation = _const(ops, schedule.readout, grad)
    weights = pauli_operators(grad.reshape(batch, n, -1) @ rotation)  # (batch, n) entries
    lam = ops.matmul(embed(ops, tuple(w[:, :a] for w in weights), a), x)
    if b:
        right = embed(ops, tuple(w[:, a:] for w in weights), b)
        lam = lam + ops.matmul(x, right.swapaxes(-1, -2))
    return ops.contiguous(lam.reshape(batch, -1).T)


# --- forward and backward ---------------------------------------------------------------


def frame_values(
    ops: Ops, plan: Plan, schedule: Schedule, n: int, x: Any, s: Any, t: Any, record: bool
) -> tuple[Any, Any]:
    """Expectation values (batch, outputs) and, if recorded, what the backward pass needs."""
    angles = assemble(ops, plan, x, s, t)  # (rows, n, batch)
    batch, sizes = x.shape[0], groups(n)
    matrices = gate_matrices(ops, schedule, angles)
    wires, tape = product_prefix(ops, schedule, angles, matrices, record)
    halves_ = half_products(wires, n)
    state = halves_[0] if halves_[1] is None else halves_[0][:, None, :] * halves_[1][None]
    state = state.reshape(2**n, -1)
    for step in schedule.steps[schedule.prefix :]:
        if state.shape[-1] != batch:  # a constant state meets a shared step
            state = ops.contiguous(state + ops.zeros((1, batch), angles, complex_=True))
        if isinstance(step, Phase):
            first, second = _phases(ops, step_angles(angles, step), n)
            state = _times_phases(state, first, second)
            tape.append((first, second, state) if record else ())
        elif isinstance(step, Shared):
            u, gates = unitaries(ops, step, matrices, angles)
            operators = _group_operators(ops, u, sizes)
            state = apply_groups(ops, operators, state, sizes)
            tape.append((gates, operators, state) if record else ())
        else:
            state = _gather(ops, state, step, inverse=False)
            tape.append(())
    if state.shape[-1] != batch:
        state = ops.contiguous(state + ops.zeros((1, batch), angles, complex_=True))
    return _readout(ops, schedule, state), (angles, tape, state, wires, halves_)


def step_angles(angles: Any, step: Phase) -> Any:
    """The angles (n, batch) of a phase step: the sum of its rows'."""
    phi = angles[step.rows[0]]
    for r in step.rows[1:]:
        phi = phi + angles[r]
    return phi


def product_prefix(
    ops: Ops,
    schedule: Schedule,
    angles: Any,
    matrices: Any,
    record: bool,
    count: int | None = None,
) -> tuple[Any, list[tuple[Any, ...]]]:
    """Every wire's vector (n, 2, batch or 1) after the steps before the first entangler,
    and what their backward pass needs.

    :param count: run only this many of those steps (0: the start vectors)
    """
    n = angles.shape[1]
    wires = ops.zeros((n, 2, 1), angles, complex_=True)
    wires = wires + _const(ops, schedule.wire_start, angles, True)
    tape: list[tuple[Any, ...]] = []
    for step in schedule.steps[: schedule.prefix if count is None else count]:
        if isinstance(step, Phase):
            d = _unit_phase(ops, step_angles(angles, step))  # exp(-i phi / 2), (n, batch)
            wires = wires * ops.xp.stack([d, d.conj()], 1)
            tape.append((d, wires) if record else ())
        elif isinstance(step, Shared):
            u, gates = unitaries(ops, step, matrices, angles)
            wires = u @ wires
            tape.append((gates, u, wires) if record else ())
    return wires, tape


def half_products(wires: Any, n: int) -> tuple[Any, Any | None]:
    """The product states (2^a, batch) and (2^b, batch) of the two halves' wires."""
    a, b = halves(n)

    def product(vectors: Any) -> Any:
        out = vectors[0]
        for v in vectors[1:]:
            out = (out[:, None, :] * v[None, :, :]).reshape(-1, v.shape[-1])
        return out

    return product(wires[:a]), product(wires[a:]) if b else None


def frame_backward(ops: Ops, schedule: Schedule, n: int, saved: Any, grad: Any) -> tuple[Any, Any]:
    """Gradients of the angles: of per-sample rows (rows, n, batch), and of shared rows
    summed over the batch (rows, n)."""
    angles, tape, state, wires, halves_ = saved
    rows, _, batch = angles.shape
    sizes = groups(n)
    lam = _readout_backward(ops, schedule, state, grad)
    d_angles = ops.zeros((rows, n, batch), angles)
    d_shared = ops.zeros((rows, n), angles)
    for i in range(len(schedule.steps) - 1, schedule.prefix - 1, -1):
        step, record = schedule.steps[i], tape[i]
        if isinstance(step, Phase):
            first, second, out = record
            weight = ops.contiguous((lam.conj() * out).imag)
            d_phi = ops.matmul(_const(ops, _signs(n), weight), weight)
            for r in step.rows:
                d_angles[r] = d_phi
            lam = _times_phases(lam, first.conj(), None if second is None else second.conj())
        elif isinstance(step, Shared):
            gates, operators, out = record
            shared_gradients(ops, step, gates, wire_traces(ops, out, lam, sizes), d_shared, angles)
            lam = apply_groups(ops, [_dagger(o) for o in operators], lam, sizes)
        else:
            lam = _gather(ops, lam, step, inverse=True)
    if schedule.prefix:
        g = _wire_gradients(ops, lam, wires, halves_, n)
        prefix_backward(ops, schedule, tape[: schedule.prefix], g, d_angles, d_shared, angles)
    return d_angles, d_shared


def _wire_gradients(ops: Ops, lam: Any, wires: Any, halves_: Any, n: int) -> Any:
    """For a product state, the gradient with respect to each wire's conjugate vector:
    g_q = sum over the other wires of lambda times their conjugate vectors, (n, 2, batch)."""
    batch = lam.shape[-1]
    wires = wires + ops.zeros((1, 1, batch), wires)
    first, second = halves_
    if second is None:
        return contract_wires(ops, lam, wires)
    a, b = halves(n)
    lam3 = lam.reshape(2**a, 2**b, batch)
    left = (lam3 * second.conj()[None]).sum(1)  # (2^a, batch): the second half contracted
    right = (lam3 * first.conj()[:, None]).sum(0)
    parts = [contract_wires(ops, left, wires[:a]), contract_wires(ops, right, wires[a:])]
    return ops.xp.concatenate(parts)


def contract_wires(ops: Ops, u: Any, vectors: Any) -> Any:
    """g_q[c] = sum over the other wires' indices of u times their conjugate vectors, for
    u (2^k, batch) and the k wires' vectors (k, 2, batch)."""
    k, _, batch = vectors.shape
    conj = vectors.conj()
    one = ops.zeros((1, batch), u) + 1
    suffixes = [one]  # the products of the wires after q, from the last wire back
    for q in range(k - 1, 0, -1):
        suffixes.append((conj[q][:, None, :] * suffixes[-1][None]).reshape(-1, batch))
    prefix, out = one, []
    for q in range(k):
        part = (u.reshape(2**q, 2, -1, batch) * prefix[:, None, None, :]).sum(0)
        out.append((part * suffixes[k - 1 - q][None]).sum(1))
        prefix = (prefix[:, None, :] * conj[q][None]).reshape(-1, batch)
    return ops.xp.stack(out)


def prefix_backward(
    ops: Ops,
    schedule: Schedule,
    tape: list[tuple[Any, ...]],
    g: Any,
    d_angles: Any,
    d_shared: Any,
    like: Any,
) -> None:
    """The gradients of the steps before the first entangler, wire by wire, from the
    gradient g (n, 2, batch) of the wires' conjugate vectors after them."""
    for i in range(schedule.prefix - 1, -1, -1):
        step = schedule.steps[i]
        if isinstance(step, Phase):
            d, out = tape[i]
            weight = g.conj() * out  # Im sum_c z_c conj(g_c) v_c, z = (1, -1)
            d_phi = (weight[:, 0] - weight[:, 1]).imag
            for r in step.rows:
                d_angles[r] = d_phi
            g = g * ops.xp.stack([d.conj(), d], 1)
        elif isinstance(step, Shared):
            gates, u, out = tape[i]
            out = out + ops.zeros((1, 1, g.shape[-1]), out)
            tau = out @ g.conj().swapaxes(-1, -2)  # (n, 2, 2), summed over the batch
            shared_gradients(ops, step, gates, tau, d_shared, like)
            g = _dagger(u) @ g


def shared_gradients(
    ops: Ops, step: Shared, gates: list[Any], tau: Any, out: Any, like: Any
) -> None:
    """Im Tr(sigma A^H tau A) for each row of a shared step, written into ``out``."""
    prefixes = [_const(ops, step.left, like, True) + 0 * tau]  # A of the last gate
    for g in gates[:0:-1]:
        prefixes.append(prefixes[-1] @ g)
    a = ops.xp.stack(prefixes[::-1])  # (rows, n, 2, 2), in the order of the rows
    m = _dagger(a) @ tau @ a
    paulis = _const(ops, _pauli_table(step.axes), like, True)  # (rows, 1, 4, 1)
    value = (m.reshape(*m.shape[:2], 1, 4) @ paulis)[..., 0, 0].imag
    out[ops.index(step.rows, device_of(like))] = value


# sigma^T flattened per axis, so that Tr(sigma m) = m.flat @ sigma^T.flat (zero for "H")
_PAULI_T = np.array([[0, 1, 1, 0], [0, 1j, -1j, 0], [1, 0, 0, -1], [0, 0, 0, 0]], dtype=complex)[
    :, None, :, None
]


@functools.lru_cache(maxsize=64)
def _pauli_table(axes: tuple[int, ...]) -> np.ndarray:
    """_PAULI_T of a step's rows: one array per axes, so that its conversion is cached."""
    return _PAULI_T[list(axes)]


class FrameCircuit(torch.autograd.Function):
    """Inputs and shared weights to expectation values, in one autograd node."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        scale: torch.Tensor | None,
        theta: torch.Tensor,
        circuit: Circuit,
        ops: Ops,
    ) -> torch.Tensor:
        plan, schedule = make_plan(circuit), make_schedule(circuit)
        x, s, t = wrap_all(ops, inputs, scale, theta)
        values, saved = frame_values(ops, plan, schedule, circuit.n_qubits, x, s, t, True)
        ctx.ops, ctx.plan, ctx.schedule, ctx.n = ops, plan, schedule, circuit.n_qubits
        ctx.arrays, ctx.saved = (x, s, t), saved
        return ops.unwrap(values, inputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        ops, plan = ctx.ops, ctx.plan
        x, s, t = ctx.arrays
        d_angles, d_shared = frame_backward(ops, ctx.schedule, ctx.n, ctx.saved, ops.wrap(grad))
        grads = assemble_backward(ops, plan, d_angles, x, s, t, shared=d_shared)
        return (*unwrap_all(ops, grads, grad), None, None)


def run_frame(
    circuit: Circuit,
    inputs: torch.Tensor,
    scale: torch.Tensor | None,
    theta: torch.Tensor,
    force_torch: bool = False,
) -> torch.Tensor:
    """Expectation values of an entangling circuit whose weights the batch shares,
    (batch, circuit.n_outputs).

    :param circuit: the circuit
    :param inputs: encoded features, (batch, n_qubits, features_per_qubit)
    :param scale: ``input_scale``, or None for basis encoding
    :param theta: (layers, n_qubits, rotations), shared by the batch
    :param force_torch: run the kernels on PyTorch tensors even on the CPU
    """
    if theta.ndim != 3:
        raise ValueError(f"theta must be (layers, qubits, rotations), got {tuple(theta.shape)}")
    ops = ops_for(inputs, force_torch)
    if needs_graph(inputs, scale, theta):
        out: torch.Tensor = FrameCircuit.apply(inputs, scale, theta, circuit, ops)
        return out
    x, s, t = wrap_all(ops, inputs, scale, theta)
    plan, schedule = make_plan(circuit), make_schedule(circuit)
    values, _ = frame_values(ops, plan, schedule, circuit.n_qubits, x, s, t, False)
    return ops.unwrap(values, inputs)


def takes(circuit: Circuit, per_sample: bool) -> bool:
    """The circuits this path runs: entangling, weights shared by the batch, fast-path gates
    only (see :func:`~qrl.simulator.plan.fast_path_takes`)."""
    return circuit.entangling and not per_sample and fast_path_takes(circuit)
