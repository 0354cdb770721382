"""From a circuit's description to index tables, and from inputs and weights to angles.

Every single-qubit moment of a circuit takes its angle from exactly one place: an encoded
input feature times an input scale (or pi, for basis encoding), one entry of ``theta``, or
the constant pi of a Hadamard (a rotation by pi about (x + z) / sqrt 2, up to a phase). The
plan turns that into index tables once per circuit, so that all angles are gathered in a few
array operations (:func:`assemble`) and their gradients scattered back in a few more
(:func:`assemble_backward`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np

from qrl.circuits import Circuit, InputAngle, WeightAngle, gate
from qrl.simulator.backend import Ops, device_of

# The single-qubit gates of the fast paths: rotations about x, y, z, and the Hadamard.
AXES = {"RX": 0, "RY": 1, "RZ": 2, "H": 3}
PAULI_INDEX = {"X": 0, "Y": 1, "Z": 2}


def monomial(
    matrix: np.ndarray, pairs: tuple[tuple[int, int], ...], n: int
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A two-qubit gate applied to each pair in turn, as new[i] = phase[i] old[perm[i]] on
    n wires; None when its matrix is not a permutation with phases (a monomial matrix).

    :param matrix: the 4x4 matrix (control first)
    :param pairs: the (control, target) pairs, in order
    :return: the permutation and the phases (None where all are 1)
    """
    cols = np.argmax(np.abs(matrix) > 1e-9, axis=1)
    if not np.allclose(np.abs(matrix[np.arange(4), cols]), 1):
        return None
    idx = np.arange(2**n)
    perm, phase = idx.copy(), np.ones(2**n, dtype=complex)
    for c, t in pairs:
        bc, bt = n - 1 - c, n - 1 - t
        row = ((idx >> bc) & 1) * 2 + ((idx >> bt) & 1)
        col = cols[row]
        source = (idx & ~((1 << bc) | (1 << bt))) | ((col >> 1) << bc) | ((col & 1) << bt)
        phase = matrix[row, col] * phase[source]
        perm = perm[source]
    return perm, None if np.allclose(phase, 1) else phase


def is_monomial(name: str) -> bool:
    """Whether a gate of the table is a fixed two-qubit permutation with phases that leaves
    |00> in place up to a phase (CNOT, CZ, SWAP, iSWAP, ...): the entanglers the fast paths
    take (the state-vector path skips them while the state is still |0...0>)."""
    spec = gate(name)
    if spec.wires != 2 or spec.trainable:
        return False
    nonzero = np.abs(spec.unitary().numpy()) > 1e-9
    return bool((nonzero.sum(1) == 1).all() and nonzero[0, 0])


def fast_path_takes(circuit: Circuit) -> bool:
    """Whether the fast paths can run a circuit: single-qubit gates among :data:`AXES`,
    fixed monomial two-qubit gates, and only the weights ``theta`` (layers, qubits,
    rotations) and ``input_scale``. Every other circuit runs on the reference simulator."""
    return _fast_path_takes(circuit)


@functools.lru_cache(maxsize=128)
def _fast_path_takes(circuit: Circuit) -> bool:
    if not set(circuit.weight_shapes) <= {"theta", "input_scale"}:
        return False
    if len(circuit.weight_shapes.get("theta", ())) != 3:
        return False
    for m in circuit.moments:
        if m.spec.wires == 2:
            if not is_monomial(m.gate):
                return False
        elif m.gate not in AXES or (isinstance(m.angle, WeightAngle) and m.angle.name != "theta"):
            return False
    return True


@dataclass(frozen=True)
class Plan:
    """Index tables of one circuit.

    Rows are the circuit's single-qubit moments, in order.
    """

    axes: tuple[int, ...]  # per row, a key of AXES's values
    input_rows: tuple[int, ...]
    input_features: tuple[int, ...]
    scale_flat: tuple[int, ...]  # layer * features_per_qubit + index into input_scale
    fixed_rows: tuple[int, ...]  # positions within input_rows with the fixed scale pi
    weight_rows: tuple[int, ...]
    weight_flat: tuple[int, ...]  # layer * rotations + index into theta
    const_rows: tuple[int, ...]
    # The program: ("rot", first row, stop row) for a run of single-qubit moments, and
    # ("ent", moment index) for an entangling pattern.
    program: tuple[tuple[str, int, int], ...]
    observables: tuple[int, ...]  # PAULI_INDEX of the measured Paulis
    entangling: bool
    shapes: tuple[int, int, int, int]  # features per qubit, scale entries, theta entries, rows
    # Index arrays per backend, dtype and device (see tables()).
    cache: dict[Any, Tables] = field(default_factory=dict, compare=False, hash=False, repr=False)


T = TypeVar("T")


