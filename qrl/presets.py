"""Agent and environment presets (YAML), and the resolved configuration of a run.

An **env preset** (``envs/<name>.yaml``) describes a task: the Gymnasium id, the number of
parallel environments, the training budget, the "solved" threshold and the tuned
hyperparameters of each algorithm, whose keys are SB3's own arguments. An **agent preset**
(``agents/<name>.yaml``) names an algorithm and a policy block; optional per-env sections
adjust the policy for a task. The quantum and the classical agent of one task therefore
share every hyperparameter and differ only in the policy.

Resolution order, later wins: SB3 defaults, env preset, agent preset (and its section for
the env), ``--set key=value`` overrides.

Every value is checked before any work, with one-line messages that name the key, the value
and what is allowed (:func:`check_settings`, :func:`whole_number`, :func:`real_number`,
:func:`boolean`; hyperparameters against SB3's signatures in :mod:`qrl.agents`). Credentials
are never settings: a credential-like key at any depth is refused
(:func:`check_no_credentials`), and :func:`check_before_writing` is the last check before
:mod:`qrl.runs` writes a JSON file or a new ``config.yaml``.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, overload

import yaml

from qrl.errors import QrlError, choices_hint
from qrl.imports import class_specs, import_module, import_packages


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``3e-3`` as a float (YAML 1.1 needs ``3.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from PyYAML's multi-line message: the problem and where it is."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem}{where}"
    return " ".join(str(exc).split())


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely; errors name the source and line, on one line.

    :param text: the YAML document
    :param source: where it came from, for messages
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise QrlError(f"malformed YAML in {source}: {_yaml_problem(exc)}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from a file.

    :raises QrlError: if the file is missing, not text, malformed or not a mapping
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise QrlError(
            f"{path} is not a YAML text file: byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start} is not UTF-8 text"
        ) from None
    except OSError as exc:
        raise QrlError(f"cannot read {path}: {exc.strerror}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise QrlError(
            f"{path} must hold a YAML mapping (key: value lines), not {type(data).__name__}"
        )
    return data


def preset_dir(kind: str) -> Path:
    """Folder of the shipped presets of a kind ("agents" or "envs").

    Installed wheels carry them inside the package; a source checkout has them at the top
    of the repository.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "presets" / kind, here.parent / kind):
        if candidate.is_dir():
            return candidate
    raise QrlError(f"the {kind} presets are missing from this installation of qrl ({here})")


def preset_names(kind: str) -> list[str]:
    """Names of the shipped presets of a kind."""
    return sorted(p.stem for p in preset_dir(kind).glob("*.yaml"))


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or ("/" in name and Path(name).exists())


def find_preset(kind: str, name: str) -> Path | None:
    """Path of a preset given by name or by path, or None if there is no such preset."""
    if _is_path(name):
        path = Path(name)
        if not path.is_file():
            raise QrlError(f"{kind[:-1]} preset file {name} does not exist")
        return path
    path = preset_dir(kind) / f"{name}.yaml"
    return path if path.is_file() else None


AGENT_KEYS = {"description", "algorithm", "policy", "hyperparameters", "envs"}
ENV_KEYS = {
    "description",
    "id",
    "n_envs",
    "timesteps",
    "solved",
    "eval_episodes",
    "eval_freq",
    "eval_freq_episodes",
    "max_episode_steps",
    "env_kwargs",
    "algorithms",
    *("gym_packages", "env_wrapper", "frame_stack", "normalize", "callback"),
}


def _check_keys(data: Mapping[str, Any], valid: set[str], source: str) -> None:
    for key in data:
        if key not in valid:
            raise QrlError(f"unknown key {key!r} in {source}; {choices_hint(str(key), valid)}")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise QrlError(f"{what} must be a mapping, not {value!r}")
    return value


