"""Run a :class:`~qrl.circuits.Circuit` on any PennyLane device, broadcasting over the batch.

The same description and the same angles as the torch simulator; PennyLane is what reaches
shots, noise models and hardware, and it is the reference the simulator is tested against.
One QNode call runs a whole batch (parameter broadcasting), never one call per sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from qrl.circuits import Circuit
from qrl.errors import QrlError, choices_hint
from qrl.executors.backends import BRAKET_EXTRA, IBM_EXTRA
from qrl.executors.cost import Cost
from qrl.presets import bad_value, whole_number


def available_devices() -> list[str]:
    """Names of the PennyLane devices installed (through plugins) on this machine."""
    import pennylane as qml

    return sorted(qml.plugin_devices)


def apply_moments(circuit: Circuit, angles: list[Any]) -> None:
    """Queue the circuit's gates inside a PennyLane quantum function (each gate by its
    PennyLane name in the gate table)."""
    import pennylane as qml

    n = circuit.n_qubits
    for moment, theta in zip(circuit.moments, angles, strict=True):
        operation = getattr(qml, moment.spec.pennylane)
        for k, wires in enumerate(moment.targets(n)):
            if theta is None:
                operation(wires=list(wires))
            else:
                operation(theta[..., k], wires=list(wires))


def measurements(circuit: Circuit) -> list[Any]:
    """Expectation values of the circuit's readout, in output order."""
    import pennylane as qml

    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    return [qml.expval(paulis[p](q)) for p, q in circuit.readout()]


def quantum_function(circuit: Circuit) -> Callable[..., list[Any]]:
    """The circuit as a PennyLane quantum function of its per-moment angles."""

    def qfunc(*angles: Any) -> list[Any]:
        apply_moments(circuit, list(angles))
        return measurements(circuit)

    return qfunc


class PennyLaneExecutor:
    """Executor for a PennyLane device chosen by name.

    :param device: a PennyLane device name, e.g. "default.qubit" or "lightning.qubit"
    :param diff_method: PennyLane's differentiation method ("best", "backprop", "adjoint",
        "parameter-shift", ...)
    :param shots: None for exact expectations, or a number of shots
    :param device_options: extra keyword arguments of ``qml.device``
    """

    def __init__(
        self,
        device: str,
        diff_method: str = "best",
        shots: int | None = None,
        device_options: Mapping[str, Any] | None = None,
    ) -> None:
        devices = available_devices()
        if device not in devices:
            for prefix, extra in (("braket.", BRAKET_EXTRA), ("qiskit.", IBM_EXTRA)):
                if device.startswith(prefix) and not any(d.startswith(prefix) for d in devices):
                    raise QrlError(
                        f"executor {device!r} needs a PennyLane plugin; install it with: {extra}"
                    )
            raise QrlError(
                f"unknown executor {device!r}; use 'torch' or a PennyLane device "
                f"({choices_hint(device, devices)})"
            )
        self.name = device
        if not isinstance(diff_method, str):
            raise bad_value(
                "executor option diff_method", diff_method, "a PennyLane method, e.g. best"
            )
        self.diff_method = diff_method
        self.shots = whole_number(shots, "executor option shots", 1, allow_none=True)
        if device_options is not None and not isinstance(device_options, Mapping):
            raise bad_value("executor option device_options", device_options, "a mapping")
        self.device_options = dict(device_options or {})
        self._qnodes: dict[Circuit, Any] = {}
        self.cost = Cost()

    def transpile_report(self, circuit: Circuit, batch: int = 1) -> None:
        """PennyLane devices are given the circuit as it is: nothing to report."""
        return None

    def qnode(self, circuit: Circuit) -> Any:
        """The (cached) QNode that runs ``circuit`` on this device."""
        if circuit not in self._qnodes:
            import pennylane as qml

            for m in circuit.moments:
                if not hasattr(qml, m.spec.pennylane):
                    raise QrlError(
                        f"gate {m.gate}: PennyLane has no operation {m.spec.pennylane!r} "
                        "(the gate table's pennylane name)"
                    )

            dev = qml.device(self.name, wires=circuit.n_qubits, **self.device_options)
            self._qnodes[circuit] = qml.QNode(
                quantum_function(circuit),
                dev,
                interface="torch",
                diff_method=self.diff_method,
                shots=self.shots,
            )
        return self._qnodes[circuit]

    def __call__(
        self, circuit: Circuit, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Run ``circuit`` in one broadcast QNode call (see :class:`qrl.executors.Executor`)."""
        angles = circuit.angles(inputs, weights)
        start = time.perf_counter()
        result = self.qnode(circuit)(*angles)
        cost, batch = self.cost, inputs.shape[0]
        cost.seconds += time.perf_counter() - start
        cost.submissions += 1
        cost.circuits += batch
        cost.policy_circuits += batch
        cost.shots += batch * (self.shots or 0)
        out = torch.stack([torch.as_tensor(r) for r in result], dim=-1)
        out = out.reshape(inputs.shape[0], circuit.n_outputs)
        return out.to(device=inputs.device, dtype=inputs.dtype)
