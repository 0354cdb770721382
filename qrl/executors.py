"""Executors by name: "torch" (the built-in exact simulator) or any PennyLane device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch

from qrl.circuits import Circuit
from qrl.errors import QrlError


class Executor(Protocol):
    """Runs a circuit on a batch of encoded inputs and returns its expectation values.

    ``inputs`` has shape (batch, n_qubits, features_per_qubit); ``weights`` holds tensors of
    the circuit's weight shapes (``theta`` may carry the batch dimension); the result has
    shape (batch, circuit.n_outputs).
    """

    name: str

    def __call__(
        self, circuit: Circuit, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor: ...


def make_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """Build an executor by name.

    :param name: "torch", or a PennyLane device name such as "default.qubit"
    :param options: for PennyLane devices, ``diff_method``, ``shots`` and ``device_options``
    :return: the executor
    """
    options = dict(options or {})
    if name == "torch":
        if options:
            raise QrlError(f"the 'torch' executor takes no options, got {sorted(options)}")
        from qrl.simulator import TorchSimulator

        return TorchSimulator()
    from qrl.pennylane_executor import PennyLaneExecutor

    allowed = {"diff_method", "shots", "device_options"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise QrlError(f"unknown executor options {unknown}; valid: {sorted(allowed)}")
    return PennyLaneExecutor(name, **options)