def load_agent_preset(name: str) -> tuple[str, dict[str, Any]]:
    """Load an agent preset by name (``agents/<name>.yaml``) or path.

    :return: the agent's name and its data
    """
    path = find_preset("agents", name)
    if path is None:
        raise QrlError(f"unknown agent {name!r}; {choices_hint(name, preset_names('agents'))}")
    data = read_yaml(path)
    _check_keys(data, AGENT_KEYS, str(path))
    if "algorithm" not in data:
        raise QrlError(f"agent preset {path} must name an 'algorithm' (e.g. ppo)")
    for key in ("policy", "hyperparameters", "envs"):
        data[key] = _mapping(data.get(key), f"'{key}' in {path}")
    return path.stem, data


def load_env_preset(name: str, gym_packages: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """Load an env preset by name or path; a Gymnasium id gets a default preset.

    A Gymnasium id may name the module that registers it, as ``gymnasium.make`` reads it
    (``mypackage.envs:MyTask-v0``: the module is imported first); ``gym_packages`` are
    imported before anything is looked up (rl-baselines3-zoo's ``--gym-packages``).

    :param name: preset name or path, or a Gymnasium id
    :param gym_packages: modules whose import registers tasks
    :return: the preset's name and its data (with at least ``id``)
    """
    import gymnasium as gym

    import qrl.tasks  # noqa: F401  (registers the qrl/ tasks)

    import_packages(gym_packages, "--gym-packages")
    path = None if ":" in name and not _is_path(name) else find_preset("envs", name)
    path = path or _preset_with_id(name)
    if path is None:
        if registered(name):
            return name, {
                "id": name,
                "description": "Gymnasium defaults",
                "algorithms": {},
                "env_kwargs": {},
            }
        valid = preset_names("envs")
        raise QrlError(
            f"unknown environment {name!r}; {choices_hint(name, list(gym.registry))}. "
            f"Env presets: {', '.join(valid)}; any registered Gymnasium id also works, "
            "module:EnvId imports the module that registers it (or pass --gym-packages)"
        )
    data = read_yaml(path)
    _check_keys(data, ENV_KEYS, str(path))
    data.setdefault("id", path.stem)
    import_packages(_string_list(data.get("gym_packages"), "gym_packages"), str(path))
    if not registered(str(data["id"])):
        raise QrlError(f"{path}: {data['id']!r} is not a registered Gymnasium id")
    for key in ("algorithms", "env_kwargs"):
        data[key] = _mapping(data.get(key), f"'{key}' in {path}")
    return path.stem, data


def registered(env_id: str) -> bool:
    """Whether a Gymnasium id is registered; ``module:Id`` imports the module first.

    :raises QrlError: if that module cannot be imported
    """
    import gymnasium as gym

    module, sep, bare = env_id.rpartition(":")
    if sep:
        import_module(module, f"--env {env_id}")
    return (bare if sep else env_id) in gym.registry


def _string_list(value: Any, what: str) -> list[str]:
    """A list of names (one name alone is a list of one)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise bad_value(what, value, "a module name or a list of module names")
    return list(items)


def _preset_with_id(env_id: str) -> Path | None:
    """The shipped env preset whose Gymnasium id is ``env_id`` (e.g. qrl/CartPoleNoVel-v1)."""
    for name in preset_names("envs"):
        path = preset_dir("envs") / f"{name}.yaml"
        data = parse_yaml(path.read_text(), str(path))
        if isinstance(data, dict) and data.get("id") == env_id:
            return path
    return None


def task_settings(env_name: str, env_data: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`RunConfig` fields an env preset sets, as written (:func:`check_settings`
    checks their types and ranges)."""
    return {
        "env": env_name,
        "env_id": str(env_data["id"]),
        "timesteps": env_data.get("timesteps", 100_000),
        "n_envs": env_data.get("n_envs", 1),
        "eval_episodes": env_data.get("eval_episodes", 100),
        "eval_freq": env_data.get("eval_freq", 0),
        "eval_freq_episodes": env_data.get("eval_freq_episodes", 10),
        "max_episode_steps": env_data.get("max_episode_steps"),
        "solved": env_data.get("solved"),
        "env_kwargs": dict(env_data.get("env_kwargs") or {}),
        **{key: env_data[key] for key in ZOO_KEYS if key in env_data},
    }


@dataclass
class RunConfig:
    """Everything needed to build, train and evaluate one agent on one task.

    Saved as ``config.yaml`` in the run folder; plain data only. ``max_episode_steps`` cuts
    episodes at that many steps (None: the task's own limit, or
    :data:`DEFAULT_MAX_EPISODE_STEPS` for a task without one, see :mod:`qrl.envs`).

    The task options of rl-baselines3-zoo keep the zoo's meaning (:mod:`qrl.envs` applies
    them): ``gym_packages`` (modules imported first, to register tasks), ``env_wrapper``
    (Gymnasium wrappers by class path, with keyword arguments, outside the episode monitor),
    ``frame_stack`` (the last N observations), ``normalize`` (SB3's ``VecNormalize``: true, or
    its keyword arguments; its statistics are saved beside the model) and ``callback`` (SB3
    callbacks by class path).
    """

    agent: str
    env: str
    env_id: str
    algorithm: str
    seed: int = 0
    timesteps: int = 100_000
    n_envs: int = 1
    eval_episodes: int = 100
    eval_freq: int = 0
    eval_freq_episodes: int = 10
    max_episode_steps: int | None = None
    solved: float | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    gym_packages: list[str] = field(default_factory=list)
    env_wrapper: Any = None
    frame_stack: int | None = None
    normalize: bool | dict[str, Any] = False
    callback: Any = None
    policy: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, for YAML."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> RunConfig:
        """Rebuild from :meth:`to_dict` output (extra keys such as versions are ignored)."""
        names = {f.name for f in fields(cls)}
        missing = [n for n in ("agent", "env", "env_id", "algorithm") if n not in data]
        if missing:
            raise QrlError(f"{source} is not a qrl run configuration: missing {missing}")
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in names})


