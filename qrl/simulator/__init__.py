"""Exact, batched simulation of :class:`~qrl.circuits.Circuit` (the "torch" executor).

The simulator is built for the sizes of policy circuits (a handful of qubits, batches of 1 to
a few thousand), where the cost of each array call, not arithmetic, dominates:

- :mod:`~qrl.simulator.plan`: index tables per circuit; all angles gathered in a few calls;
- :mod:`~qrl.simulator.product`: circuits without two-qubit gates as Bloch vectors, with a
  closed-form backward pass (one autograd node for the whole circuit);
- :mod:`~qrl.simulator.frame`: entangling circuits whose weights the batch shares (every
  policy circuit): encodings as diagonal phases in a moving frame, the shared gates as
  batch-folded matrix products;
- :mod:`~qrl.simulator.statevector`: any entangling circuit, also with one set of weights
  per sample (the fast weight programmer), as batched state vectors;
- :mod:`~qrl.simulator.backend`: the kernels run on NumPy views of CPU tensors and on
  PyTorch tensors on any other device (CUDA), so a GPU policy runs unchanged.

Results and gradients are exact to floating point, in float32 or float64; they are tested
against PennyLane's ``default.qubit``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from qrl.circuits import Circuit
from qrl.simulator.frame import run_frame
from qrl.simulator.plan import make_plan
from qrl.simulator.product import run_product
from qrl.simulator.statevector import run_statevector


class TorchSimulator:
    """The default executor: exact simulation on the device of its inputs.

    :param force_torch: run the kernels on PyTorch tensors even on the CPU (the code path
        of CUDA tensors), for testing
    :param frame: run entangling circuits whose weights the batch shares on the frame path
        (:mod:`~qrl.simulator.frame`); False takes the general per-sample path, for
        comparison
    """

    name = "torch"

    def __init__(self, force_torch: bool = False, frame: bool = True) -> None:
        self.force_torch = force_torch
        self.frame = frame

    def __call__(
        self, circuit: Circuit, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Run ``circuit`` on a batch of encoded inputs.

        :param circuit: the circuit
        :param inputs: encoded features, shape (batch, n_qubits, features_per_qubit)
        :param weights: tensors with the circuit's weight shapes; ``theta`` may carry the
            batch dimension (one set of angles per sample)
        :return: expectation values, shape (batch, circuit.n_outputs)
        """
        scale = weights.get("input_scale")
        theta = weights["theta"]
        if make_plan(circuit).entangling:
            if theta.ndim == 3 and self.frame:
                return run_frame(circuit, inputs, scale, theta, self.force_torch)
            return run_statevector(circuit, inputs, scale, theta, self.force_torch)
        return run_product(circuit, inputs, scale, theta, self.force_torch)


__all__ = ["TorchSimulator", "run_frame", "run_product", "run_statevector"]
