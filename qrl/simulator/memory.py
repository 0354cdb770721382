"""What a state-vector simulation needs in memory, checked before any work.

An entangling circuit on n qubits holds 2^n complex amplitudes per sample, and a training
pass keeps the state after every step for the backward pass. A circuit whose state cannot
fit at all is refused when the policy is built; a batch that would not fit is refused before
the simulator allocates it.
"""

from __future__ import annotations

import os
from pathlib import Path

from qrl.circuits import Circuit
from qrl.errors import QrlError
from qrl.simulator.product import takes as product_takes

ENCODER_HINT = (
    "use fewer qubits (policy.n_qubits), select features (policy.features), or put a "
    "classical encoder in front of a circuit of the size you choose (policy.encoder: linear, "
    "mlp or cnn, with policy.n_qubits)"
)


def total_memory() -> int:
    """Bytes of physical memory of this machine."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; the total elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return total_memory()


def size(n_bytes: int) -> str:
    """A byte count for people: 512 MiB, 8.0 TiB, or 2^k bytes beyond pebibytes."""
    if n_bytes >= 2**60:
        return f"2^{n_bytes.bit_length() - 1} bytes"
    value, unit = float(n_bytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if value >= 100 or unit == "B" else f"{value:.1f} {unit}"


def needs_state_vector(circuit: Circuit) -> bool:
    """Whether simulating the circuit holds 2^n amplitudes (everything but the product path)."""
    return not product_takes(circuit, False)


def check_simulable(circuit: Circuit) -> None:
    """Refuse a circuit whose state vector for a single sample exceeds this machine's memory.

    :raises QrlError: with the memory it would need
    """
    if not needs_state_vector(circuit):
        return
    need = 2**circuit.n_qubits * 8  # complex64 amplitudes of one sample
    have = total_memory()
    if need > have:
        raise QrlError(
            f"an entangled circuit of {circuit.n_qubits} qubits needs {size(need)} for a single "
            f"sample's state vector (2^{circuit.n_qubits} amplitudes); this machine has "
            f"{size(have)}: {ENCODER_HINT}"
        )


def check_batch(circuit: Circuit, batch: int, itemsize: int) -> None:
    """Refuse a batch whose states (one per step, kept for the backward pass) would not fit.

    :param circuit: the circuit
    :param batch: samples in the call
    :param itemsize: bytes of one complex amplitude (8 or 16)
    :raises QrlError: with the memory it would need
    """
    if circuit.n_qubits < 16 or not needs_state_vector(circuit):
        return  # at most 64 KiB per state and sample: never the problem
    need = batch * 2**circuit.n_qubits * itemsize * (len(circuit.moments) + 2)
    have = available_memory()
    if need > have:
        raise QrlError(
            f"simulating {circuit.n_qubits} entangled qubits on a batch of {batch} needs about "
            f"{size(need)} (2^{circuit.n_qubits} amplitudes per sample, kept for every step); "
            f"{size(have)} is available: lower the batch size, or {ENCODER_HINT}"
        )