def _absolute_circuit_file(policy: dict[str, Any]) -> None:
    """A circuit family named by file (``path/file.py:function``) is recorded with its
    absolute path, so that the saved model loads from any folder."""
    circuit = policy.get("circuit")
    if isinstance(circuit, str) and ".py:" in circuit:
        where, _, attr = circuit.rpartition(":")
        policy["circuit"] = f"{Path(where).expanduser().resolve()}:{attr}"


def merge_config(
    agent: str,
    env: str,
    seed: int = 0,
    timesteps: int | None = None,
    executor: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    gym_packages: Sequence[str] = (),
) -> RunConfig:
    """Merge env preset, agent preset and overrides into a :class:`RunConfig`.

    The names it holds are checked against the SB3 signatures by
    :func:`qrl.agents.resolve_config`, which most callers want.

    :param agent: agent preset name or path
    :param env: env preset name or path, or a Gymnasium id
    :param seed: random seed
    :param timesteps: training budget; the env preset's by default
    :param executor: circuit executor for quantum policies ("torch", "default.qubit", ...)
    :param overrides: ``key=value`` strings (or a mapping) such as ``policy.n_layers=3``
    :param gym_packages: modules to import first, whose import registers tasks
    :return: the resolved configuration
    """
    agent_name, agent_data = load_agent_preset(agent)
    env_name, env_data = load_env_preset(env, gym_packages)
    items = list(override_items(overrides).items())
    # An algorithm override selects that algorithm's hyperparameters from the env preset.
    algorithm = str(dict(items).get("algorithm", agent_data["algorithm"])).lower()
    env_section = _mapping(
        agent_data["envs"].get(env_name, agent_data["envs"].get(env_data["id"])),
        f"section {env_name!r} of agent {agent_name!r}",
    )
    _check_keys(
        env_section, {"policy", "hyperparameters"}, f"agent {agent_name!r}, env {env_name!r}"
    )
    hyper = dict(_mapping(env_data["algorithms"].get(algorithm), f"algorithms.{algorithm}"))
    hyper.update(agent_data["hyperparameters"])
    hyper.update(_mapping(env_section.get("hyperparameters"), "hyperparameters"))
    policy = copy.deepcopy(agent_data["policy"])
    policy.update(_mapping(env_section.get("policy"), "policy"))
    config = RunConfig(
        agent=agent_name,
        algorithm=algorithm,
        seed=seed,
        policy=policy,
        hyperparameters=hyper,
        **task_settings(env_name, env_data),
    )
    lift_zoo_keys(config)
    packages = [*_string_list(env_data.get("gym_packages"), "gym_packages"), *gym_packages]
    packages += _string_list(config.gym_packages, "gym_packages")  # from the hyperparameters
    config.gym_packages = list(dict.fromkeys(packages))
    apply_overrides(config, items)
    lift_zoo_keys(config)
    _absolute_circuit_file(config.policy)
    if timesteps is not None:
        config.timesteps = timesteps
    if executor is not None:
        if policy.get("extractor") != "quantum":
            raise QrlError(f"--executor {executor!r} given, but agent {agent_name!r} is classical")
        config.policy["executor"] = executor
    check_settings(config)
    return config


