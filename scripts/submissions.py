"""Jobs and time per policy step: qrl's qiskit.remote against PennyLane-qiskit's device.

    python scripts/submissions.py [--backend fake_manila] [--batch 8] [--shots 1024] [--repeats 3]

Both run the CartPole policy circuit (4 qubits, <X>, <Y>, <Z> of every qubit) for a batch of
environments on the same fake IBM device through IBM Runtime's primitives (local testing
mode); every call to ``SamplerV2.run`` / ``EstimatorV2.run`` is counted as one job. Prints
the median seconds per step over the repeats and the jobs per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

warnings.simplefilter("ignore")

JOBS: list[int] = []


def _count_jobs() -> None:
    import qiskit_ibm_runtime

    for cls in (qiskit_ibm_runtime.EstimatorV2, qiskit_ibm_runtime.SamplerV2):
        run = cls.run

        def spy(self: Any, pubs: Any, *args: Any, _run: Any = run, **kwargs: Any) -> Any:
            JOBS.append(len(pubs))
            return _run(self, pubs, *args, **kwargs)

        cls.run = spy  # type: ignore[method-assign]


def _measure(step: Callable[[], Any], repeats: int) -> tuple[float, int]:
    step()  # transpile and warm up
    times, jobs = [], []
    for _ in range(repeats):
        JOBS.clear()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        jobs.append(len(JOBS))
    return statistics.median(times), max(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="fake_manila")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _count_jobs()
    import pennylane as qml

    from qrl.circuits import make_circuit
    from qrl.executors import make_executor
    from qrl.executors.backends import fake_backend
    from qrl.executors.pennylane_executor import quantum_function

    circuit = make_circuit("unentangled", 4, n_layers=2, encoding="rx", rotations="zyz")
    weights = circuit.init_weights(torch.Generator().manual_seed(0))
    inputs = torch.rand(args.batch, 4, 1, generator=torch.Generator().manual_seed(1))
    angles = circuit.angles(inputs, weights)
    device = qml.device("qiskit.remote", wires=4, backend=fake_backend(args.backend))
    node = qml.QNode(quantum_function(circuit), device, interface="torch", shots=args.shots)
    executor = make_executor("qiskit.remote", {"backend": args.backend, "shots": args.shots})
    rows = {
        "pennylane-qiskit qiskit.remote": _measure(lambda: node(*angles), args.repeats),
        "qrl qiskit.remote": _measure(
            lambda: executor(circuit, inputs, weights).detach(), args.repeats
        ),
    }
    print(f"{args.backend}, batch {args.batch}, {args.shots} shots, median of {args.repeats}:")
    for name, (seconds, jobs) in rows.items():
        print(f"  {name:32s} {jobs:3d} jobs per step  {seconds:6.2f} s per step")


if __name__ == "__main__":
    main()
