"""Circuits without two-qubit gates: one Bloch-vector rotation per qubit and sample.

Every qubit of an unentangled circuit stays pure and on its own, so its state is a Bloch
vector, each gate a rotation of it, and <X>, <Y>, <Z> the final vector itself: O(qubits x
gates) real arithmetic, exact.

The forward pass accumulates the prefix products P_m = R_m ... R_1 as three rows. For a loss
L of the final vector v = P e_z with gradient g, the invariance of the cross product under
rotations gives, for the angle of moment m with axis n_m,

    dL/dtheta_m = (P_m^T n_m) . (e_z x P^T g),

so the backward pass is a few vectorised operations on rows recorded on the way, not a
second pass through the gates.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from qrl.circuits import Circuit
from qrl.simulator.backend import Ops, device_of, needs_graph, ops_for, unwrap_all, wrap_all
from qrl.simulator.plan import Plan, assemble, assemble_backward, fast_path_takes, make_plan

_SQRT_HALF = 1 / math.sqrt(2)


def _rotate(rows: tuple[Any, Any, Any], axis: int, c: Any, s: Any) -> tuple[Any, Any, Any]:
    """Left-multiply 3x3 matrices, given as their three rows, by a rotation about an axis."""
    x, y, z = rows
    if axis == 0:
        return x, c * y - s * z, s * y + c * z
    if axis == 1:
        return c * x + s * z, y, c * z - s * x
    if axis == 2:
        return c * x - s * y, s * x + c * y, z
    return z, -y, x  # Hadamard: a rotation by pi about (x + z) / sqrt 2


def bloch_forward(ops: Ops, angles: Any, axes: tuple[int, ...], record: bool) -> tuple[Any, Any]:
    """Rotate (0, 0, 1) by every moment, for a batch of independent qubits.

    :param angles: (moments, qubits)
    :param axes: per moment, 0/1/2 for x/y/z or 3 for the Hadamard
    :param record: keep what the backward pass needs: then the whole rotation P is
        accumulated, else only its last column
    :return: the Bloch vectors (3, qubits); if recorded, P (3 rows, 3 columns, qubits) and
        the rows P_m^T n_m (moments, 3, qubits)
    """
    xp = ops.xp
    n = angles.shape[1]
    cos, sin = xp.cos(angles), xp.sin(angles)
    if record:
        rows = (ops.zeros((3, n), angles), ops.zeros((3, n), angles), ops.zeros((3, n), angles))
        for i in range(3):
            rows[i][i] = 1  # the identity
    else:
        rows = (ops.zeros((n,), angles), ops.zeros((n,), angles), ops.zeros((n,), angles) + 1)
    axis_rows = []
    for m, axis in enumerate(axes):
        rows = _rotate(rows, axis, cos[m], sin[m])
        if record:
            axis_rows.append(rows[axis] if axis < 3 else (rows[0] + rows[2]) * _SQRT_HALF)
    final = xp.stack(rows)
    if not record:
        return final, None
    return final[:, 2], (final, xp.stack(axis_rows))


def bloch_backward(ops: Ops, final: Any, axis_rows: Any, grad: Any) -> Any:
    """Gradient of the angles (moments, qubits) from that of the Bloch vectors (3, qubits)."""
    w = (final * grad[:, None]).sum(0)  # P^T g, (3, qubits)
    return axis_rows[:, 1] * w[0] - axis_rows[:, 0] * w[1]


def product_values(ops: Ops, plan: Plan, x: Any, s: Any, t: Any, record: bool) -> tuple[Any, Any]:
    """Expectation values (batch, n * observables) of an unentangled circuit, and the saved
    state of the backward pass if ``record``."""
    angles = assemble(ops, plan, x, s, t)
    rows, n, batch = angles.shape
    bloch, saved = bloch_forward(ops, angles.reshape(rows, n * batch), plan.axes, record)
    values = bloch[ops.index(plan.observables, device_of(x))]  # (observables, n * batch)
    return ops.permute(values.reshape(-1, n, batch), 2, 1, 0).reshape(batch, -1), saved


class ProductCircuit(torch.autograd.Function):
    """Inputs and weights to expectation values of an unentangled circuit, in one node."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        scale: torch.Tensor | None,
        theta: torch.Tensor,
        circuit: Circuit,
        force_torch: bool,
    ) -> torch.Tensor:
        ops = ops_for(inputs, force_torch)
        plan = make_plan(circuit)
        x, s, t = wrap_all(ops, inputs, scale, theta)
        values, saved = product_values(ops, plan, x, s, t, record=True)
        ctx.ops, ctx.plan, ctx.arrays, ctx.saved = ops, plan, (x, s, t), saved
        return ops.unwrap(values, inputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        ops, plan = ctx.ops, ctx.plan
        x, s, t = ctx.arrays
        batch, n = x.shape[0], x.shape[1]
        g = ops.wrap(grad).reshape(batch, n, len(plan.observables))
        full = ops.zeros((3, n * batch), x)
        full[ops.index(plan.observables, device_of(x))] = ops.permute(g, 2, 1, 0).reshape(
            -1, n * batch
        )
        final, axis_rows = ctx.saved
        d_angles = bloch_backward(ops, final, axis_rows, full)
        grads = assemble_backward(ops, plan, d_angles.reshape(-1, n, batch), x, s, t)
        return (*unwrap_all(ops, grads, grad), None, None)


def run_product(
    circuit: Circuit,
    inputs: torch.Tensor,
    scale: torch.Tensor | None,
    theta: torch.Tensor,
    force_torch: bool = False,
) -> torch.Tensor:
    """Expectation values of an unentangled circuit, (batch, circuit.n_outputs).

    :param circuit: a circuit without two-qubit gates
    :param inputs: encoded features, (batch, n_qubits, features_per_qubit)
    :param scale: ``input_scale``, or None for basis encoding
    :param theta: (layers, n_qubits, rotations) or (batch, layers, n_qubits, rotations)
    :param force_torch: run the kernels on PyTorch tensors even on the CPU
    """
    if needs_graph(inputs, scale, theta):
        out: torch.Tensor = ProductCircuit.apply(inputs, scale, theta, circuit, force_torch)
        return out
    ops = ops_for(inputs, force_torch)  # inference: no autograd node, nothing recorded
    x, s, t = wrap_all(ops, inputs, scale, theta)
    values, _ = product_values(ops, make_plan(circuit), x, s, t, record=False)
    return ops.unwrap(values, inputs)


__all__ = ["Plan", "run_product"]


def takes(circuit: Circuit, per_sample: bool) -> bool:
    """The circuits this path runs: no two-qubit gates, fast-path gates only."""
    return not circuit.entangling and fast_path_takes(circuit)
