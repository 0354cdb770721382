"""Search spaces as data: YAML files of ``--set`` keys and their distributions.

A space file (the shipped ones are in ``spaces/``: one per algorithm, one per policy family)::

    description: PPO's hyperparameters
    algorithms: [ppo, recurrent_ppo]      # or families: [quantum]
    parameters:
      hyperparameters.learning_rate: {float: [1.0e-4, 1.0e-2], log: true}
      hyperparameters.n_steps: {choices: [16, 32, 64]}
      policy.n_layers: {int: [1, 4]}
      policy.net_arch: {choices: ["{pi: [], vf: [8]}", "{pi: [8], vf: [8]}"]}
      learning_rate_schedule: {choices: [constant, linear]}

Keys are ``qrl train --set`` keys. A choice that is not a plain number, bool or text is
written as YAML text and read back when applied. ``learning_rate_schedule`` and
``clip_range_schedule`` choose between the constant value of ``learning_rate`` /
``clip_range`` and SB3's linear decay to 0 (``lin_<value>``).

The space of a run is the algorithm's file plus its policy family's (``quantum`` for a
quantum extractor, with ``entangled`` added for a circuit that has an entangling block;
``qfwp``; ``classical``), less the keys fixed with ``--set``; a file of the user's
(``--space FILE``) replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from qrl.errors import QrlError, choices_hint
from qrl.presets import RunConfig, parse_yaml, preset_dir, preset_names, read_yaml

SCHEDULES = {"learning_rate_schedule": "learning_rate", "clip_range_schedule": "clip_range"}
_KINDS = ("float", "int", "choices")
_SPACE_KEYS = {"description", "algorithms", "families", "parameters"}


@dataclass(frozen=True)
class Parameter:
    """One searched setting.

    :param key: the ``--set`` key (or a schedule choice, see :data:`SCHEDULES`)
    :param kind: "float", "int" or "choices"
    :param low: lower bound (float, int)
    :param high: upper bound (float, int)
    :param log: sample on a log scale (float, int)
    :param step: step of an int
    :param choices: the values to choose from (plain values; others as YAML text)
    """

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask the trial for a value, as the setting's value (YAML text read back)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            step = 1 if self.log else self.step
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        value = trial.suggest_categorical(self.key, list(self.choices))
        return value_of(value)


def value_of(choice: Any) -> Any:
    """A choice as the setting's value: YAML text of a list or mapping is read back."""
    if isinstance(choice, str) and choice[:1] in "[{":
        return parse_yaml(choice, "a search-space choice")
    return choice


def _plain(value: Any) -> Any:
    """A choice as Optuna stores it: None, bool, int, float or str (others as YAML text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip()


def parse_parameter(key: str, spec: Any, source: str) -> Parameter:
    """Read one parameter of a space file.

    :raises QrlError: naming the file, the key and what is allowed
    """
    where = f"{source}: parameter {key!r}"
    if not isinstance(spec, dict) or len([k for k in spec if k in _KINDS]) != 1:
        raise QrlError(
            f"{where} must be a mapping with one of float: [low, high], int: [low, high] "
            f"or choices: [...], not {spec!r}"
        )
    extra = set(spec) - {*_KINDS, "log", "step"}
    if extra:
        raise QrlError(f"{where}: unknown field {sorted(extra)[0]!r}; valid: log, step")
    kind = next(k for k in spec if k in _KINDS)
    if kind == "choices":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise QrlError(f"{where}: choices must be a non-empty list, not {choices!r}")
        return Parameter(key, kind, choices=tuple(_plain(c) for c in choices))
    bounds = spec[kind]
    numbers = isinstance(bounds, list) and len(bounds) == 2
    if not numbers or not all(_number(b) for b in bounds):
        raise QrlError(f"{where}: {kind} takes [low, high] (two numbers), not {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise QrlError(f"{where}: log must be true or false, not {log!r}")
    if not low < high:
        raise QrlError(f"{where}: low must be below high, got [{bounds[0]}, {bounds[1]}]")
    if log and low <= 0:
        raise QrlError(f"{where}: a log scale needs low > 0, got {bounds[0]}")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise QrlError(f"{where}: int bounds must be whole numbers, got {bounds!r}")
    step = spec.get("step", 1)
    if kind == "int" and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
        raise QrlError(f"{where}: step must be a whole number >= 1, not {step!r}")
    return Parameter(key, kind, low, high, log, step)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Space:
    """A search space: the parameters, and the files they came from."""

    parameters: tuple[Parameter, ...]
    sources: tuple[str, ...]

    def without(self, keys: Sequence[str]) -> Space:
        """The space less the given keys (settings fixed with ``--set``)."""
        fixed = set(keys)
        fixed |= {c for c, key in SCHEDULES.items() if f"hyperparameters.{key}" in fixed}
        kept = tuple(p for p in self.parameters if p.key not in fixed)
        return Space(kept, self.sources)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's settings as ``--set`` items: key -> value, schedules applied."""
        values = {p.key: p.suggest(trial) for p in self.parameters}
        for choice, key in SCHEDULES.items():
            if values.pop(choice, "constant") == "linear":
                name = f"hyperparameters.{key}"
                if name in values:
                    values[name] = f"lin_{values[name]}"
        return values


