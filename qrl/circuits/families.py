"""Circuit families: functions from a number of qubits and options to a :class:`Circuit`.

The shipped families (``unentangled``, ``entangled``) are both :func:`layered` circuits. A
user adds a family with :func:`register_circuit`, through the ``qrl.circuits`` entry-point
group of an installed package, or names one directly as ``module:function`` or
``path/to/file.py:function`` (in ``policy.circuit`` of an agent preset, or ``--set``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from qrl.circuits.gates import GATES, gate, two_qubit_gates
from qrl.circuits.model import PAULIS, Circuit, InputAngle, Moment, WeightAngle
from qrl.circuits.patterns import pattern_pairs
from qrl.errors import QrlError, choices_hint, lookup

Family = Callable[..., Circuit]

# Encodings: the rotation gates that load the features of one qubit, in order.
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


def layered(
    name: str,
    n_qubits: int,
    n_layers: int = 2,
    encoding: str = "rx",
    rotations: str = "zyz",
    observables: Sequence[str] = ("X", "Y", "Z"),
    reupload: bool = True,
    entangler: str | None = None,
    pattern: str = "ring",
) -> Circuit:
    """Build the layered ansatz shared by the shipped circuits.

    Each layer: encode the inputs (every layer with data re-uploading, else the first only),
    apply trainable rotations to every qubit, then the entangling block, if any: the gate
    ``entangler`` on every pair of ``pattern``. A trainable entangler (``crx``, ``cry``,
    ``crz``) takes one angle per pair, in the weight ``phi`` (layers, pairs, 1).

    :param name: registry name to record
    :param n_qubits: number of qubits
    :param n_layers: number of variational layers
    :param encoding: one of :data:`ENCODINGS`
    :param rotations: axes of the trainable rotations per layer, e.g. "zyz" (a general
        rotation, as PennyLane's Rot), "y" or "xy"
    :param observables: subset of "X", "Y", "Z" measured on every qubit
    :param reupload: load the inputs again in every layer (data re-uploading)
    :param entangler: None or a two-qubit gate of the table: "cnot", "cz", "crx", "cry",
        "crz", or one a user registered
    :param pattern: the pairs of the entangling block: "ring", "chain", "all", "brick",
        "range:R" (see :mod:`qrl.circuits.patterns`)
    :return: the circuit
    """
    enc_gates = lookup(ENCODINGS, encoding, "encoding")
    rot_gates = tuple("R" + a.upper() for a in rotations)
    if not rot_gates or any(g not in ("RX", "RY", "RZ") for g in rot_gates):
        raise QrlError(f"rotations must be letters of 'xyz' (e.g. 'zyz'), got {rotations!r}")
    obs = tuple(str(o).upper() for o in observables)
    if not obs or any(o not in PAULIS for o in obs) or len(set(obs)) != len(obs):
        raise QrlError(f"observables must be distinct Paulis among X, Y, Z, got {observables!r}")
    if n_qubits < 1 or n_layers < 1:
        raise QrlError(f"need at least one qubit and one layer, got {n_qubits} and {n_layers}")
    block = None
    if entangler is not None:
        block = GATES.get(str(entangler).upper())
        if block is None or block.wires != 2:
            raise QrlError(
                f"unknown entangler {entangler!r}; "
                + choices_hint(str(entangler).lower(), two_qubit_gates())
            )
    pairs_per_layer = [
        pattern_pairs(pattern, n_qubits, layer) if block else () for layer in range(n_layers)
    ]

    fixed = encoding == "basis"
    fpq = features_per_qubit(encoding)  # basis: one bit, loaded by two gates
    n_enc = n_layers if reupload else 1
    moments: list[Moment] = []
    if encoding == "euler":
        moments.append(Moment("H"))
    for layer in range(n_layers):
        if layer < n_enc:
            for k, axis in enumerate(enc_gates):
                feature = 0 if fixed else k
                scale = None if fixed else layer
                moments.append(Moment(axis, InputAngle(feature, scale, feature)))
        for j, axis in enumerate(rot_gates):
            moments.append(Moment(axis, WeightAngle(layer, j)))
        if block is not None and pairs_per_layer[layer]:
            angle = WeightAngle(layer, 0, "phi") if block.trainable else None
            moments.append(Moment(block.name, angle, pairs_per_layer[layer]))

    shapes: dict[str, tuple[int, ...]] = {"theta": (n_layers, n_qubits, len(rot_gates))}
    if not fixed:
        shapes["input_scale"] = (n_enc, n_qubits, fpq)
    if block is not None and block.trainable and any(pairs_per_layer):
        shapes["phi"] = (n_layers, max(len(p) for p in pairs_per_layer), 1)
    return Circuit(name, n_qubits, fpq, tuple(moments), obs, shapes)


def unentangled(n_qubits: int, **options: Any) -> Circuit:
    """Single-qubit unentangled circuit (Hsiao et al. 2022): no two-qubit gates at all."""
    for key in ("entangler", "pattern"):
        if options.pop(key, None) is not None:
            raise QrlError(f"the 'unentangled' circuit takes no {key}; use circuit 'entangled'")
    return layered("unentangled", n_qubits, **options)


def entangled(n_qubits: int, **options: Any) -> Circuit:
    """The same layers with an entangling block after each: a CNOT ring by default."""
    if options.setdefault("entangler", "cnot") is None:
        raise QrlError(
            "the 'entangled' circuit needs an entangler: " + ", ".join(two_qubit_gates())
        )
    return layered("entangled", n_qubits, **options)


CIRCUITS: dict[str, Family] = {
    "unentangled": unentangled,
    "entangled": entangled,
}

ENTRY_POINT_GROUP = "qrl.circuits"


def register_circuit(name: str, family: Family, replace: bool = False) -> Family:
    """Add a circuit family, so that ``policy.circuit: <name>`` builds it.

    :param name: short lower-case name
    :param family: ``family(n_qubits, **options) -> Circuit``; the options are those of
        :func:`layered` that the policy sets (``n_layers``, ``encoding``, ``rotations``,
        ``observables``, ``reupload``, and ``entangler``, ``pattern`` when given); accept
        ``**options`` to ignore the ones the family has no use for
    :param replace: allow replacing a family of the same name
    :return: the family
    """
    key = str(name).lower()
    if ":" in key:
        raise QrlError(f"a circuit family name cannot contain ':', got {name!r}")
    if key in CIRCUITS and CIRCUITS[key] is not family and not replace:
        raise QrlError(f"circuit family {key!r} is already registered")
    CIRCUITS[key] = family
    return family


def load_entry_points() -> None:
    """Register the families that installed packages declare in the ``qrl.circuits`` group."""
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name.lower() not in CIRCUITS:
            try:
                family = point.load()
            except Exception as exc:  # a broken plugin: name it, whatever it raised
                raise QrlError(
                    f"circuit family {point.name!r} of the {ENTRY_POINT_GROUP!r} entry points "
                    f"({point.value}) fails to load: {type(exc).__name__}: {exc}"
                ) from None
            register_circuit(point.name, family)


def resolve_family(name: str) -> Family:
    """The family named ``name``: registered, from an entry point, or ``module:function``.

    :raises QrlError: naming what was not found
    """
    if ":" in str(name):
        return _import_family(str(name))
    key = str(name).lower()
    if key not in CIRCUITS:
        load_entry_points()
    return lookup(CIRCUITS, key, "circuit")


def _import_family(spec: str) -> Family:
    """``module:attr`` or ``path/to/file.py:attr``: import the module, return the attribute."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise QrlError(f"circuit {spec!r}: write module:function or path/to/file.py:function")
    try:
        module = _load_file(where) if where.endswith(".py") else importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise QrlError(
            f"circuit {spec!r}: cannot import {exc.name!r} (is its folder on PYTHONPATH?)"
        ) from None
    family = getattr(module, attr, None)
    if not callable(family):
        raise QrlError(f"circuit {spec!r}: {where} has no function {attr!r}")
    return family


def _load_file(where: str) -> Any:
    """The module of a Python file, executed once per process (named by its resolved path,
    so that two files of the same name stay apart)."""
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise QrlError(f"circuit file {path} does not exist")
    name = "qrl_user_circuits_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is not None:
        return module
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise QrlError(f"circuit file {path} cannot be imported")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # the next attempt runs the file again and shows the error
        raise
    return module


def make_circuit(name: str, n_qubits: int, **options: Any) -> Circuit:
    """Build a circuit by family name.

    :param name: a key of :data:`CIRCUITS`, an entry point of ``qrl.circuits``, or
        ``module:function`` / ``file.py:function``
    :param n_qubits: number of qubits
    :param options: options of the family (those of :func:`layered` for the shipped ones)
    :return: the circuit
    """
    family = resolve_family(name)
    try:
        circuit = family(n_qubits, **options)
    except TypeError as exc:
        raise QrlError(f"bad option for circuit {name!r}: {exc}") from None
    if not isinstance(circuit, Circuit):
        raise QrlError(f"circuit family {name!r} returned {type(circuit).__name__}, not a Circuit")
    for m in circuit.moments:
        gate(m.gate)
    return circuit
