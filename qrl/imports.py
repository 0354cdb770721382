"""What a configuration names by import path: Gymnasium packages that register tasks, and
classes with keyword arguments (environment wrappers, callbacks) in rl-baselines3-zoo's form.

The zoo writes a class as its dotted path, alone or as a one-key mapping to its keyword
arguments, and several as a list::

    env_wrapper:
      - gymnasium.wrappers.ClipReward: {min_reward: -1, max_reward: 1}
      - gymnasium.wrappers.TransformReward: {func: ...}     # (not plain data: not allowed)
    callback: stable_baselines3.common.callbacks.StopTrainingOnMaxEpisodes: {max_episodes: 5}

``module:Class`` is read like ``module.Class``. Every import error is a one-line
:class:`~qrl.errors.QrlError` naming the setting and the path.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qrl.errors import QrlError


def import_module(name: str, what: str) -> Any:
    """Import a module named by a setting; the current folder is searched first, as Python
    does for a script run from it.

    :param name: the module's dotted name
    :param what: the setting, for the message (``--gym-packages``)
    :return: the module
    :raises QrlError: naming the setting, the module and why it cannot be imported
    """
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise QrlError(f"{what}: cannot import {name!r} ({exc})") from None
    except Exception as exc:  # the module's own code failed
        raise QrlError(f"{what}: importing {name!r} failed: {type(exc).__name__}: {exc}") from None


def import_packages(names: Sequence[str], what: str = "gym_packages") -> None:
    """Import modules whose import registers Gymnasium tasks (zoo's ``--gym-packages``).

    :param names: module names
    :param what: the setting, for messages
    """
    for name in names:
        import_module(str(name), what)


def import_class(path: str, what: str) -> type:
    """The class a dotted path (``package.module.Class`` or ``package.module:Class``) names.

    :param path: the path
    :param what: the setting, for messages (``env_wrapper``)
    :return: the class
    :raises QrlError: for a path that names no class
    """
    text = str(path)
    module_name, sep, attr = text.partition(":") if ":" in text else text.rpartition(".")
    if not sep or not module_name or not attr:
        raise QrlError(
            f"{what}: {text!r} is not a class path; write package.module.Class "
            "(e.g. gymnasium.wrappers.ClipReward)"
        )
    module = import_module(module_name, what)
    found = getattr(module, attr, None)
    if not isinstance(found, type):
        raise QrlError(f"{what}: module {module_name!r} has no class {attr!r}")
    return found


def class_specs(value: Any, what: str) -> list[tuple[str, dict[str, Any]]]:
    """The (class path, keyword arguments) pairs of a setting in the zoo's form.

    :param value: None, a path, a one-key mapping ``{path: kwargs}``, or a list of those
    :param what: the setting, for messages
    :return: the pairs, in order (none for None)
    :raises QrlError: for any other form
    """
    if value is None or value == []:
        return []
    items = value if isinstance(value, list) else [value]
    specs: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((path, kwargs),) = item.items()
            if kwargs is not None and not isinstance(kwargs, dict):
                raise QrlError(f"{what}: the arguments of {path} must be a mapping, not {kwargs!r}")
            specs.append((str(path), dict(kwargs or {})))
        else:
            raise QrlError(
                f"{what}: {item!r} is not a class; write a class path, "
                "{path: {argument: value}}, or a list of those"
            )
    return specs


def load_classes(value: Any, base: type, what: str) -> list[tuple[type, dict[str, Any]]]:
    """Import the classes of a setting in the zoo's form and check their kind.

    :param value: see :func:`class_specs`
    :param base: the class each must derive from (``gymnasium.Wrapper``, ``BaseCallback``)
    :param what: the setting, for messages
    :return: (class, keyword arguments) pairs, in order
    :raises QrlError: for a path that cannot be imported or a class of another kind
    """
    loaded = []
    for path, kwargs in class_specs(value, what):
        cls = import_class(path, what)
        if not issubclass(cls, base):
            raise QrlError(
                f"{what}: {path} is not a {base.__module__}.{base.__qualname__} subclass"
            )
        loaded.append((cls, kwargs))
    return loaded
