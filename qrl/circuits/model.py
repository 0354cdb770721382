"""A variational circuit as data: moments of gates, where their angles come from, readout.

A circuit is a list of *moments*. A moment applies one gate of the table
(:mod:`qrl.circuits.gates`) either to every qubit at once (a single-qubit gate, a rotation
whose angle differs per qubit) or to each (control, target) pair of an entangling pattern
(a two-qubit gate, with one angle per pair when it takes one). Angles come from the encoded
inputs (times a trainable input scale) or from trainable weights. Executors only apply gates
to the angles computed here (:meth:`Circuit.angles`), so they cannot disagree about the
circuit.

Weights are a dict of tensors whose shapes the circuit declares, as PennyLane templates do:

- ``input_scale`` (encoding layers, qubits, features per qubit), initialised to 1;
- ``theta`` (layers, qubits, rotations per layer), the variational angles of single-qubit
  gates;
- any other name, e.g. ``phi`` (layers, pairs, 1) for trainable entanglers.

``theta`` may carry leading batch dimensions (one set of angles per sample), which the fast
weight programmer uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from qrl.circuits.gates import GATES, Gate
from qrl.errors import QrlError

PAULIS = ("X", "Y", "Z")


@dataclass(frozen=True)
class InputAngle:
    """Angle on qubit q = ``input_scale[scale_layer, q, scale_index] * inputs[..., q, feature]``.

    ``scale_layer`` is None for fixed encodings (basis): angle = pi * input.
    """

    feature: int
    scale_layer: int | None
    scale_index: int


@dataclass(frozen=True)
class WeightAngle:
    """Angle on target k (a qubit, or the k-th pair) = ``weights[name][..., layer, k, index]``."""

    layer: int
    index: int
    name: str = "theta"


@dataclass(frozen=True)
class Moment:
    """One gate on every qubit, or on every pair of an entangling pattern.

    :param gate: a name of the gate table (:data:`qrl.circuits.gates.GATES`)
    :param angle: where the angles come from (gates that take one)
    :param pairs: (control, target) wires of a two-qubit gate, in order of application
    """

    gate: str
    angle: InputAngle | WeightAngle | None = None
    pairs: tuple[tuple[int, int], ...] = ()

    @property
    def spec(self) -> Gate:
        """The gate's entry in the table."""
        found = GATES.get(self.gate)
        if found is None:
            raise QrlError(f"gate {self.gate!r} is not registered (valid: {sorted(GATES)})")
        return found

    def targets(self, n_qubits: int) -> list[tuple[int, ...]]:
        """The wires of each application of the gate: every qubit, or every pair."""
        if self.spec.wires == 1:
            return [(q,) for q in range(n_qubits)]
        return [tuple(p) for p in self.pairs]