def read_space(path: Path) -> tuple[dict[str, Any], list[Parameter]]:
    """Read a space file: its header and its parameters.

    :raises QrlError: for a missing file, bad YAML or a bad parameter
    """
    data = read_yaml(path)
    unknown = set(data) - _SPACE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise QrlError(f"unknown key {key!r} in {path}; {choices_hint(key, _SPACE_KEYS)}")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise QrlError(f"{path} must have 'parameters': a mapping of --set keys to distributions")
    return data, [parse_parameter(str(k), v, str(path)) for k, v in parameters.items()]


def family_of(config: RunConfig) -> list[str]:
    """The policy families whose spaces apply to a configuration."""
    policy = config.policy
    if policy.get("cell") == "qfwp":
        families = ["qfwp"]
        return families + (["entangled"] if policy.get("circuit") == "entangled" else [])
    if policy.get("extractor") == "quantum":
        entangled = policy.get("circuit") == "entangled" or "entangler" in policy
        return ["quantum", *(["entangled"] if entangled else [])]
    return ["classical"]


def shipped_space(config: RunConfig) -> Space:
    """The shipped space of a configuration: its algorithm's file and its families'.

    :raises QrlError: if no shipped file covers the algorithm
    """
    folder = preset_dir("spaces")
    parameters: list[Parameter] = []
    sources: list[str] = []
    algorithm_found = False
    for name in preset_names("spaces"):
        path = folder / f"{name}.yaml"
        data, found = read_space(path)
        algorithms = data.get("algorithms") or []
        families = data.get("families") or []
        if config.algorithm in algorithms:
            algorithm_found = True
        elif not set(families) & set(family_of(config)):
            continue
        parameters += found
        sources.append(name)
    if not algorithm_found:
        raise QrlError(
            f"no shipped search space for {config.algorithm}; give your own with --space FILE"
        )
    return Space(_unique(parameters), tuple(sources))


def _unique(parameters: list[Parameter]) -> tuple[Parameter, ...]:
    """Parameters by key, the later file's winning (a family's n_layers over another's)."""
    by_key: dict[str, Parameter] = {}
    for parameter in parameters:
        by_key[parameter.key] = parameter
    return tuple(by_key.values())


def load_space(config: RunConfig, path: str | Path | None, fixed: Mapping[str, Any]) -> Space:
    """The search space of a study: the user's file, or the shipped one, less fixed keys.

    :param config: the resolved configuration of the agent and task
    :param path: a space file of the user's, or None
    :param fixed: ``--set`` items, whose keys are not searched
    :raises QrlError: for a bad file, or a space with nothing left to search
    """
    if path is None:
        space = shipped_space(config)
    else:
        file = Path(path)
        if not file.is_file():
            raise QrlError(f"search space file {file} does not exist")
        _, parameters = read_space(file)
        space = Space(tuple(parameters), (str(file),))
    space = space.without(list(fixed))
    if not space.parameters:
        raise QrlError("nothing left to search: every parameter of the space is fixed by --set")
    return space
