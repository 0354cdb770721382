"""Executors by name: "torch" (the built-in exact simulator, :mod:`qrl.simulator`),
"qiskit.aer" and "qiskit.remote" (shots, IBM devices' noise, IBM Quantum hardware), or any
PennyLane device.

- :mod:`~qrl.executors.pennylane_executor`: any PennyLane device, one broadcast call a batch;
- :mod:`~qrl.executors.qiskit_executor`: Qiskit's Aer and IBM Quantum devices, one job a
  batch, packing, parameter shift; :mod:`~qrl.executors.qiskit_circuits` builds the templates;
- :mod:`~qrl.executors.backends`: fake IBM devices offline, IBM Quantum devices online,
  credentials; :mod:`~qrl.executors.jobs`: submissions with retries and time limits;
- :mod:`~qrl.executors.cost`: circuits, shots, submissions and time spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch

from qrl.circuits import Circuit
from qrl.errors import QrlError
from qrl.executors.cost import Cost


class Executor(Protocol):
    """Runs a circuit on a batch of encoded inputs and returns its expectation values.

    ``inputs`` has shape (batch, n_qubits, features_per_qubit); ``weights`` holds tensors of
    the circuit's weight shapes (``theta`` may carry the batch dimension); the result has
    shape (batch, circuit.n_outputs).

    :ivar name: the executor's name ("torch", "default.qubit", "qiskit.aer", ...)
    """

    name: str

    @property
    def cost(self) -> Cost | None:
        """What the executor spent so far; None for exact simulation."""
        ...

    def __call__(
        self, circuit: Circuit, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor: ...

    def transpile_report(self, circuit: Circuit, batch: int = 1) -> dict[str, Any] | None:
        """Depth, gate counts, qubits and packing of the device circuits for ``batch``
        samples; None where nothing is transpiled."""
        ...


def make_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """Build an executor by name.

    :param name: "torch"; "qiskit.aer" or "qiskit.remote" (see
        :class:`~qrl.executors.qiskit_executor.QiskitExecutor`); or any other PennyLane
        device name such as "default.qubit", "default.mixed", "lightning.qubit" or
        "braket.local.qubit"
    :param options: for qiskit executors, those of ``QiskitExecutor``; for PennyLane
        devices, ``diff_method``, ``shots`` and ``device_options``
    :return: the executor
    """
    options = dict(options or {})
    from qrl.executors.backends import check_no_secrets

    check_no_secrets(options)
    if name == "torch":
        if options:
            raise QrlError(f"the 'torch' executor takes no options, got {sorted(options)}")
        from qrl.simulator import TorchSimulator

        return TorchSimulator()
    from qrl.executors.qiskit_executor import OPTIONS, QISKIT_EXECUTORS, QiskitExecutor

    if name in QISKIT_EXECUTORS:
        _check_options(options, OPTIONS)
        return QiskitExecutor(name, **options)
    from qrl.executors.pennylane_executor import PennyLaneExecutor

    _check_options(options, ("diff_method", "shots", "device_options"))
    return PennyLaneExecutor(name, **options)


def option_defaults(name: str) -> dict[str, Any]:
    """What the options of an executor left out mean: the defaults of its constructor, the
    one source that the real run and a dry run's cost both read.

    :param name: an executor name
    :return: option -> default (empty for "torch")
    """
    if name == "torch":
        return {}
    from qrl.executors.qiskit_executor import QISKIT_EXECUTORS
    from qrl.executors.qiskit_executor import option_defaults as qiskit_defaults

    if name in QISKIT_EXECUTORS:
        return qiskit_defaults()
    import inspect

    from qrl.executors.pennylane_executor import PennyLaneExecutor

    parameters = inspect.signature(PennyLaneExecutor.__init__).parameters
    return {n: p.default for n, p in parameters.items() if p.default is not p.empty}


def _check_options(options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise QrlError(f"unknown executor options {unknown}; valid: {sorted(allowed)}")