def by_identity(make: Callable[[Circuit], T]) -> Callable[[Circuit], T]:
    """Cache ``make(circuit)`` by the circuit's identity before its (cached) value: hashing
    a circuit walks all its moments, a cost on every call of a small circuit."""
    recent: dict[int, tuple[Circuit, T]] = {}

    @functools.wraps(make)
    def cached(circuit: Circuit) -> T:
        hit = recent.get(id(circuit))
        if hit is not None and hit[0] is circuit:
            return hit[1]
        if len(recent) > 256:
            recent.clear()
        value = make(circuit)
        recent[id(circuit)] = (circuit, value)  # keeps the circuit alive: its id stays its own
        return value

    return cached


@by_identity
def make_plan(circuit: Circuit) -> Plan:
    """The plan of a circuit (cached per circuit)."""
    return _make_plan(circuit)


@functools.lru_cache(maxsize=64)
def _make_plan(circuit: Circuit) -> Plan:
    n_rot = circuit.weight_shapes["theta"][-1]
    fpq = circuit.features_per_qubit
    axes: list[int] = []
    inputs: list[tuple[int, int, int | None]] = []
    weights: list[tuple[int, int]] = []
    consts: list[int] = []
    program: list[tuple[str, int, int]] = []
    start = 0
    for i, m in enumerate(circuit.moments):
        if m.spec.wires == 2:
            if len(axes) > start:
                program.append(("rot", start, len(axes)))
            program.append(("ent", i, i + 1))
            start = len(axes)
            continue
        row = len(axes)
        axes.append(AXES[m.gate])
        if isinstance(m.angle, InputAngle):
            layer = m.angle.scale_layer
            flat = None if layer is None else layer * fpq + m.angle.scale_index
            inputs.append((row, m.angle.feature, flat))
        elif isinstance(m.angle, WeightAngle):
            weights.append((row, m.angle.layer * n_rot + m.angle.index))
        else:
            consts.append(row)
    if len(axes) > start:
        program.append(("rot", start, len(axes)))
    return Plan(
        axes=tuple(axes),
        input_rows=tuple(r for r, _, _ in inputs),
        input_features=tuple(f for _, f, _ in inputs),
        scale_flat=tuple(0 if s is None else s for _, _, s in inputs),
        fixed_rows=tuple(k for k, (_, _, s) in enumerate(inputs) if s is None),
        weight_rows=tuple(r for r, _ in weights),
        weight_flat=tuple(f for _, f in weights),
        const_rows=tuple(consts),
        program=tuple(program),
        observables=tuple(PAULI_INDEX[p] for p in circuit.observables),
        entangling=any(kind == "ent" for kind, _, _ in program),
        shapes=(fpq, _grid_size(circuit, "input_scale"), _grid_size(circuit, "theta"), len(axes)),
    )


def _grid_size(circuit: Circuit, name: str) -> int:
    """Entries of a (layers, n, k) weight per qubit: layers * k (0 if absent)."""
    shape = circuit.weight_shapes.get(name)
    return 0 if shape is None else shape[0] * shape[2]


class Tables(NamedTuple):
    """A plan's index arrays and one-hot matrices for one backend, dtype and device."""

    input_rows: Any
    input_features: Any
    scale_flat: Any
    fixed: Any  # (input rows, 1): 1 where the factor is the fixed pi
    weight_rows: Any
    weight_flat: Any
    const_rows: Any
    observables: Any
    feature_onehot: Any  # (features per qubit, input rows)
    scale_onehot: Any  # (layers * features, input rows); zero columns for fixed rows
    weight_onehot: Any  # (layers * rotations, weight rows)


def tables(ops: Ops, plan: Plan, like: Any) -> Tables:
    """The (cached) index arrays of a plan, for the backend, dtype and device of ``like``."""
    device = device_of(like)
    key = (ops, like.dtype, device)
    hit = plan.cache.get(key)
    if hit is not None:
        return hit
    fpq, n_scale, n_theta, _ = plan.shapes
    n_in = len(plan.input_rows)
    fixed = np.zeros((n_in, 1))
    fixed[list(plan.fixed_rows)] = 1
    onehots = [
        np.zeros((fpq, n_in)),
        np.zeros((n_scale, n_in)),
        np.zeros((n_theta, len(plan.weight_rows))),
    ]
    for i, (f, k) in enumerate(zip(plan.input_features, plan.scale_flat, strict=True)):
        onehots[0][f, i] = 1
        if i not in plan.fixed_rows:
            onehots[1][k, i] = 1
    for i, k in enumerate(plan.weight_flat):
        onehots[2][k, i] = 1
    out = Tables(
        input_rows=ops.index(plan.input_rows, device),
        input_features=ops.index(plan.input_features, device),
        scale_flat=ops.index(plan.scale_flat, device),
        fixed=ops.const(fixed, like),
        weight_rows=ops.index(plan.weight_rows, device),
        weight_flat=ops.index(plan.weight_flat, device),
        const_rows=ops.index(plan.const_rows, device),
        observables=ops.index(plan.observables, device),
        feature_onehot=ops.const(onehots[0], like),
        scale_onehot=ops.const(onehots[1], like),
        weight_onehot=ops.const(onehots[2], like),
    )
    plan.cache[key] = out
    return out


