"""Largest deviation between the torch executor and PennyLane's default.qubit, per circuit.

For every registered circuit and a set of options, random weights and a batch of random
inputs: outputs and gradients (of a weighted sum of all outputs, with respect to every
weight) in float64 on both executors, and the maximum absolute difference.

    python scripts/equivalence.py [--batch 32] [--qubits 1 4 6]
"""

from __future__ import annotations

import argparse
import itertools

import torch

from qrl.circuits import CIRCUITS, make_circuit
from qrl.executors import make_executor

OPTIONS: list[dict[str, object]] = [
    {},
    {"encoding": "euler", "rotations": "x", "observables": ["Z"]},
    {"encoding": "ry", "rotations": "xy", "reupload": False, "n_layers": 3},
    {"encoding": "basis", "observables": ["Z", "X"]},
]


def deviation(
    name: str, options: dict[str, object], n_qubits: int, batch: int
) -> tuple[float, float]:
    """Max |output difference| and max |gradient difference| for one circuit."""
    gen = torch.Generator().manual_seed(0)
    circuit = make_circuit(name, n_qubits, **options)
    weights = {
        k: (2 * torch.randn(s, generator=gen, dtype=torch.float64)).requires_grad_()
        for k, s in circuit.weight_shapes.items()
    }
    inputs = torch.randn(
        batch, n_qubits, circuit.features_per_qubit, generator=gen, dtype=torch.float64
    )
    if options.get("encoding") == "basis":
        inputs = (inputs > 0).to(torch.float64)
    results = []
    for executor in ("torch", "default.qubit"):
        out = make_executor(executor)(circuit, inputs, weights)
        mix = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads = torch.autograd.grad((out * mix).sum(), list(weights.values()))
        results.append((out.detach(), grads))
    (out_a, grads_a), (out_b, grads_b) = results
    d_out = float((out_a - out_b).abs().max())
    d_grad = max(float((a - b).abs().max()) for a, b in zip(grads_a, grads_b, strict=True))
    return d_out, d_grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--qubits", type=int, nargs="+", default=[1, 4, 6])
    args = parser.parse_args()
    print("| circuit | options | qubits | max output diff | max gradient diff |")
    print("|---|---|---:|---:|---:|")
    worst = 0.0
    for name, options, n in itertools.product(sorted(CIRCUITS), OPTIONS, args.qubits):
        d_out, d_grad = deviation(name, options, n, args.batch)
        worst = max(worst, d_out, d_grad)
        print(f"| {name} | {options or 'defaults'} | {n} | {d_out:.1e} | {d_grad:.1e} |")
    print(f"\nworst deviation {worst:.1e} (float64, batch {args.batch})")


if __name__ == "__main__":
    main()
