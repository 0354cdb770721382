"""Exact, batched simulation of :class:`~qrl.circuits.Circuit` (the "torch" executor).

The simulator is built for the sizes of policy circuits (a handful of qubits, batches of 1 to
a few thousand), where the cost of each array call, not arithmetic, dominates:

- :mod:`~qrl.simulator.plan`: index tables per circuit; all angles gathered in a few calls;
- :mod:`~qrl.simulator.product`: circuits without two-qubit gates as Bloch vectors, with a
  closed-form backward pass (one autograd node for the whole circuit);
- :mod:`~qrl.simulator.compiled`: entangling circuits, weights shared or per sample, on the
  frame path's schedule, one compiled kernel (:mod:`~qrl.simulator.kernels`, Numba: the
  optional extra ``fast``) per step;
- :mod:`~qrl.simulator.frame`: entangling circuits whose weights the batch shares (every
  policy circuit): encodings as diagonal phases in a moving frame, the shared gates as
  batch-folded matrix products;
- :mod:`~qrl.simulator.statevector`: any entangling circuit, also with one set of weights
  per sample (the fast weight programmer), as batched state vectors;
- :mod:`~qrl.simulator.reference`: any circuit at all, one gate at a time with autograd:
  the specification the fast paths are tested against, and the fallback for circuits they
  do not take (trainable two-qubit gates, gates a user registered);
- :mod:`~qrl.simulator.backend`: the kernels run on NumPy views of CPU tensors and on
  PyTorch tensors on any other device (CUDA), so a GPU policy runs unchanged.

Results and gradients are exact to floating point, in float32 or float64; they are tested
against PennyLane's ``default.qubit``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from qrl.circuits import Circuit
from qrl.simulator import compiled, frame, product, statevector
from qrl.simulator.compiled import run_compiled
from qrl.simulator.frame import run_frame
from qrl.simulator.memory import check_batch, states_kept
from qrl.simulator.product import run_product
from qrl.simulator.reference import run_reference
from qrl.simulator.statevector import run_statevector

# The paths in order of preference; each declares the circuits it takes. The reference
# simulator takes every circuit.
PATHS: dict[str, Callable[[Circuit, bool], bool]] = {
    "product": product.takes,
    "compiled": compiled.takes,
    "frame": frame.takes,
    "statevector": statevector.takes,
    "reference": lambda circuit, per_sample: True,
}

_ROUTES: dict[tuple[int, bool, tuple[str, ...]], tuple[Circuit, str]] = {}


def route(circuit: Circuit, per_sample: bool, skip: tuple[str, ...] = ()) -> str:
    """The path that runs a circuit: the first of :data:`PATHS` that takes it.

    :param circuit: the circuit
    :param per_sample: whether ``theta`` carries a batch dimension
    :param skip: paths not to choose (for comparisons)
    """
    key = (id(circuit), per_sample, skip)
    hit = _ROUTES.get(key)  # by identity first: hashing a circuit is not free
    if hit is not None and hit[0] is circuit:
        return hit[1]
    if len(_ROUTES) > 256:
        _ROUTES.clear()
    name = next(n for n, takes in PATHS.items() if n not in skip and takes(circuit, per_sample))
    _ROUTES[key] = (circuit, name)
    return name


class TorchSimulator:
    """The default executor: exact simulation on the device of its inputs.

    :param force_torch: run the kernels on PyTorch tensors even on the CPU (the code path
        of CUDA tensors), for testing
    :param frame: run entangling circuits whose weights the batch shares on the frame path
        (:mod:`~qrl.simulator.frame`, by its compiled kernels where Numba is installed);
        False takes the general per-sample path, for comparison
    :param compiled: let the compiled path (:mod:`~qrl.simulator.compiled`) run the circuits
        it takes; False runs the frame path's NumPy kernels, for comparison
    """

    name = "torch"
    cost = None  # exact simulation sends no circuit anywhere

    def __init__(
        self, force_torch: bool = False, frame: bool = True, compiled: bool = True
    ) -> None:
        self.force_torch = force_torch
        self.frame = frame
        self.compiled = compiled
        self._skip = (() if compiled else ("compiled",)) + (() if frame else ("compiled", "frame"))

    def transpile_report(self, circuit: Circuit, batch: int = 1) -> None:
        """Nothing is transpiled."""
        return None

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
        theta = weights.get("theta")
        per_sample = theta is not None and theta.ndim == 4
        path = route(circuit, per_sample, self._skip)
        if path != "product":
            recording = torch.is_grad_enabled() and any(
                t.requires_grad for t in (inputs, *weights.values())
            )
            states = states_kept(circuit, path, recording)
            check_batch(circuit, inputs.shape[0], 2 * inputs.element_size(), states, inputs.device)
        if path == "reference":
            return run_reference(circuit, inputs, weights)
        assert theta is not None
        scale = weights.get("input_scale")
        run = {
            "product": run_product,
            "compiled": run_compiled,
            "frame": run_frame,
            "statevector": run_statevector,
        }[path]
        return run(circuit, inputs, scale, theta, self.force_torch)


__all__ = [
    "PATHS",
    "TorchSimulator",
    "route",
    "run_compiled",
    "run_frame",
    "run_product",
    "run_reference",
    "run_statevector",
]