def override_items(overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Overrides as key -> value: ``key=value`` strings parsed, a mapping as it is.

    :raises QrlError: for a string without ``=`` or a value that is not YAML
    """
    if isinstance(overrides, Mapping):
        return dict(overrides)
    return dict(parse_override(o) for o in overrides)


def parse_override(item: str, flag: str = "--set") -> tuple[str, Any]:
    """Split ``key=value``; the value is read as YAML (numbers, lists, booleans...).

    :param item: the ``key=value`` text
    :param flag: the option it came with (``--set``, ``--option``), for messages
    """
    if "=" not in item:
        raise QrlError(f"{flag} takes key=value, got {item!r}")
    key, _, raw = item.partition("=")
    return key.strip(), parse_yaml(raw, f"{flag} {item}")


_TOP_LEVEL = {
    "seed",
    "timesteps",
    "n_envs",
    "eval_episodes",
    "eval_freq",
    "eval_freq_episodes",
    "max_episode_steps",
    "solved",
    "algorithm",
}
_NESTED = {"policy", "hyperparameters", "env_kwargs"}

# rl-baselines3-zoo's task options, top-level settings here; a zoo hyperparameter file
# mixes them with the algorithm's arguments, so they are also taken from there.
ZOO_KEYS = ("gym_packages", "env_wrapper", "frame_stack", "normalize", "callback")
_TOP_LEVEL |= set(ZOO_KEYS)
_ZOO_HYPER = {**{key: key for key in ZOO_KEYS}, "n_envs": "n_envs", "n_timesteps": "timesteps"}


def lift_zoo_keys(config: RunConfig) -> None:
    """Move the zoo's task options written among the hyperparameters (``normalize``,
    ``frame_stack``, ``env_wrapper``, ``callback``, ``n_envs``, ``n_timesteps``) to their
    top-level settings, in place, as the zoo reads them."""
    for key, setting in _ZOO_HYPER.items():
        if key in config.hyperparameters:
            setattr(config, setting, config.hyperparameters.pop(key))


def apply_overrides(config: RunConfig, items: Sequence[tuple[str, Any]]) -> None:
    """Apply (key, value) overrides in place. Nested keys are dotted, at any depth:
    ``policy.n_layers``, ``policy.executor_options.shots``."""
    valid = sorted(_TOP_LEVEL | {f"{n}.<key>" for n in _NESTED})
    for key, value in items:
        head, _, rest = key.partition(".")
        if head in _NESTED and rest:
            _set_nested(getattr(config, head), rest.split("."), value, head)
        elif head in _TOP_LEVEL and not rest:
            setattr(config, head, str(value).lower() if head == "algorithm" else value)
        else:
            raise QrlError(f"unknown --set key {key!r}; valid: {', '.join(valid)}")


def _set_nested(target: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    """``target[k1][k2]... = value``, making the mappings on the way."""
    for key in keys[:-1]:
        where = f"{where}.{key}"
        inner = target.setdefault(key, {})
        if not isinstance(inner, dict):
            raise QrlError(f"--set {where}.<key>: {where} is {inner!r}, not a mapping")
        target = inner
    target[keys[-1]] = value


# -- values: types and ranges, before any work ---------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bad_value(what: str, value: Any, allowed: str) -> QrlError:
    """The one-line error for a value of the wrong type or out of range.

    :param what: the setting, e.g. ``timesteps`` or ``executor option retries``
    :param value: the value given
    :param allowed: what is allowed, e.g. "a whole number >= 1"
    """
    return QrlError(f"bad {what}: {_shown(value)}; allowed: {allowed}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def bounds_text(minimum: float | None, maximum: float | None, above: bool = False) -> str:
    """A range in words: ``from 0 to 1``, ``>= 1``, ``> 0`` (empty without bounds)."""
    if minimum is not None and maximum is not None:
        return f"from {_number(minimum)} to {_number(maximum)}"
    if minimum is not None:
        return f"{'>' if above else '>='} {_number(minimum)}"
    return "" if maximum is None else f"<= {_number(maximum)}"


def _bounds(minimum: float | None, maximum: float | None, above: bool = False) -> str:
    text = bounds_text(minimum, maximum, above)
    return f" {text}" if text else ""


@overload
def whole_number(
    value: Any,
    what: str,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    allow_none: Literal[False] = False,
) -> int: ...


@overload
def whole_number(
    value: Any,
    what: str,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    allow_none: bool,
) -> int | None: ...


def whole_number(
    value: Any,
    what: str,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    allow_none: bool = False,
) -> int | None:
    """Check a whole number (``1e5`` and ``3.0`` count; ``2.5``, ``true``, text do not).

    :param value: the value given
    :param what: the setting, for the message
    :param minimum: the smallest allowed value
    :param maximum: the largest allowed value
    :param allow_none: whether null (None) is allowed
    :return: the value as an int (None if null is allowed and given)
    :raises QrlError: naming the setting, the value and what is allowed
    """
    allowed = "a whole number" + _bounds(minimum, maximum) + (" or null" if allow_none else "")
    if value is None and allow_none:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_value(what, value, allowed)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise bad_value(what, value, allowed)
    return value


@overload
def real_number(
    value: Any,
    what: str,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    *,
    allow_none: Literal[False] = False,
) -> float: ...


@overload
def real_number(
    value: Any,
    what: str,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    *,
    allow_none: bool,
) -> float | None: ...


def real_number(
    value: Any,
    what: str,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    *,
    allow_none: bool = False,
) -> float | None:
    """Check a number (whole or not; not ``true``, not text, not NaN).

    :param value: the value given
    :param what: the setting, for the message
    :param minimum: the smallest allowed value (excluded with ``above``)
    :param maximum: the largest allowed value
    :param above: the value must be greater than ``minimum``
    :param allow_none: whether null (None) is allowed
    :return: the value as a float (None if null is allowed and given)
    :raises QrlError: naming the setting, the value and what is allowed
    """
    allowed = "a number" + _bounds(minimum, maximum, above) + (" or null" if allow_none else "")
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise bad_value(what, value, allowed)
    low = minimum is not None and (value <= minimum if above else value < minimum)
    if low or (maximum is not None and value > maximum):
        raise bad_value(what, value, allowed)
    return float(value)


def boolean(value: Any, what: str) -> bool:
    """Check a boolean (``true`` or ``false``; not 0, 1 or text).

    :raises QrlError: naming the setting, the value and what is allowed
    """
    if not isinstance(value, bool):
        raise bad_value(what, value, "true or false")
    return value


SEED_MAX = 2**31 - 1  # NumPy takes seeds below 2**32; evaluations add offsets of 10**4 to 10**6
DEFAULT_MAX_EPISODE_STEPS = 1000  # the step limit of a task that has none


def check_settings(config: RunConfig) -> None:
    """Check the types and ranges of a configuration's top-level settings, and that no
    section holds a credential; whole numbers written ``1e5`` become ints.

    :raises QrlError: naming the setting, the value and what is allowed
    """
    check_no_credentials(config.to_dict(), "setting")
    for name in ("policy", "hyperparameters", "env_kwargs"):
        if not isinstance(getattr(config, name), dict):
            raise bad_value(name, getattr(config, name), "a mapping (key: value)")
    config.seed = whole_number(config.seed, "seed", 0, SEED_MAX)
    config.timesteps = whole_number(config.timesteps, "timesteps", 1)
    config.n_envs = whole_number(config.n_envs, "n_envs", 1)
    config.eval_episodes = whole_number(config.eval_episodes, "eval_episodes", 0)
    config.eval_freq = whole_number(config.eval_freq, "eval_freq", 0)
    config.eval_freq_episodes = whole_number(config.eval_freq_episodes, "eval_freq_episodes", 1)
    config.max_episode_steps = whole_number(
        config.max_episode_steps, "max_episode_steps", 1, allow_none=True
    )
    config.solved = real_number(config.solved, "solved", allow_none=True)
    _check_zoo_settings(config)
    if config.max_episode_steps is not None and "max_episode_steps" in config.env_kwargs:
        raise QrlError(
            "the step limit is given twice (max_episode_steps and env_kwargs.max_episode_steps): "
            "keep max_episode_steps"
        )


# VecNormalize's keyword arguments that a ``normalize`` mapping may set.
NORMALIZE_OPTIONS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")


def _check_zoo_settings(config: RunConfig) -> None:
    """Check the forms of the zoo's task options (their classes are imported and checked by
    :func:`qrl.agents.validate`); ``frame_stack`` of 0 or false means none."""
    config.gym_packages = _string_list(config.gym_packages, "gym_packages")
    if config.frame_stack in (None, False, 0):
        config.frame_stack = None
    else:
        config.frame_stack = whole_number(config.frame_stack, "frame_stack", 1)
    if isinstance(config.normalize, dict):
        for key, value in config.normalize.items():
            if key not in NORMALIZE_OPTIONS:
                raise QrlError(
                    f"unknown normalize option {key!r}; {choices_hint(str(key), NORMALIZE_OPTIONS)}"
                )
            if key.startswith("norm_"):
                boolean(value, f"normalize.{key}")
            else:
                real_number(value, f"normalize.{key}", 0, None, True)
    elif config.normalize is None:
        config.normalize = False
    elif not isinstance(config.normalize, bool):
        allowed = "true, false, or a mapping of VecNormalize options"
        raise bad_value("normalize", config.normalize, allowed)
    for key in ("env_wrapper", "callback"):
        class_specs(getattr(config, key), key)


# -- credentials: never settings, never on disk --------------------------------------------

# Words that name a credential in a key (case-insensitive; words split at _ - . and caps).
# Words of a key that name a credential on their own (``QISKIT_IBM_TOKEN``, ``password``),
# and pairs of words that do together (``api_key``, ``access_key``, ``auth_token``): "key",
# "keys" and "tokens" alone also name ordinary settings (``key_size``, ``max_tokens``).
CREDENTIAL_WORDS = frozenset(
    {
        "token",
        "apikey",
        "secret",
        "secrets",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "authorization",
        "bearer",
        "cookie",
    }
)
CREDENTIAL_PAIRS = frozenset(
    {
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "signingkey",
        "sshkey",
        "authkey",
        "authtoken",
        "accesstoken",
        "sessiontoken",
        "refreshtoken",
        "sastoken",
    }
)
CREDENTIALS_FROM = (
    "credentials come only from the environment (QISKIT_IBM_TOKEN, QISKIT_IBM_INSTANCE; AWS's "
    "variables) or the vendor's saved account (QiskitRuntimeService.save_account(...), "
    "~/.aws), never from settings or options, which are saved with the run"
)
_MIN_SECRET_LENGTH = 8  # shorter environment values are not treated as credentials


def is_credential_key(key: Any) -> bool:
    """Whether a key names a credential: ``token``, ``api_key``, ``apiKey``,
    ``QISKIT_IBM_TOKEN``, ``Password``, ``key`` alone, ... (a word of
    :data:`CREDENTIAL_WORDS`, or two adjacent words of :data:`CREDENTIAL_PAIRS`)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key))
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]
    pairs = {a + b for a, b in itertools.pairwise(words)}
    return (
        words == ["key"]
        or any(w in CREDENTIAL_WORDS for w in words)
        or bool(pairs & CREDENTIAL_PAIRS)
    )