@dataclass(frozen=True)
class Circuit:
    """A variational circuit: moments, readout and weight shapes.

    :param name: registry name of the circuit family
    :param n_qubits: number of qubits (wires 0..n-1)
    :param features_per_qubit: encoded features per qubit; inputs have shape (..., n_qubits, this)
    :param moments: the gates, in order
    :param observables: Pauli observables measured on every qubit; outputs are ordered
        qubit-major: [P0 on q0, P1 on q0, ..., P0 on q1, ...]
    :param weight_shapes: trainable tensor shapes, by name
    """

    name: str
    n_qubits: int
    features_per_qubit: int
    moments: tuple[Moment, ...]
    observables: tuple[str, ...]
    weight_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False)
    # The weight shapes as a hashable key: two circuits with the same moments but other
    # shapes index their weights differently, so they must not share cached tables.
    shapes_key: tuple[tuple[str, tuple[int, ...]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        key = tuple(
            sorted((str(k), tuple(int(d) for d in v)) for k, v in self.weight_shapes.items())
        )
        object.__setattr__(self, "shapes_key", key)
        if self.n_qubits < 1:
            raise QrlError(f"a circuit needs at least one qubit, got {self.n_qubits}")
        bad = [o for o in self.observables if o not in PAULIS]
        if not self.observables or bad:
            raise QrlError(f"observables must be among X, Y, Z, got {list(self.observables)}")
        for m in self.moments:
            spec = m.spec
            if spec.trainable != (m.angle is not None):
                need = "needs an angle" if spec.trainable else "takes no angle"
                raise QrlError(f"gate {m.gate} {need} (circuit {self.name!r})")
            if spec.wires == 2 and not all(
                c != t and 0 <= c < self.n_qubits and 0 <= t < self.n_qubits for c, t in m.pairs
            ):
                raise QrlError(f"gate {m.gate}: pairs {m.pairs} outside {self.n_qubits} qubits")
            self._check_angle(m)

    def _check_angle(self, m: Moment) -> None:
        """Every angle a moment reads lies inside a declared weight."""
        a, shapes = m.angle, self.weight_shapes
        where = f"circuit {self.name!r}, gate {m.gate}"
        if isinstance(a, InputAngle):
            if not 0 <= a.feature < self.features_per_qubit:
                raise QrlError(
                    f"{where}: feature {a.feature} of {self.features_per_qubit} per qubit"
                )
            if a.scale_layer is None:
                return
            shape = tuple(shapes.get("input_scale", ()))
            if not (
                len(shape) == 3
                and 0 <= a.scale_layer < shape[0]
                and shape[1] == self.n_qubits
                and 0 <= a.scale_index < shape[2]
            ):
                raise QrlError(
                    f"{where}: reads input_scale[{a.scale_layer}, :, {a.scale_index}] of "
                    f"{self.n_qubits} qubits, but input_scale is declared {shape or 'nowhere'}"
                )
        elif isinstance(a, WeightAngle):
            count = len(m.targets(self.n_qubits))
            shape = tuple(shapes.get(a.name, ()))
            if not (
                len(shape) == 3
                and 0 <= a.layer < shape[0]
                and count <= shape[1]
                and 0 <= a.index < shape[2]
            ):
                raise QrlError(
                    f"{where}: reads {a.name}[{a.layer}, :{count}, {a.index}], but {a.name} is "
                    f"declared {shape or 'nowhere'} (weights are (layers, targets, per target))"
                )

    @property
    def n_outputs(self) -> int:
        """Number of expectation values the circuit returns."""
        return self.n_qubits * len(self.observables)

    @property
    def entangling(self) -> bool:
        """Whether any two-qubit gate acts (the state may leave the product manifold)."""
        return any(m.spec.wires == 2 and m.pairs for m in self.moments)

    def readout(self) -> list[tuple[str, int]]:
        """The measured (Pauli, wire) pairs, in output order."""
        return [(p, q) for q in range(self.n_qubits) for p in self.observables]

    def draw(self) -> str:
        """Text drawing, one line per wire: x an (input-scaled) feature, θ a weight.

        Each two-qubit gate gets its own column (the gate's symbols on control and target).
        """
        columns: list[dict[int, str]] = []
        for m in self.moments:
            spec = m.spec
            if spec.wires == 2:
                first, second = (*spec.symbols, spec.name, spec.name)[:2]
                arg = "(φ)" if m.angle is not None else ""
                for c, t in m.pairs:
                    col = {w: "│" for w in range(min(c, t) + 1, max(c, t))}
                    col |= {c: first, t: second + arg}
                    columns.append(col)
                continue
            a = m.angle
            if isinstance(a, InputAngle):
                feature = f"x{a.feature}" if self.features_per_qubit > 1 else "x"
                arg = f"(π{feature})" if a.scale_layer is None else f"({feature})"
            else:
                arg = "(θ)" if isinstance(a, WeightAngle) else ""
            columns.append(dict.fromkeys(range(self.n_qubits), m.gate + arg))
        widths = [max(len(v) for v in col.values()) for col in columns]
        readout = " ".join(f"<{p}>" for p in self.observables)
        lines = []
        for q in range(self.n_qubits):
            cells = [col.get(q, "─").ljust(w, "─") for col, w in zip(columns, widths, strict=True)]
            lines.append(f"{q}: ─" + "─".join(cells) + f"─┤ {readout}")
        return "\n".join(lines)

    def init_weights(
        self, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> dict[str, torch.Tensor]:
        """Initial weights: input scales at 1, angles uniform in [-pi, pi).

        :param generator: random generator for reproducible initialisation
        :param dtype: dtype of the returned tensors
        :return: weights by name, with the declared shapes
        """
        weights = {}
        for name, shape in self.weight_shapes.items():
            if name == "input_scale":
                weights[name] = torch.ones(shape, dtype=dtype)
            else:
                u = torch.rand(shape, generator=generator, dtype=dtype)
                weights[name] = (2 * u - 1) * math.pi
        return weights

    def angles(
        self, inputs: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor | None]:
        """Angles of every moment (None for gates without a parameter).

        :param inputs: encoded features, shape (batch, n_qubits, features_per_qubit)
        :param weights: tensors with :attr:`weight_shapes`; ``theta`` may have extra
            leading batch dimensions
        :return: per moment, a tensor of shape (batch, targets) or (targets,), where the
            targets are the qubits of a single-qubit gate or the pairs of a two-qubit gate
        """
        out: list[torch.Tensor | None] = []
        for m in self.moments:
            a = m.angle
            if isinstance(a, InputAngle):
                x = inputs[..., a.feature]
                if a.scale_layer is None:
                    out.append(math.pi * x)
                else:
                    out.append(weights["input_scale"][a.scale_layer, :, a.scale_index] * x)
            elif isinstance(a, WeightAngle):
                count = self.n_qubits if m.spec.wires == 1 else len(m.pairs)
                out.append(weights[a.name][..., a.layer, :count, a.index])
            else:
                out.append(None)
        return out
