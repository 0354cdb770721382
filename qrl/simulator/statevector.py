"""Entangling circuits: a batched state vector, held as a (batch, 2^a, 2^b) matrix.

The wires are split into two halves (a = ceil(n / 2) and b = n - a wires), so the amplitudes
of a sample form a 2^a x 2^b matrix X and a run of single-qubit gates is X -> L X R^T, where
L and R are the Kronecker products of each half's gates: two batched matrix products. The
gates of a run are first fused into one 2x2 matrix per qubit and sample. An entangling
pattern of a fixed gate that permutes basis states with phases (CNOT, CZ, SWAP, ...) is one
gather and one product with the phases, and the readout takes, per wire, the partial trace of
the two halves' density matrices X X^H and X^T X^*.

The backward pass is written out, not taped. With lambda the gradient of the loss with
respect to the conjugate amplitudes after a run, Y the amplitudes after it and U_q the fused
gate of wire q, the gradient with respect to U_q^* is T_q U_q, where T_q is the partial trace
onto wire q of lambda Y^H (two more matrix products per run). Writing U_q = G_k ... G_1 and
S_m = P_m^H sigma_m P_m for moment m's generator pulled back by the prefix P_m = G_m ... G_1,
the angle gradient is Im Tr(U^H T^H U S_m); S_m is the Bloch-vector axis that
:mod:`~qrl.simulator.product` already computes.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
import torch

from qrl.circuits import Circuit, gate
from qrl.simulator.backend import (
    NumpyOps,
    Ops,
    TorchOps,
    device_of,
    needs_graph,
    ops_for,
    unwrap_all,
    wrap_all,
)
from qrl.simulator.plan import (
    Plan,
    assemble,
    assemble_backward,
    fast_path_takes,
    make_plan,
    monomial,
)
from qrl.simulator.product import bloch_forward

TORCH_FROM_QUBITS = 10
_AXIS_VECTORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]]) / np.array(
    [[1], [1], [1], [math.sqrt(2)]]
)


def halves(n: int) -> tuple[int, int]:
    """Wires in the first and the second half of an n-wire register."""
    first = (n + 1) // 2
    return first, n - first


@functools.lru_cache(maxsize=64)
def _bit_tables(k: int) -> tuple[tuple[int, ...], tuple[int, ...], np.ndarray]:
    """For k wires (D = 2^k), flat indices into a D x D matrix and the bit pattern.

    :return: the diagonal (D,), the entries [x, x ^ bit_q] for each wire q (k * D,), and
        bits (2, k, D): [0] is 1 where bit_q(x) is 0, [1] where it is 1
    """
    d = 2**k
    x = np.arange(d)
    masks = np.array([1 << (k - 1 - q) for q in range(k)], dtype=np.int64)
    flips = (x[None, :] * d + (x[None, :] ^ masks[:, None])).reshape(-1)
    ones = ((x[None, :] & masks[:, None]) != 0).astype(np.float64)
    return tuple((x * (d + 1)).tolist()), tuple(flips.tolist()), np.stack([1 - ones, ones])


def _tables(ops: Ops, k: int, dtype: Any, device: Any) -> tuple[Any, Any, Any, Any]:
    return _tables_cached(ops is NumpyOps, k, dtype, device)


@functools.lru_cache(maxsize=128)
def _tables_cached(numpy: bool, k: int, dtype: Any, device: Any) -> tuple[Any, Any, Any, Any]:
    ops: Ops = NumpyOps if numpy else TorchOps
    diag, flips, bits = _bit_tables(k)
    side = np.concatenate([bits[0], bits[1]]).T  # (D, 2k)
    if ops.xp is np:
        return ops.index(diag), ops.index(flips), bits.astype(dtype), side.astype(dtype)
    as_tensor = functools.partial(torch.as_tensor, dtype=dtype, device=device)
    return ops.index(diag, device), ops.index(flips, device), as_tensor(bits), as_tensor(side)


Pair = tuple[Any, Any, Any, Any]  # a batch of 2x2 matrices as its four entries


def mul2(a: Pair, b: Pair) -> Pair:
    """Product of batches of 2x2 matrices given by their entries."""
    return (
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
    )


def dagger2(a: Pair) -> Pair:
    """Conjugate transpose of 2x2 matrices given by their entries."""
    return a[0].conj(), a[2].conj(), a[1].conj(), a[3].conj()


def stack2(ops: Ops, a: Pair) -> Any:
    """Entries to an array of shape (..., 2, 2)."""
    return ops.xp.stack(a, -1).reshape(*a[0].shape, 2, 2)


def partial_traces(ops: Ops, m: Any, k: int) -> Pair:
    """Per wire q of a k-wire operator (batch, D, D), the 2x2 partial trace: (batch, k) each."""
    batch, d = m.shape[0], 2**k
    diag_idx, flip_idx, bits, side = _tables(ops, k, m.dtype, device_of(m))
    flat = m.reshape(batch, d * d)
    on = flat[:, diag_idx] @ side  # (batch, 2k): sums over bit_q = 0, then bit_q = 1
    off = (flat[:, flip_idx].reshape(batch, 1, k, d) * bits).sum(-1)  # (batch, 2, k)
    return on[:, :k], off[:, 0], off[:, 1], on[:, k:]


def embed(ops: Ops, o: Pair, k: int) -> Any:
    """The adjoint of :func:`partial_traces`: sum over wires q of I x O_q x I, (batch, D, D)."""
    batch, d = o[0].shape[0], 2**k
    diag_idx, flip_idx, bits, _ = _tables(ops, k, o[0].dtype, device_of(o[0]))
    diag = o[0] @ bits[0] + o[3] @ bits[1]
    off = o[1][:, :, None] * bits[0] + o[2][:, :, None] * bits[1]
    out = ops.zeros((batch, d * d), o[0])
    out[:, diag_idx] = diag
    out[:, flip_idx] = off.reshape(batch, k * d)
    return out.reshape(batch, d, d)


def _gates(ops: Ops, angles: Any, axes: tuple[int, ...]) -> Pair:
    """exp(-i angle / 2 n.sigma) per moment, sample and qubit, as entries (moments, batch, n)."""
    xp = ops.xp
    n_axis = _AXIS_VECTORS[list(axes)]
    shape = (len(axes),) + (1,) * (angles.ndim - 1)
    nx, ny, nz = (ops.const(n_axis[:, i].reshape(shape), angles) for i in range(3))
    c, s = xp.cos(angles / 2), xp.sin(angles / 2)
    isz = 1j * (s * nz)
    isx = 1j * (s * nx)
    sy = s * ny
    return c - isz, -isx - sy, sy - isx, c + isz


def _product_state(ops: Ops, u: Pair, n: int) -> Any:
    """The amplitudes (batch, 2^a, 2^b) of the product of each qubit's U |0>."""
    a, _ = halves(n)
    batch = u[0].shape[0]
    halves_ = []
    for wires in (range(a), range(a, n)):
        v = ops.zeros((batch, 1), u[0]) + 1
        for q in wires:
            column = ops.xp.stack([u[0][:, q], u[2][:, q]], -1)  # U_q |0>
            v = (v[:, :, None] * column[:, None, :]).reshape(batch, -1)
        halves_.append(v)
    return ops.contiguous(halves_[0][:, :, None] * halves_[1][:, None, :])


