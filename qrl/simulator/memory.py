"""What a state-vector simulation needs in memory, checked before any work.

An entangling circuit on n qubits holds 2^n complex amplitudes per sample, and a training
pass keeps the state after every step for the backward pass. A circuit whose state cannot
fit at all is refused when the policy is built; a batch that would not fit is refused before
the simulator allocates it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

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


def available_memory(device: torch.device | None = None) -> int:
    """Bytes of memory available now on a device: a GPU's free memory, or the CPU's
    (MemAvailable on Linux; the total elsewhere)."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
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


def states_kept(circuit: Circuit, path: str, recording: bool) -> int:
    """How many states of the batch a call holds at once: one per step kept for the backward
    pass (one per gate application on the reference path, one per moment on the fast
    paths), a few without a backward pass."""
    if not recording:
        return 3
    if path == "reference":
        applications = sum(len(m.targets(circuit.n_qubits)) for m in circuit.moments)
        return applications + len(circuit.readout()) + 2
    return len(circuit.moments) + 2


def check_batch(
    circuit: Circuit, batch: int, itemsize: int, states: int, device: torch.device
) -> None:
    """Refuse a batch whose states would not fit in the memory available on its device.

    :param circuit: the circuit
    :param batch: samples in the call
    :param itemsize: bytes of one complex amplitude (8 or 16)
    :param states: states held at once (:func:`states_kept`)
    :param device: where the arrays live (the CPU's memory, or a GPU's)
    :raises QrlError: with the memory it would need
    """
    need = batch * 2**circuit.n_qubits * itemsize * states
    if need < 2**28:  # under 256 MiB: not worth asking the system
        return
    have = available_memory(device)
    if need > have:
        raise QrlError(
            f"simulating {circuit.n_qubits} entangled qubits on a batch of {batch} needs about "
            f"{size(need)} (2^{circuit.n_qubits} amplitudes per sample, {states} states kept "
            f"for the backward pass); {size(have)} is available: lower the batch size, or "
            f"{ENCODER_HINT}"
        )
