"""Entangling patterns: which (control, target) pairs an entangling block acts on.

A pattern is a function of the number of qubits, the layer and an optional argument (the
``R`` of ``range:R``) that returns the pairs in the order the gates are applied. It is named
in a policy as ``policy.pattern``; a user adds one with :func:`register_pattern`.
"""

from __future__ import annotations

from collections.abc import Callable

from qrl.errors import QrlError, lookup

Pairs = tuple[tuple[int, int], ...]
Pattern = Callable[[int, int, str | None], Pairs]


def ring(n: int, layer: int = 0, arg: str | None = None) -> Pairs:
    """Nearest neighbours in a ring: (0,1), (1,2), ..., (n-1,0); one pair for two qubits."""
    if n < 2:
        return ()
    if n == 2:
        return ((0, 1),)
    return tuple((q, (q + 1) % n) for q in range(n))


def chain(n: int, layer: int = 0, arg: str | None = None) -> Pairs:
    """Nearest neighbours in a line: (0,1), (1,2), ..., (n-2,n-1)."""
    return tuple((q, q + 1) for q in range(n - 1))


def all_to_all(n: int, layer: int = 0, arg: str | None = None) -> Pairs:
    """Every pair (i, j), i < j, in lexicographic order."""
    return tuple((i, j) for i in range(n) for j in range(i + 1, n))


def brick(n: int, layer: int = 0, arg: str | None = None) -> Pairs:
    """A brick wall: the even pairs (0,1), (2,3), ..., then the odd pairs (1,2), (3,4), ...
    (the CNOT brick of Chen 2024's fast weight programmer)."""
    return tuple((q, q + 1) for q in range(0, n - 1, 2)) + tuple(
        (q, q + 1) for q in range(1, n - 1, 2)
    )


def ranged(n: int, layer: int = 0, arg: str | None = None) -> Pairs:
    """Strongly entangling layers: (q, q + r mod n) for every q, with the distance r cycling
    1, 2, ..., R over the layers (r = layer mod R + 1), as PennyLane's
    ``StronglyEntanglingLayers`` cycles its ranges (there with R = n - 1)."""
    if n < 2:
        return ()
    try:
        reach = int(arg) if arg is not None else n - 1
    except ValueError:
        reach = 0
    if not 1 <= reach <= n - 1:
        raise QrlError(
            f"pattern range:R needs a whole R from 1 to n_qubits - 1 = {n - 1}, got {arg!r}"
        )
    r = layer % reach + 1
    return tuple((q, (q + r) % n) for q in range(n))


PATTERNS: dict[str, Pattern] = {
    "ring": ring,
    "chain": chain,
    "all": all_to_all,
    "brick": brick,
    "range": ranged,
}


def register_pattern(name: str, pattern: Pattern, replace: bool = False) -> None:
    """Add an entangling pattern, so that ``policy.pattern`` can name it.

    :param name: short lower-case name (``name:ARG`` passes ARG to the pattern)
    :param pattern: ``pattern(n_qubits, layer, arg) -> ((control, target), ...)``
    :param replace: allow replacing a pattern of the same name
    """
    key = name.lower()
    if ":" in key:
        raise QrlError(f"a pattern name cannot contain ':', got {name!r}")
    if key in PATTERNS and not replace:
        raise QrlError(f"pattern {key!r} is already registered")
    PATTERNS[key] = pattern


def pattern_pairs(spec: str, n: int, layer: int) -> Pairs:
    """The pairs of pattern ``spec`` ("ring", "range:2", ...) on n qubits in a layer.

    :raises QrlError: for an unknown pattern or pairs outside the register
    """
    name, _, arg = str(spec).lower().partition(":")
    pattern = lookup(PATTERNS, name, "pattern")
    pairs = tuple((int(c), int(t)) for c, t in pattern(n, layer, arg or None))
    for c, t in pairs:
        if c == t or not (0 <= c < n and 0 <= t < n):
            raise QrlError(f"pattern {spec!r} gave the pair ({c}, {t}) on {n} qubits")
    return pairs
