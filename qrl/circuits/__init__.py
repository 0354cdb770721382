"""Variational circuits described once, as data, and run by any executor.

- :mod:`~qrl.circuits.gates`: the gate table (matrix, trainable or not, shift rule,
  PennyLane and Qiskit names), which every executor reads;
- :mod:`~qrl.circuits.patterns`: entangling patterns (ring, chain, all, brick, range:R);
- :mod:`~qrl.circuits.model`: a circuit as moments of gates, the sources of their angles,
  readout and weight shapes;
- :mod:`~qrl.circuits.families`: circuit families by name (the shipped layered ansatz, and
  the user's: registered, from an entry point, or ``module:function``).
"""

from qrl.circuits.families import (
    CIRCUITS,
    ENCODINGS,
    features_per_qubit,
    layered,
    make_circuit,
    register_circuit,
)
from qrl.circuits.gates import GATES, Gate, gate, register_gate
from qrl.circuits.model import PAULIS, Circuit, InputAngle, Moment, WeightAngle
from qrl.circuits.patterns import PATTERNS, pattern_pairs, register_pattern

__all__ = [
    "CIRCUITS",
    "ENCODINGS",
    "GATES",
    "PATTERNS",
    "PAULIS",
    "Circuit",
    "Gate",
    "InputAngle",
    "Moment",
    "WeightAngle",
    "features_per_qubit",
    "gate",
    "layered",
    "make_circuit",
    "pattern_pairs",
    "register_circuit",
    "register_gate",
    "register_pattern",
]
