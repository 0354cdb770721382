"""The gate table: every gate a circuit may use, described once.

Each :class:`Gate` holds what every executor needs to know about it: its matrix (as a
function of its angle, in PyTorch, so the reference simulator differentiates through it),
whether it takes a trainable angle, how the parameter-shift rule differentiates it, how to
draw it, and its PennyLane and Qiskit names. Executors look gates up here; none of them
interprets a gate name on its own. A user adds a gate with :func:`register_gate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from qrl.errors import QrlError, lookup

Matrix = Callable[[torch.Tensor | None, torch.dtype], torch.Tensor]

_PAULI_ENTRIES = {
    "I": ((1, 0), (0, 1)),
    "X": ((0, 1), (1, 0)),
    "Y": ((0, -1j), (1j, 0)),
    "Z": ((1, 0), (0, -1)),
}


def pauli(name: str, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """The 2x2 matrix of "I", "X", "Y" or "Z"."""
    return torch.tensor(_PAULI_ENTRIES[name], dtype=dtype)


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of a real one (complex64 for float32, complex128 for float64)."""
    return torch.complex64 if dtype in (torch.float32, torch.complex64) else torch.complex128


def rotation(axis: str) -> Matrix:
    """exp(-i angle / 2 P) for a Pauli P, batched over the angle's shape."""

    def matrix(angle: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        assert angle is not None
        cdtype = complex_dtype(dtype)
        half = (angle / 2)[..., None, None]
        eye, sigma = pauli("I", cdtype).to(angle.device), pauli(axis, cdtype).to(angle.device)
        return torch.cos(half) * eye - 1j * torch.sin(half) * sigma

    return matrix


def controlled(single: Matrix) -> Matrix:
    """|0><0| x I + |1><1| x U for a single-qubit matrix U (control first)."""

    def matrix(angle: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        u = single(angle, dtype)
        out = torch.zeros((*u.shape[:-2], 4, 4), dtype=u.dtype, device=u.device)
        out[..., 0, 0] = 1
        out[..., 1, 1] = 1
        out[..., 2:, 2:] = u
        return out

    return matrix


def fixed(entries: tuple[tuple[complex, ...], ...]) -> Matrix:
    """A gate without a parameter, given by its matrix."""

    def matrix(angle: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(entries, dtype=complex_dtype(dtype))

    return matrix


# d f / d a = sum of c * f(a + s) over the (c, s) of a rule.
TWO_TERM = ((0.5, math.pi / 2), (-0.5, -math.pi / 2))
# Controlled rotations have eigenvalues 0 and +-1/2: four terms (Anselmetti et al. 2021).
_C1, _C2 = (math.sqrt(2) + 1) / (4 * math.sqrt(2)), (math.sqrt(2) - 1) / (4 * math.sqrt(2))
FOUR_TERM = (
    (_C1, math.pi / 2),
    (-_C1, -math.pi / 2),
    (-_C2, 3 * math.pi / 2),
    (_C2, -3 * math.pi / 2),
)


@dataclass(frozen=True)
class Gate:
    """A gate of the table.

    :param name: the table key, upper case ("RX", "CNOT", ...)
    :param wires: 1, or 2 (control first for controlled gates)
    :param matrix: ``matrix(angle, real_dtype)``: the unitary, batched over the angle's shape
        (the angle is None for a gate without a parameter)
    :param trainable: whether the gate takes an angle
    :param pennylane: the PennyLane operation's class name (``qml.<name>``)
    :param qiskit: the ``QuantumCircuit`` method that appends it (``qc.<name>(angle, wires)``)
    :param shift_rule: the parameter-shift rule, ``(coefficient, shift)`` pairs
    :param symbols: how the drawing shows it on each wire
    """

    name: str
    wires: int
    matrix: Matrix
    trainable: bool
    pennylane: str
    qiskit: str
    shift_rule: tuple[tuple[float, float], ...] = ()
    symbols: tuple[str, ...] = ()

    def unitary(self, angle: float | None = None) -> torch.Tensor:
        """The complex128 matrix at one angle (for fixed gates, no angle)."""
        value = None if angle is None else torch.tensor(float(angle), dtype=torch.float64)
        return self.matrix(value, torch.float64)


GATES: dict[str, Gate] = {}


def register_gate(gate: Gate, replace: bool = False) -> Gate:
    """Add a gate to the table, so that circuits (and ``policy.entangler``) can name it.

    The matrix is checked to be unitary and the shift rule to give the derivative.

    :param gate: the gate; its name is upper-cased
    :param replace: allow registering a gate of a name already taken, when it is the same
        gate (the same matrix), as when a module that registers it is imported again; a
        different gate under a taken name is refused, since compiled tables and the fast
        paths rely on the gate a name had
    :return: the gate
    """
    name = gate.name.upper()
    old = GATES.get(name)
    if old is not None and not (replace and _same_matrix(old, gate)):
        raise QrlError(
            f"gate {name!r} is already registered"
            + ("" if not replace else " with a different matrix: give the new gate another name")
        )
    if gate.wires not in (1, 2):
        raise QrlError(f"gate {name!r}: wires must be 1 or 2, got {gate.wires}")
    if gate.trainable and not gate.shift_rule:
        raise QrlError(f"gate {name!r} takes an angle but has no parameter-shift rule")
    d = 2**gate.wires
    probe = gate.matrix(
        torch.tensor(0.3, dtype=torch.float64) if gate.trainable else None, torch.float64
    )
    eye = torch.eye(d, dtype=torch.complex128)
    if probe.shape != (d, d) or not torch.allclose(probe @ probe.mH, eye, atol=1e-9):
        raise QrlError(f"gate {name!r}: matrix must be a {d}x{d} unitary")
    if gate.trainable and not _shift_rule_holds(gate):
        raise QrlError(
            f"gate {name!r}: its shift rule {gate.shift_rule} does not give the derivative of "
            "its expectation values (rotations exp(-i a/2 P): TWO_TERM; controlled rotations: "
            "FOUR_TERM)"
        )
    GATES[name] = gate if gate.name == name else Gate(**{**gate.__dict__, "name": name})
    return GATES[name]


def _same_matrix(a: Gate, b: Gate) -> bool:
    if (a.wires, a.trainable) != (b.wires, b.trainable):
        return False
    angles = (0.3, -1.1) if a.trainable else (None,)
    return all(torch.allclose(a.unitary(x), b.unitary(x), atol=1e-12) for x in angles)


def _shift_rule_holds(gate: Gate) -> bool:
    """Whether sum c f(a + s) equals df/da for f(a) = <psi| U(a)^H O U(a) |psi>, a random
    state psi and Hermitian O, at a few angles."""
    d = 2**gate.wires
    gen = torch.Generator().manual_seed(0)
    psi = torch.randn(d, generator=gen, dtype=torch.complex128)
    o = torch.randn(d, d, generator=gen, dtype=torch.complex128)
    o = o + o.mH

    def f(angle: torch.Tensor) -> torch.Tensor:
        phi = gate.matrix(angle, torch.float64) @ psi
        return (phi.conj() @ o @ phi).real

    for value in (0.4, -1.3, 2.2):
        angle = torch.tensor(value, dtype=torch.float64, requires_grad=True)
        (exact,) = torch.autograd.grad(f(angle), angle)
        shifted = sum(
            c * f(torch.tensor(value + s, dtype=torch.float64)) for c, s in gate.shift_rule
        )
        if abs(float(shifted) - float(exact)) > 1e-8:
            return False
    return True


def gate(name: str) -> Gate:
    """The gate registered under ``name`` (case-insensitive)."""
    return lookup(GATES, str(name).upper(), "gate")


def two_qubit_gates() -> list[str]:
    """Names of the registered two-qubit gates, lower case (the choices of an entangler)."""
    return sorted(n.lower() for n, g in GATES.items() if g.wires == 2)


_S2 = 1 / math.sqrt(2)
for _gate in (
    Gate("H", 1, fixed(((_S2, _S2), (_S2, -_S2))), False, "Hadamard", "h", symbols=("H",)),
    Gate("RX", 1, rotation("X"), True, "RX", "rx", TWO_TERM, ("RX",)),
    Gate("RY", 1, rotation("Y"), True, "RY", "ry", TWO_TERM, ("RY",)),
    Gate("RZ", 1, rotation("Z"), True, "RZ", "rz", TWO_TERM, ("RZ",)),
    Gate(
        "CNOT",
        2,
        fixed(((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0))),
        False,
        "CNOT",
        "cx",
        symbols=("●", "X"),
    ),
    Gate(
        "CZ",
        2,
        fixed(((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, -1))),
        False,
        "CZ",
        "cz",
        symbols=("●", "●"),
    ),
    Gate("CRX", 2, controlled(rotation("X")), True, "CRX", "crx", FOUR_TERM, ("●", "RX")),
    Gate("CRY", 2, controlled(rotation("Y")), True, "CRY", "cry", FOUR_TERM, ("●", "RY")),
    Gate("CRZ", 2, controlled(rotation("Z")), True, "CRZ", "crz", FOUR_TERM, ("●", "RZ")),
):
    register_gate(_gate)