def kron(ops: Ops, u: Any) -> Any:
    """Kronecker product over dim -3 of (..., k, 2, 2) matrices, wire order kept."""
    out = u[..., 0, :, :]
    for j in range(1, u.shape[-3]):
        d = out.shape[-1] * 2
        nxt = u[..., j, :, :]
        product = ops.contiguous(out[..., :, None, :, None] * nxt[..., None, :, None, :])
        out = product.reshape(*out.shape[:-2], d, d)
    return out


def half_operators(ops: Ops, u: Any, n: int) -> tuple[Any, Any]:
    """Kronecker products of the fused gates of each half, (batch, 2^a, 2^a) and (.., 2^b)."""
    a, b = halves(n)
    if a == b:
        both = kron(ops, u.reshape(u.shape[0], 2, a, 2, 2))
        return both[:, 0], both[:, 1]
    if b == 0:
        return kron(ops, u), ops.zeros((u.shape[0], 1, 1), u) + 1
    return kron(ops, u[:, :a]), kron(ops, u[:, a:])


class Entangler(NamedTuple):
    """A fixed two-qubit gate on its pairs as new = phase * old[perm] on (batch, 2^n)
    amplitudes, and its adjoint old = (conj(phase) * new)[inverse]; None parts are skipped."""

    perm: Any
    inverse: Any
    phase: Any
    phase_conj: Any