def find_credential_key(data: Any, where: str = "") -> str | None:
    """The dotted path of the first credential-like key in nested mappings and lists.

    :param data: plain data (mappings, lists, values)
    :param where: the path of ``data`` itself
    :return: e.g. ``policy.executor_options.device_options.api_key``; None if there is none
    """
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if is_credential_key(key):
                return path
            found = find_credential_key(value, path)
            if found is not None:
                return found
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found = find_credential_key(value, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def check_no_credentials(data: Any, what: str) -> None:
    """Refuse a credential-like key at any depth of ``data``.

    :param data: settings or options (mappings and lists, at any depth)
    :param what: what they are, for the message ("executor option", "setting")
    :raises QrlError: naming the key (never its value) and where credentials come from
    """
    found = find_credential_key(data)
    if found is not None:
        raise QrlError(f"{what} {found!r} looks like a credential; {CREDENTIALS_FROM}")


def environment_credentials() -> dict[str, str]:
    """The environment's variables whose names look like credentials (QISKIT_IBM_TOKEN,
    AWS_SECRET_ACCESS_KEY, ...) and whose values are long enough to be secrets."""
    return {
        name: value
        for name, value in os.environ.items()
        if len(value) >= _MIN_SECRET_LENGTH and is_credential_key(name)
    }


def _strings(data: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string of nested data (keys included), with its path."""
    if isinstance(data, str):
        yield where, data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                yield path, key
            yield from _strings(value, path)
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            yield from _strings(value, f"{where}[{i}]")


def check_before_writing(data: Any, path: Path | str) -> None:
    """The last check before a file of a run is written: no credential-like key, and no
    value that contains a credential of the environment (e.g. ``QISKIT_IBM_TOKEN``'s).

    :param data: the mapping about to be written
    :param path: the file, for the message
    :raises QrlError: naming the file and the key (never the value); nothing is written
    """
    found = find_credential_key(data)
    if found is not None:
        raise QrlError(
            f"refusing to write {path}: key {found!r} looks like a credential; {CREDENTIALS_FROM}"
        )
    secrets = environment_credentials()
    if not secrets:
        return
    for where, text in _strings(data, ""):
        for name, secret in secrets.items():
            if secret in text:
                raise QrlError(
                    f"refusing to write {path}: {where or 'a value'} holds the value of "
                    f"${name}, a credential; {CREDENTIALS_FROM}"
                )


def preset_descriptions(kind: str) -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped preset of a kind."""
    out = []
    for name in preset_names(kind):
        data = read_yaml(preset_dir(kind) / f"{name}.yaml")
        out.append((name, " ".join(str(data.get("description", "")).split())))
    return out