def _factors(ops: Ops, tab: Tables, scale: Any, n: int) -> Any:
    """Per input row and qubit, the factor of the input feature, shape (rows, n)."""
    if scale is None:
        return tab.fixed * math.pi + ops.zeros((1, n), tab.fixed)
    grid = ops.permute(scale, 0, 2, 1).reshape(-1, n)  # (layers * features, n)
    return grid[tab.scale_flat] * (1 - tab.fixed) + tab.fixed * math.pi


def assemble(ops: Ops, plan: Plan, inputs: Any, scale: Any, theta: Any) -> Any:
    """All angles, shape (rows, n, batch): the batch is innermost, so that per-qubit factors
    broadcast along contiguous memory.

    :param ops: the array backend
    :param plan: the circuit's plan
    :param inputs: encoded features (batch, n, features_per_qubit)
    :param scale: ``input_scale`` (layers, n, features_per_qubit), or None for basis encoding
    :param theta: (layers, n, rotations), or (batch, layers, n, rotations)
    """
    batch, n = inputs.shape[0], inputs.shape[1]
    tab = tables(ops, plan, inputs)
    angles = ops.zeros((plan.shapes[3], n, batch), inputs)
    if plan.input_rows:
        x = ops.permute(inputs[:, :, tab.input_features], 2, 1, 0)  # (rows, n, batch)
        angles[tab.input_rows] = _factors(ops, tab, scale, n)[:, :, None] * x
    if theta.ndim == 4:  # one set of angles per sample
        grid = ops.permute(theta, 0, 1, 3, 2).reshape(batch, -1, n)
        angles[tab.weight_rows] = ops.permute(grid[:, tab.weight_flat], 1, 2, 0)
    else:
        grid = ops.permute(theta, 0, 2, 1).reshape(-1, n)
        angles[tab.weight_rows] = grid[tab.weight_flat][:, :, None]
    if plan.const_rows:
        angles[tab.const_rows] = math.pi
    return angles


def assemble_backward(
    ops: Ops, plan: Plan, grad: Any, inputs: Any, scale: Any, theta: Any, shared: Any = None
) -> tuple[Any, Any, Any]:
    """Gradients of inputs, input_scale and theta from the gradient of the angles.

    Sums over repeated uses (a feature re-uploaded in every layer) are products with the
    plan's one-hot matrices.

    :param grad: gradient of the loss with respect to the angles, (rows, n, batch)
    :param shared: the gradient of the weight rows already summed over the batch, (rows, n),
        for weights the batch shares (then ``grad`` holds only the per-sample rows)
    :return: gradients shaped like inputs, scale (None if scale is None) and theta
    """
    batch, n, features = inputs.shape
    tab = tables(ops, plan, inputs)
    d_inputs = ops.zeros((batch, n, features), inputs)
    d_scale = None if scale is None else ops.zeros(tuple(scale.shape), inputs)
    if plan.input_rows:
        g = grad[tab.input_rows]  # (rows, n, batch)
        weighted = (g * _factors(ops, tab, scale, n)[:, :, None]).reshape(len(plan.input_rows), -1)
        d_inputs = ops.permute((tab.feature_onehot @ weighted).reshape(features, n, batch), 2, 1, 0)
        if scale is not None:
            x = ops.permute(inputs[:, :, tab.input_features], 2, 1, 0)
            grid = tab.scale_onehot @ (g * x).sum(-1)  # (layers * features, n)
            d_scale = ops.permute(grid.reshape(scale.shape[0], scale.shape[2], n), 0, 2, 1)
    layers, _, rotations = theta.shape[-3:]
    g = grad[tab.weight_rows]  # (rows, n, batch)
    if theta.ndim == 4:
        grid = tab.weight_onehot @ ops.permute(g, 2, 0, 1)  # (batch, layers * rotations, n)
        d_theta = ops.permute(grid.reshape(batch, layers, rotations, n), 0, 1, 3, 2)
    else:
        summed = g.sum(-1) if shared is None else shared[tab.weight_rows]
        grid = tab.weight_onehot @ summed
        d_theta = ops.permute(grid.reshape(layers, rotations, n), 0, 2, 1)
    return d_inputs, d_scale, d_theta