def _entangler(ops: Ops, moment: Any, n: int, like: Any) -> Entangler:
    """The tables of an entangling moment, for the backend, dtype and device of ``like``."""
    numpy = ops is NumpyOps
    return _entangler_cached(numpy, moment.gate, moment.pairs, n, like.dtype, device_of(like))


@functools.lru_cache(maxsize=128)
def _entangler_cached(
    numpy: bool, gate_name: str, pairs: tuple[tuple[int, int], ...], n: int, dtype: Any, device: Any
) -> Entangler:
    ops: Ops = NumpyOps if numpy else TorchOps
    found = monomial(gate(gate_name).unitary().numpy(), pairs, n)
    if found is None:
        raise ValueError(f"{gate_name} is not a permutation with phases")
    perm, phase = found
    identity = bool((perm == np.arange(2**n)).all())
    index = None if identity else ops.index(tuple(perm.tolist()), device)
    inverse = None if identity else ops.index(tuple(np.argsort(perm).tolist()), device)
    if phase is None:
        return Entangler(index, inverse, None, None)
    if ops.xp is np:
        return Entangler(index, inverse, phase.astype(dtype), phase.conj().astype(dtype))
    as_tensor = functools.partial(torch.as_tensor, dtype=dtype, device=device)
    return Entangler(index, inverse, as_tensor(phase), as_tensor(phase.conj()))


def entangle(flat: Any, table: Entangler, adjoint: bool = False) -> Any:
    """Apply an entangling moment (or its adjoint) to amplitudes (batch, 2^n)."""
    if adjoint:
        if table.phase_conj is not None:
            flat = flat * table.phase_conj
        return flat if table.inverse is None else flat[:, table.inverse]
    if table.perm is not None:
        flat = flat[:, table.perm]
    return flat if table.phase is None else flat * table.phase


def _per_wire(ops: Ops, left: Any, right: Any, n: int) -> Pair:
    """Per-wire 2x2 partial traces (batch, n) of operators on the two halves."""
    a, b = halves(n)
    first = partial_traces(ops, left, a)
    if not b:
        return first
    second = partial_traces(ops, right, b)
    cat = ops.xp.concatenate
    return tuple(cat([p, q], 1) for p, q in zip(first, second, strict=True))


def _expectations(t: Pair) -> tuple[Any, Any, Any]:
    """<X>, <Y>, <Z> from one-wire density matrices given by their entries."""
    return 2 * t[2].real, -2 * t[1].imag, (t[0] - t[3]).real


def pauli_operators(g: Any) -> Pair:
    """gX X + gY Y + gZ Z for weights g (..., 3), as entries of complex 2x2 matrices."""
    gx, gy, gz = g[..., 0], g[..., 1], g[..., 2]
    return gz + 0j, gx - 1j * gy, gx + 1j * gy, -gz + 0j


def _dagger(m: Any) -> Any:
    return m.conj().swapaxes(-1, -2)


def _ops(inputs: torch.Tensor, circuit: Circuit, force_torch: bool) -> Ops:
    # Past ~10 qubits the arrays are large and PyTorch's kernels beat NumPy's.
    return ops_for(inputs, force_torch or circuit.n_qubits > TORCH_FROM_QUBITS)


