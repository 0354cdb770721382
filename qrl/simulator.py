"""Exact, batched simulation of :class:`~qrl.circuits.Circuit` in PyTorch (the "torch" executor).

Two paths, both differentiable by autograd and exact to floating point:

- **product states** (no two-qubit gate): every qubit stays pure and on its own, so its state
  is a Bloch vector (x, y, z) and each gate is a rotation of that vector. The cost is
  O(qubits x gates) real arithmetic, and the expectations <X>, <Y>, <Z> are the vector itself.
- **state vectors** (entangling circuits): a batched complex tensor of shape
  (batch, 2, ..., 2), one axis per wire, wire 0 first as in PennyLane.
"""

from __future__ import annotations

import functools
import math

import torch

from qrl.circuits import Circuit


class TorchSimulator:
    """The default executor: exact simulation in PyTorch, on the device of its inputs."""

    name = "torch"

    def __call__(self, circuit: Circuit, angles: list[torch.Tensor | None]) -> torch.Tensor:
        """Run ``circuit`` with the given per-moment angles.

        :param circuit: the circuit
        :param angles: per moment, (batch, n_qubits), (n_qubits,) or None (see
            :meth:`Circuit.angles`)
        :return: expectation values, shape (batch, circuit.n_outputs)
        """
        if circuit.entangling:
            return run_statevector(circuit, angles)
        return run_product(circuit, angles)


def run_product(circuit: Circuit, angles: list[torch.Tensor | None]) -> torch.Tensor:
    """Simulate a circuit without two-qubit gates as Bloch vectors, one per qubit."""
    ref = next(a for a in angles if a is not None)
    batch = max((a.shape[:-1] for a in angles if a is not None), key=len)
    zeros = ref.new_zeros((*batch, circuit.n_qubits))
    x, y, z = zeros, zeros, zeros + 1.0  # |0>
    for moment, theta in zip(circuit.moments, angles, strict=True):
        gate = moment.gate
        if gate == "H":
            x, y, z = z, -y, x
            continue
        assert theta is not None
        c, s = torch.cos(theta), torch.sin(theta)
        if gate == "RX":
            y, z = y * c - z * s, y * s + z * c
        elif gate == "RY":
            x, z = x * c + z * s, z * c - x * s
        elif gate == "RZ":
            x, y = x * c - y * s, x * s + y * c
        else:
            raise ValueError(f"gate {gate} cannot act on a product state")
    bloch = {"X": x, "Y": y, "Z": z}
    out = torch.stack([bloch[p] for p in circuit.observables], dim=-1)
    return out.reshape(*out.shape[:-2], circuit.n_outputs)


def _rotation_matrices(gate: str, theta: torch.Tensor) -> torch.Tensor:
    """2x2 complex matrices of RX/RY/RZ(theta), shape (*theta.shape, 2, 2)."""
    cdtype = torch.complex128 if theta.dtype == torch.float64 else torch.complex64
    c = torch.cos(theta / 2).to(cdtype)
    s = torch.sin(theta / 2).to(cdtype)
    zero = torch.zeros_like(c)
    if gate == "RX":
        rows = [[c, -1j * s], [-1j * s, c]]
    elif gate == "RY":
        rows = [[c, -s], [s, c]]
    elif gate == "RZ":
        rows = [[c - 1j * s, zero], [zero, c + 1j * s]]
    else:
        raise ValueError(f"unknown rotation {gate}")
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _apply_one_qubit(state: torch.Tensor, mat: torch.Tensor, wire: int) -> torch.Tensor:
    """Apply a (batched) 2x2 matrix to one wire of a (batch, 2, ..., 2) state."""
    moved = state.movedim(wire + 1, -1)
    if mat.dim() == 2:
        new = moved @ mat.transpose(-1, -2)
    else:
        view = (mat.shape[0],) + (1,) * (moved.dim() - 2) + (2, 2)
        new = (moved.unsqueeze(-2) @ mat.reshape(view).transpose(-1, -2)).squeeze(-2)
    return new.movedim(-1, wire + 1)


@functools.lru_cache(maxsize=64)
def _two_qubit_pattern(
    gate: str, pairs: tuple[tuple[int, int], ...], n_qubits: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A CNOT pattern as one gather index, a CZ pattern as one sign vector (on the CPU)."""
    dim = 2**n_qubits
    idx = torch.arange(dim)

    def mask(wire: int) -> int:
        return 1 << (n_qubits - 1 - wire)

    if gate == "CNOT":
        perm = idx.clone()
        for c, t in pairs:
            flip = torch.where(idx & mask(c) != 0, idx ^ mask(t), idx)
            perm = perm[flip]
        return perm, None
    sign = torch.ones(dim)
    for a, b in pairs:
        both = (idx & mask(a) != 0) & (idx & mask(b) != 0)
        sign = torch.where(both, -sign, sign)
    return None, sign


_HADAMARD = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2)


def run_statevector(circuit: Circuit, angles: list[torch.Tensor | None]) -> torch.Tensor:
    """Simulate any circuit as a batched state vector."""
    n = circuit.n_qubits
    ref = next(a for a in angles if a is not None)
    batch = max(a.shape[0] if a.dim() == 2 else 1 for a in angles if a is not None)
    cdtype = torch.complex128 if ref.dtype == torch.float64 else torch.complex64
    state = torch.zeros((batch, 2**n), dtype=cdtype, device=ref.device)
    state[:, 0] = 1.0
    state = state.reshape((batch,) + (2,) * n)
    for moment, theta in zip(circuit.moments, angles, strict=True):
        gate = moment.gate
        if gate in ("CNOT", "CZ"):
            perm, sign = _two_qubit_pattern(gate, moment.pairs, n)
            flat = state.reshape(batch, -1)
            if perm is not None:
                flat = flat[:, perm.to(ref.device)]
            else:
                assert sign is not None
                flat = flat * sign.to(device=ref.device, dtype=cdtype)
            state = flat.reshape(state.shape)
            continue
        if gate == "H":
            h = _HADAMARD.to(device=ref.device, dtype=cdtype)
            for q in range(n):
                state = _apply_one_qubit(state, h, q)
            continue
        assert theta is not None
        mats = _rotation_matrices(gate, theta)  # (..., n, 2, 2)
        for q in range(n):
            state = _apply_one_qubit(state, mats[..., q, :, :], q)
    return _expectations(state, circuit)


def _expectations(state: torch.Tensor, circuit: Circuit) -> torch.Tensor:
    """<P_q> for the circuit's readout, from a (batch, 2, ..., 2) state."""
    batch = state.shape[0]
    values = []
    for pauli, q in circuit.readout():
        moved = state.movedim(q + 1, 1).reshape(batch, 2, -1)
        a0, a1 = moved[:, 0], moved[:, 1]
        if pauli == "Z":
            v = (a0.abs() ** 2 - a1.abs() ** 2).sum(-1)
        else:
            cross = (a0.conj() * a1).sum(-1)
            v = 2 * (cross.real if pauli == "X" else cross.imag)
        values.append(v)
    return torch.stack(values, dim=-1)
