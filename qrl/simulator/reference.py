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
from qrl.circuits.gates import complex_dtype, pauli


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

    :param circuit: the circuit
    :param inputs: encoded features, (batch, n_qubits, features_per_qubit)
    :param weights: tensors of the circuit's weight shapes; ``theta`` may carry the batch
    """
    batch, n = inputs.shape[0], circuit.n_qubits
    cdtype = complex_dtype(inputs.dtype)
    state = torch.zeros((batch, 2**n), dtype=cdtype, device=inputs.device)
    state[:, 0] = 1
    state = state.reshape(batch, *([2] * n))
    for moment, angle in zip(circuit.moments, circuit.angles(inputs, weights), strict=True):
        spec = gate(moment.gate)
        if angle is None:  # one matrix for every application of a fixed gate
            matrix = spec.matrix(None, inputs.dtype).to(inputs.device)
        for k, wires in enumerate(moment.targets(n)):
            if angle is not None:
                matrix = spec.matrix(angle[..., k], inputs.dtype)
            state = apply(state, matrix, wires)
    values = []
    for name, wire in circuit.readout():
        measured = apply(state, pauli(name, cdtype).to(inputs.device), (wire,))
        values.append((state.conj() * measured).reshape(batch, -1).sum(-1).real)
    return torch.stack(values, -1).to(inputs.dtype)