def statevector_values(
    ops: Ops, plan: Plan, circuit: Circuit, x: Any, s: Any, t: Any
) -> tuple[Any, tuple[Any, Any, Any]]:
    """Expectation values (batch, n * observables) of any circuit, and what the backward
    pass needs: the angles, each run's (first, stop, gates, L, R, amplitudes after it), and
    the final amplitudes."""
    angles = ops.contiguous(ops.permute(assemble(ops, plan, x, s, t), 0, 2, 1))
    batch, n = x.shape[0], circuit.n_qubits
    a, b = halves(n)
    gates = _gates(ops, angles, plan.axes)
    mm = ops.matmul
    state: Any = None  # None: still |0...0>, which the entanglers leave alone
    runs: list[tuple[int, int, Pair, Any, Any, Any]] = []
    for kind, first, stop in plan.program:
        if kind == "rot":
            u: Pair = tuple(g[first] for g in gates)
            for m in range(first + 1, stop):
                u = mul2(tuple(g[m] for g in gates), u)
            if state is None:  # the first run makes a product state: no Kronecker matrices
                left = right = None
                state = _product_state(ops, u, n)
            else:
                left, right = half_operators(ops, stack2(ops, u), n)
                state = mm(mm(left, state), right.swapaxes(-1, -2))
            runs.append((first, stop, u, left, right, state))
        elif state is not None:
            table = _entangler(ops, circuit.moments[first], n, state)
            state = entangle(state.reshape(batch, 2**n), table).reshape(batch, 2**a, 2**b)
    if state is None:
        state = ops.zeros((batch, 2**a, 2**b), angles, complex_=True)
        state[:, 0, 0] = 1
    rho = _per_wire(ops, mm(state, _dagger(state)), mm(state.swapaxes(-1, -2), state.conj()), n)
    values = ops.xp.stack(_expectations(rho), -1)[:, :, ops.index(plan.observables, device_of(x))]
    return values.reshape(batch, -1), (angles, runs, state)


