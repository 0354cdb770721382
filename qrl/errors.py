"""The one exception type qrl raises for bad input, and the registry lookup that uses it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


# qrl's name on the package index ("qrl" there is another project); the import name is qrl.
DISTRIBUTION = "qrl-quantum-rl"


def install_hint(extra: str) -> str:
    """How to install an optional extra, e.g. ``pip install 'qrl-quantum-rl[ibm]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


class QrlError(Exception):
    """A problem with the user's input (a name, a file, a value), explained in one message.

    The command line prints the message alone; other exceptions are bugs and keep their
    traceback.
    """


def choices_hint(name: str, choices: Iterable[str]) -> str:
    """Describe the valid choices for ``name``, closest matches first.

    :param name: the name the user gave
    :param choices: the valid names
    :return: a sentence listing the valid choices
    """
    valid = sorted(choices)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    hint = f"valid choices: {', '.join(valid)}"
    if close:
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? {hint}"
    return hint


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Return ``registry[name]`` or raise a :class:`QrlError` that lists the valid keys.

    :param registry: a plain dict with short lowercase keys
    :param name: the key to look up
    :param what: what the registry holds, for the message ("circuit", "algorithm", ...)
    :return: the registered value
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise QrlError(f"unknown {what} {name!r}; {choices_hint(str(name), registry)}") from None
