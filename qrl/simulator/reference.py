"""The reference simulator: a plain batched state vector, one gate at a time.

It is the specification of what a circuit computes and the fallback for any circuit the
fast paths do not take (trainable two-qubit gates, gates a user registered, weights of any
name). The state of a batch is a tensor of shape (batch, 2, ..., 2), one axis per wire (wire
0 first, the most significant bit, as in PennyLane); a gate is the contraction of its matrix
with the axes of its wires, and autograd differentiates everything.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from qrl.circuits import Circuit, gate
from qrl.circuits.gates import complex_dtype


def apply(state: torch.Tensor, matrix: torch.Tensor, wires: tuple[int, ...]) -> torch.Tensor:
    """Apply a gate to the given wires of a batched state.

    :param state: (batch, 2, ..., 2)
    :param matrix: (2^k, 2^k), or (batch, 2^k, 2^k) for one matrix per sample
    :param wires: the k wires, in the order of the matrix's tensor factors
    :return: the new state, same shape
    """
    k = len(wires)
    axes = [1 + w for w in wires]
    moved = torch.movedim(state, axes, list(range(-k, 0)))  # gate wires last
    shape = moved.shape
    flat = moved.reshape(shape[0], -1, 2**k)
    flat = flat @ matrix.transpose(-1, -2)  # (batch, rest, 2^k) times M^T
    return torch.movedim(flat.reshape(shape), list(range(-k, 0)), axes)


def run_reference(
    circuit: Circuit, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Expectation values of any circuit, (batch, circuit.n_outputs), in the real dtype of
    ``inputs``; differentiable with respect to inputs and weights by autograd.

    Consecutive single-qubit moments are multiplied into one 2x2 matrix per wire before they
    touch the state, and the readout takes each wire's 2x2 reduced density matrix: the same
    arithmetic in fewer passes over the 2^n amplitudes.

    :param circuit: the circuit
    :param inputs: encoded features, (batch, n_qubits, features_per_qubit)
    :param weights: tensors of the circuit's weight shapes; ``theta`` may carry the batch
    """
    batch, n = inputs.shape[0], circuit.n_qubits
    state = torch.zeros((batch, 2**n), dtype=complex_dtype(inputs.dtype), device=inputs.device)
    state[:, 0] = 1
    state = state.reshape(batch, *([2] * n))
    pending: torch.Tensor | None = None  # per wire, the single-qubit gates not yet applied
    for moment, angle in zip(circuit.moments, circuit.angles(inputs, weights), strict=True):
        spec = gate(moment.gate)
        if spec.wires == 1:  # (n, 2, 2), or (batch, n, 2, 2) for per-sample angles
            matrices = spec.matrix(angle, inputs.dtype).to(inputs.device)
            matrices = matrices.expand(n, 2, 2) if angle is None else matrices
            pending = matrices if pending is None else matrices @ pending
            continue
        state = _apply_wires(state, pending)
        pending = None
        if angle is None:  # one matrix for every pair of a fixed gate
            matrix = spec.matrix(None, inputs.dtype).to(inputs.device)
        for k, wires in enumerate(moment.targets(n)):
            if angle is not None:
                matrix = spec.matrix(angle[..., k], inputs.dtype)
            state = apply(state, matrix, wires)
    state = _apply_wires(state, pending)
    return _readout(circuit, state).to(inputs.dtype)


def _apply_wires(state: torch.Tensor, matrices: torch.Tensor | None) -> torch.Tensor:
    """Apply one 2x2 matrix per wire, (n, 2, 2) or (batch, n, 2, 2)."""
    if matrices is None:
        return state
    for q in range(matrices.shape[-3]):
        state = apply(state, matrices[..., q, :, :], (q,))
    return state


def _readout(circuit: Circuit, state: torch.Tensor) -> torch.Tensor:
    """<P> of each (Pauli, wire) of the readout, from the wire's reduced density matrix:
    rho = Tr_others |psi><psi|, <X> = 2 Re rho_10, <Y> = 2 Im rho_10, <Z> = rho_00 - rho_11."""
    batch = state.shape[0]
    values = []
    rhos: dict[int, torch.Tensor] = {}
    for name, wire in circuit.readout():
        if wire not in rhos:
            psi = torch.movedim(state, 1 + wire, 1).reshape(batch, 2, -1)
            rhos[wire] = psi @ psi.conj().transpose(-1, -2)  # (batch, 2, 2)
        rho = rhos[wire]
        if name == "X":
            values.append(2 * rho[:, 1, 0].real)
        elif name == "Y":
            values.append(2 * rho[:, 1, 0].imag)
        else:
            values.append((rho[:, 0, 0] - rho[:, 1, 1]).real)
    return torch.stack(values, -1)