class StateVectorCircuit(torch.autograd.Function):
    """Inputs and weights to expectation values of any circuit, in one autograd node."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        scale: torch.Tensor | None,
        theta: torch.Tensor,
        circuit: Circuit,
        force_torch: bool,
    ) -> torch.Tensor:
        ops = _ops(inputs, circuit, force_torch)
        plan = make_plan(circuit)
        x, s, t = wrap_all(ops, inputs, scale, theta)
        values, (angles, runs, state) = statevector_values(ops, plan, circuit, x, s, t)
        ctx.ops, ctx.plan, ctx.circuit = ops, plan, circuit
        ctx.arrays, ctx.angles, ctx.runs, ctx.state = (x, s, t), angles, runs, state
        return ops.unwrap(values, inputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        ops, plan, circuit = ctx.ops, ctx.plan, ctx.circuit
        x, s, t = ctx.arrays
        n, batch = circuit.n_qubits, x.shape[0]
        a, b = halves(n)
        g = ops.zeros((batch, n, 3), x)
        g[:, :, ops.index(plan.observables, device_of(x))] = ops.wrap(grad).reshape(batch, n, -1)
        weights = pauli_operators(g)  # d loss / d rho_q, per wire
        state, mm = ctx.state, ops.matmul
        lam = mm(embed(ops, tuple(w[:, :a] for w in weights), a), state)
        if b:
            right = embed(ops, tuple(w[:, a:] for w in weights), b)
            lam = lam + mm(state, right.swapaxes(-1, -2))
        runs = list(ctx.runs)
        coeffs: list[Any] = []  # per run, from last to first
        for kind, first, _ in reversed(plan.program):
            if kind == "ent":
                table = _entangler(ops, circuit.moments[first], n, lam)
                lam = entangle(lam.reshape(batch, 2**n), table, adjoint=True)
                lam = lam.reshape(batch, 2**a, 2**b)
                continue
            _, _, u, left, right, out = runs.pop()
            coeffs.append(_run_coefficients(ops, u, lam, out, n))
            if runs:  # carry lambda to before the run: L^H lambda R^*
                lam = mm(mm(_dagger(left), lam), right.conj())
        d_angles = _angle_gradients(ops, plan, ctx.angles, ctx.runs, coeffs[::-1])
        grads = assemble_backward(ops, plan, ops.permute(d_angles, 0, 2, 1), x, s, t)
        return (*unwrap_all(ops, grads, grad), None, None)


def _run_coefficients(ops: Ops, u: Pair, lam: Any, out: Any, n: int) -> Any:
    """Im Tr(U^H T^H U sigma_a), a = x, y, z, for one run: (3, batch * n)."""
    mm = ops.matmul
    t = _per_wire(ops, mm(lam, _dagger(out)), mm(lam.swapaxes(-1, -2), out.conj()), n)
    k = mul2(mul2(dagger2(u), dagger2(t)), u)
    coeff = ops.xp.stack([(k[1] + k[2]).imag, (k[1] - k[2]).real, (k[0] - k[3]).imag])
    return coeff.reshape(3, -1)


def _angle_gradients(ops: Ops, plan: Any, angles: Any, runs: list[Any], coeffs: list[Any]) -> Any:
    """Angle gradients (rows, batch, n): each run's coefficients times its moments' axes
    pulled back by the prefix rotations, one Bloch pass for all runs of the same gates."""
    rows, batch, n = angles.shape
    d_angles = ops.zeros((rows, batch, n), angles)
    spans = [(r[0], r[1]) for r in runs]
    same = len({plan.axes[f:e] for f, e in spans}) == 1
    if same:
        first, stop = spans[0]
        grouped = ops.xp.stack([angles[f:e].reshape(stop - first, -1) for f, e in spans], 1)
        _, (_, axis_rows) = bloch_forward(
            ops, grouped.reshape(stop - first, -1), plan.axes[first:stop], True
        )
        per_run = axis_rows.reshape(stop - first, 3, len(spans), batch * n)
        for i, (f, e) in enumerate(spans):
            d_angles[f:e] = (per_run[:, :, i] * coeffs[i]).sum(1).reshape(e - f, batch, n)
        return d_angles
    for (f, e), coeff in zip(spans, coeffs, strict=True):
        _, (_, axis_rows) = bloch_forward(ops, angles[f:e].reshape(e - f, -1), plan.axes[f:e], True)
        d_angles[f:e] = (axis_rows * coeff).sum(1).reshape(e - f, batch, n)
    return d_angles


def run_statevector(
    circuit: Circuit,
    inputs: torch.Tensor,
    scale: torch.Tensor | None,
    theta: torch.Tensor,
    force_torch: bool = False,
) -> torch.Tensor:
    """Expectation values of any circuit, (batch, circuit.n_outputs).

    :param circuit: the circuit
    :param inputs: encoded features, (batch, n_qubits, features_per_qubit)
    :param scale: ``input_scale``, or None for basis encoding
    :param theta: (layers, n_qubits, rotations) or (batch, layers, n_qubits, rotations)
    :param force_torch: run the kernels on PyTorch tensors even on the CPU
    """
    if needs_graph(inputs, scale, theta):
        out: torch.Tensor = StateVectorCircuit.apply(inputs, scale, theta, circuit, force_torch)
        return out
    ops = _ops(inputs, circuit, force_torch)  # inference: no autograd node
    x, s, t = wrap_all(ops, inputs, scale, theta)
    values, _ = statevector_values(ops, make_plan(circuit), circuit, x, s, t)
    return ops.unwrap(values, inputs)


def takes(circuit: Circuit, per_sample: bool) -> bool:
    """The circuits this path runs: any of fast-path gates, weights shared or per sample."""
    return fast_path_takes(circuit)
