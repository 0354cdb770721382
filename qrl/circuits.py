"""Variational circuits described once, as data, and run by any executor.

A circuit is a list of *moments*. A moment applies one kind of gate to every qubit at once
(a rotation whose angle differs per qubit, or a Hadamard), or an entangling pattern of
two-qubit gates. Angles come from the encoded inputs (times a trainable input scale) or from
the trainable weights. Executors (:mod:`qrl.simulator`, :mod:`qrl.pennylane_executor`) only
apply gates to angles computed here, so they cannot disagree about the circuit.

Weights are a dict of tensors whose shapes the circuit declares, as PennyLane templates do:

- ``input_scale`` (encoding layers, qubits, features per qubit), initialised to 1;
- ``theta`` (layers, qubits, rotations per layer), the variational angles.

``theta`` may carry leading batch dimensions (one set of angles per sample), which the fast
weight programmer uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from qrl.errors import QrlError, lookup

PAULIS = ("X", "Y", "Z")
ROTATIONS = ("RX", "RY", "RZ")
ENTANGLERS = ("CNOT", "CZ")

# Encodings: the rotation axes that load the features of one qubit, in order.
ENCODINGS: dict[str, tuple[str, ...]] = {
    "rx": ("RX",),
    "ry": ("RY",),
    # Hsiao et al. (2022), community reconstruction: H, then RZ RY RZ of three features.
    "euler": ("RZ", "RY", "RZ"),
    # Chen et al. (2019): a bit b is loaded as RX(pi b) RZ(pi b).
    "basis": ("RX", "RZ"),
}


def features_per_qubit(encoding: str) -> int:
    """Observation features one qubit loads under an encoding (3 for Euler, else 1)."""
    return len(lookup(ENCODINGS, encoding, "encoding")) if encoding == "euler" else 1


@dataclass(frozen=True)
class InputAngle:
    """Angle = ``input_scale[scale_layer, q, scale_index] * inputs[..., q, feature]``.

    ``scale_layer`` is None for fixed encodings (basis): angle = pi * input.
    """

    feature: int
    scale_layer: int | None
    scale_index: int


@dataclass(frozen=True)
class WeightAngle:
    """Angle = ``theta[..., layer, q, index]``."""

    layer: int
    index: int


@dataclass(frozen=True)
class Moment:
    """One gate on every qubit, or one entangling pattern.

    :param gate: "H", "RX", "RY", "RZ", "CNOT" or "CZ"
    :param angle: where the rotation angles come from (rotations only)
    :param pairs: (control, target) wires of the two-qubit gates (entanglers only)
    """

    gate: str
    angle: InputAngle | WeightAngle | None = None
    pairs: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Circuit:
    """A variational circuit: moments, readout and weight shapes.

    :param name: registry name of the ansatz
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
    # Derived from the moments, so it takes no part in equality and hashing.
    weight_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False)

    @property
    def n_outputs(self) -> int:
        """Number of expectation values the circuit returns."""
        return self.n_qubits * len(self.observables)

    @property
    def entangling(self) -> bool:
        """Whether any two-qubit gate appears (the state may leave the product manifold)."""
        return any(m.gate in ENTANGLERS for m in self.moments)

    def readout(self) -> list[tuple[str, int]]:
        """The measured (Pauli, wire) pairs, in output order."""
        return [(p, q) for q in range(self.n_qubits) for p in self.observables]

    def draw(self) -> str:
        """Text drawing, one line per wire: x an (input-scaled) feature, theta a weight.

        Each two-qubit gate of an entangling pattern gets its own column (control ●,
        target X for CNOT, ● on both wires for CZ).
        """
        columns: list[dict[int, str]] = []
        for m in self.moments:
            if m.gate in ENTANGLERS:
                for c, t in m.pairs:
                    col = {w: "│" for w in range(min(c, t) + 1, max(c, t))}
                    col |= {c: "●", t: "X" if m.gate == "CNOT" else "●"}
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
        """Rotation angles of every moment (None for gates without a parameter).

        :param inputs: encoded features, shape (batch, n_qubits, features_per_qubit)
        :param weights: tensors with :attr:`weight_shapes`; ``theta`` may have extra
            leading batch dimensions
        :return: per moment, a tensor of shape (batch, n_qubits) or (n_qubits,), or None
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
                out.append(weights["theta"][..., a.layer, :, a.index])
            else:
                out.append(None)
        return out


def ring(n_qubits: int) -> tuple[tuple[int, int], ...]:
    """Nearest-neighbour ring (0,1), (1,2), ..., (n-1,0); a single pair for two qubits."""
    if n_qubits < 2:
        return ()
    if n_qubits == 2:
        return ((0, 1),)
    return tuple((q, (q + 1) % n_qubits) for q in range(n_qubits))


def layered(
    name: str,
    n_qubits: int,
    n_layers: int = 2,
    encoding: str = "rx",
    rotations: str = "zyz",
    observables: Sequence[str] = ("X", "Y", "Z"),
    reupload: bool = True,
    entangler: str | None = None,
) -> Circuit:
    """Build the layered ansatz shared by the registered circuits.

    Each layer: encode the inputs (every layer with data re-uploading, else the first only),
    apply trainable rotations to every qubit, then the entangling ring if any.

    :param name: registry name to record
    :param n_qubits: number of qubits
    :param n_layers: number of variational layers
    :param encoding: one of :data:`ENCODINGS`
    :param rotations: axes of the trainable rotations per layer, e.g. "zyz" (a general
        rotation, as PennyLane's Rot), "y" or "xy"
    :param observables: subset of "X", "Y", "Z" measured on every qubit
    :param reupload: load the inputs again in every layer (data re-uploading)
    :param entangler: None, "cnot" or "cz": a ring of that gate after each layer
    :return: the circuit
    """
    enc_axes = lookup(ENCODINGS, encoding, "encoding")
    rot_axes = tuple("R" + a.upper() for a in rotations)
    bad = [a for a in rot_axes if a not in ROTATIONS]
    if not rot_axes or bad:
        raise QrlError(f"rotations must be letters of 'xyz' (e.g. 'zyz'), got {rotations!r}")
    obs = tuple(o.upper() for o in observables)
    if not obs or any(o not in PAULIS for o in obs) or len(set(obs)) != len(obs):
        raise QrlError(f"observables must be distinct Paulis among X, Y, Z, got {observables!r}")
    if n_qubits < 1 or n_layers < 1:
        raise QrlError(f"need at least one qubit and one layer, got {n_qubits} and {n_layers}")
    pairs: tuple[tuple[int, int], ...] = ()
    gate2 = ""
    if entangler is not None:
        gate2 = lookup({"cnot": "CNOT", "cz": "CZ"}, str(entangler).lower(), "entangler")
        pairs = ring(n_qubits)

    fixed = encoding == "basis"
    fpq = features_per_qubit(encoding)  # basis: one bit, loaded by two gates
    n_enc = n_layers if reupload else 1
    moments: list[Moment] = []
    if encoding == "euler":
        moments.append(Moment("H"))
    for layer in range(n_layers):
        if layer < n_enc:
            for k, axis in enumerate(enc_axes):
                feature = 0 if fixed else k
                scale = None if fixed else layer
                moments.append(Moment(axis, InputAngle(feature, scale, feature)))
        for j, axis in enumerate(rot_axes):
            moments.append(Moment(axis, WeightAngle(layer, j)))
        if pairs:
            moments.append(Moment(gate2, pairs=pairs))

    shapes: dict[str, tuple[int, ...]] = {"theta": (n_layers, n_qubits, len(rot_axes))}
    if not fixed:
        shapes["input_scale"] = (n_enc, n_qubits, fpq)
    return Circuit(name, n_qubits, fpq, tuple(moments), obs, shapes)


def unentangled(n_qubits: int, **kwargs: object) -> Circuit:
    """Single-qubit unentangled circuit (Hsiao et al. 2022): no two-qubit gates at all."""
    if kwargs.get("entangler") is not None:
        raise QrlError("the 'unentangled' circuit takes no entangler; use circuit 'entangled'")
    kwargs.pop("entangler", None)
    return layered("unentangled", n_qubits, **kwargs)  # type: ignore[arg-type]


def entangled(n_qubits: int, **kwargs: object) -> Circuit:
    """The same layers with a CNOT (default) or CZ ring after each, for comparison."""
    kwargs.setdefault("entangler", "cnot")
    if kwargs["entangler"] is None:
        raise QrlError("the 'entangled' circuit needs an entangler: 'cnot' or 'cz'")
    return layered("entangled", n_qubits, **kwargs)  # type: ignore[arg-type]


CIRCUITS: dict[str, Callable[..., Circuit]] = {
    "unentangled": unentangled,
    "entangled": entangled,
}


def make_circuit(name: str, n_qubits: int, **kwargs: object) -> Circuit:
    """Build a registered circuit by name.

    :param name: a key of :data:`CIRCUITS`
    :param n_qubits: number of qubits
    :param kwargs: options of :func:`layered`
    :return: the circuit
    """
    factory = lookup(CIRCUITS, name, "circuit")
    try:
        return factory(n_qubits, **kwargs)
    except TypeError as exc:
        raise QrlError(f"bad option for circuit {name!r}: {exc}") from None
