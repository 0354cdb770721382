"""A circuit family and a gate defined outside qrl, used from the command line.

``docs/circuits.md`` ("Adding a circuit") walks through this file. Name the family in an agent
preset as ``circuit: examples/my_circuits.py:iswap_brick`` (a path from the folder you run
``qrl`` in) or, with this folder on ``PYTHONPATH``, as ``my_circuits:iswap_brick``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qrl.circuits import (
    Circuit,
    Gate,
    InputAngle,
    Moment,
    WeightAngle,
    pattern_pairs,
    register_circuit,
    register_gate,
)
from qrl.circuits.gates import fixed

# iSWAP swaps |01> and |10> with a phase i. It is a permutation with phases, so qrl's fast
# simulator paths take it; PennyLane and Qiskit know it by these names.
ISWAP = register_gate(
    Gate(
        name="ISWAP",
        wires=2,
        matrix=fixed(((1, 0, 0, 0), (0, 0, 1j, 0), (0, 1j, 0, 0), (0, 0, 0, 1))),
        trainable=False,
        pennylane="ISWAP",
        qiskit="iswap",
        symbols=("iSW", "iSW"),
    ),
    replace=True,
)


def iswap_brick(
    n_qubits: int,
    n_layers: int = 2,
    observables: Sequence[str] = ("X", "Y", "Z"),
    **options: Any,
) -> Circuit:
    """Hadamards, then per layer: RZ(scale x feature), a trainable RY per qubit, and an
    iSWAP brick wall. Options this family has no use for (encoding, rotations, ...) are
    ignored.

    :param n_qubits: qubits, one feature each
    :param n_layers: layers
    :param observables: Paulis measured on every qubit
    :return: the circuit
    """
    moments = [Moment("H")]
    for layer in range(n_layers):
        moments.append(Moment("RZ", InputAngle(feature=0, scale_layer=layer, scale_index=0)))
        moments.append(Moment("RY", WeightAngle(layer=layer, index=0)))
        pairs = pattern_pairs("brick", n_qubits, layer)
        if pairs:
            moments.append(Moment("ISWAP", pairs=pairs))
    shapes = {"theta": (n_layers, n_qubits, 1), "input_scale": (n_layers, n_qubits, 1)}
    return Circuit("iswap_brick", n_qubits, 1, tuple(moments), tuple(observables), shapes)


register_circuit("iswap_brick", iswap_brick, replace=True)
