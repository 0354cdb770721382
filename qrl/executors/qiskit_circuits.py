"""A :class:`~qrl.circuits.Circuit` as a parametrised Qiskit circuit, packed side by side.

A *unit* is one policy circuit: the circuit on ``n`` qubits with its own angles, measured in
one Pauli basis (or, for exact expectation values, not measured). A template holds ``k``
units on disjoint qubits ``[j*n, (j+1)*n)``; its parameters are the units' angles in order,
each unit's in the order of :func:`angle_slots` (moment-major, then qubit or pair). Transpiled once
per template, a template runs every batch through parameter binding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qrl.circuits import Circuit
from qrl.errors import QrlError


def angle_slots(circuit: Circuit) -> list[tuple[int, int]]:
    """Every angle of one unit as (moment, target), in template order: moment-major, then
    the qubits (or pairs) of the moment."""
    n = circuit.n_qubits
    return [
        (i, k)
        for i, m in enumerate(circuit.moments)
        if m.angle is not None
        for k in range(len(m.targets(n)))
    ]


def n_angles(circuit: Circuit) -> int:
    """Angles of one unit: one per qubit (or pair) of every moment that takes an angle."""
    return len(angle_slots(circuit))


def _append_unit(qc: Any, circuit: Circuit, params: Sequence[Any], offset: int) -> None:
    """Append one unit's gates, each by its Qiskit name in the gate table."""
    i = 0
    for moment in circuit.moments:
        append = getattr(qc, moment.spec.qiskit)
        for wires in moment.targets(circuit.n_qubits):
            qubits = [offset + w for w in wires]
            if moment.angle is None:
                append(*qubits)
            else:
                append(params[i], *qubits)
                i += 1


def for_aer(template: Any, circuit: Circuit) -> Any:
    """A template as Aer runs it without a device: gates Aer does not know (iswap, ...)
    decomposed, and so are parametrised two-qubit gates (crx, cry, crz), into which Aer 0.17
    binds arrays of parameter values wrongly (it applied CRX(a) as the identity). For a
    device, transpiling decomposes them anyway."""
    from qiskit_aer import AerSimulator

    known = set(AerSimulator().configuration().basis_gates)
    names = {
        m.spec.qiskit
        for m in circuit.moments
        if m.spec.qiskit not in known or (m.spec.wires == 2 and m.spec.trainable)
    }
    while names & {inst.operation.name for inst in template.data}:
        decomposed = template.decompose(gates_to_decompose=sorted(names))
        if decomposed == template:  # a gate without a definition: Aer will name it
            break
        template = decomposed
    return template


def _rotate_to_z(qc: Any, pauli: str, qubit: int) -> None:
    """Rotate ``pauli`` onto Z, so a Z measurement reads it."""
    if pauli == "X":
        qc.h(qubit)
    elif pauli == "Y":
        qc.sdg(qubit)
        qc.h(qubit)


def template(circuit: Circuit, bases: Sequence[str | None]) -> Any:
    """A circuit of ``len(bases)`` units side by side.

    :param circuit: the policy circuit
    :param bases: per unit, the Pauli ("X", "Y", "Z") every qubit of it is measured in, or
        None for no measurement (exact expectation values)
    :return: a ``QuantumCircuit`` with parameters ``a[0..k*n_angles)`` and, when measured,
        a classical register ``c`` whose bit ``j*n + q`` is qubit ``q`` of unit ``j``
    """
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit import ParameterVector

    for m in circuit.moments:
        if not hasattr(QuantumCircuit, m.spec.qiskit):
            raise QrlError(
                f"gate {m.gate}: Qiskit's QuantumCircuit has no method {m.spec.qiskit!r} "
                "(the gate table's qiskit name)"
            )
    n, k, p = circuit.n_qubits, len(bases), n_angles(circuit)
    params = ParameterVector("a", k * p)
    qc = QuantumCircuit(QuantumRegister(k * n, "q"), name=f"{circuit.name}x{k}")
    measured = any(b is not None for b in bases)
    if measured:
        qc.add_register(ClassicalRegister(k * n, "c"))
    for j in range(k):
        _append_unit(qc, circuit, params[j * p : (j + 1) * p], j * n)
    if measured:
        qc.barrier()
        for j, basis in enumerate(bases):
            for q in range(n):
                _rotate_to_z(qc, str(basis), j * n + q)
        qc.measure(range(k * n), range(k * n))
    return qc


def observables(circuit: Circuit, k: int) -> list[Any]:
    """The readout of ``k`` unmeasured units as ``SparsePauliOp`` (unit-major, then the
    circuit's own output order)."""
    from qiskit.quantum_info import SparsePauliOp

    n = circuit.n_qubits
    return [
        SparsePauliOp.from_sparse_list([(pauli, [j * n + q], 1.0)], k * n)
        for j in range(k)
        for pauli, q in circuit.readout()
    ]


def report(transpiled: Any, units: int, n_qubits: int) -> dict[str, Any]:
    """Depth, gate counts and physical qubits of a transpiled template."""
    ops = {str(name): int(count) for name, count in transpiled.count_ops().items()}
    ops.pop("barrier", None)
    two_qubit = sum(
        1 for inst in transpiled.data if inst.operation.num_qubits == 2 and inst.name != "barrier"
    )
    layout = transpiled.layout
    physical = (
        sorted(layout.final_index_layout()[: units * n_qubits]) if layout is not None else None
    )
    return {
        "units": units,
        "logical_qubits": units * n_qubits,
        "depth": int(transpiled.depth(lambda inst: inst.operation.name != "barrier")),
        "gates": ops,
        "two_qubit_gates": two_qubit,
        "physical_qubits": physical,
    }
