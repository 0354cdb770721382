"""Agent and environment presets (YAML), and the resolved configuration of a run.

An **env preset** (``envs/<name>.yaml``) describes a task: the Gymnasium id, the number of
parallel environments, the training budget, the "solved" threshold and the tuned
hyperparameters of each algorithm, whose keys are SB3's own arguments. An **agent preset**
(``agents/<name>.yaml``) names an algorithm and a policy block; optional per-env sections
adjust the policy for a task. The quantum and the classical agent of one task therefore
share every hyperparameter and differ only in the policy.

Resolution order, later wins: SB3 defaults, env preset, agent preset (and its section for
the env), ``--set key=value`` overrides.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from qrl.errors import QrlError, choices_hint


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


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely; errors name the source and line.

    :param text: the YAML document
    :param source: where it came from, for messages
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise QrlError(f"malformed YAML in {source}: {exc}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from a file.

    :raises QrlError: if the file is missing, malformed or not a mapping
    """
    try:
        text = path.read_text()
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
    "env_kwargs",
    "algorithms",
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


def load_env_preset(name: str) -> tuple[str, dict[str, Any]]:
    """Load an env preset by name or path; a bare Gymnasium id gets a default preset.

    :return: the preset's name and its data (with at least ``id``)
    """
    import gymnasium as gym

    import qrl.tasks  # noqa: F401  (registers the qrl/ tasks)

    path = find_preset("envs", name) or _preset_with_id(name)
    if path is None:
        if name in gym.registry:
            return name, {
                "id": name,
                "description": "Gymnasium defaults",
                "algorithms": {},
                "env_kwargs": {},
            }
        valid = preset_names("envs")
        raise QrlError(
            f"unknown environment {name!r}; {choices_hint(name, list(gym.registry))}. "
            f"Env presets: {', '.join(valid)}; any registered Gymnasium id also works"
        )
    data = read_yaml(path)
    _check_keys(data, ENV_KEYS, str(path))
    data.setdefault("id", path.stem)
    if data["id"] not in gym.registry:
        raise QrlError(f"{path}: {data['id']!r} is not a registered Gymnasium id")
    for key in ("algorithms", "env_kwargs"):
        data[key] = _mapping(data.get(key), f"'{key}' in {path}")
    return path.stem, data


def _preset_with_id(env_id: str) -> Path | None:
    """The shipped env preset whose Gymnasium id is ``env_id`` (e.g. qrl/CartPoleNoVel-v1)."""
    for name in preset_names("envs"):
        path = preset_dir("envs") / f"{name}.yaml"
        data = parse_yaml(path.read_text(), str(path))
        if isinstance(data, dict) and data.get("id") == env_id:
            return path
    return None


def task_settings(env_name: str, env_data: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`RunConfig` fields an env preset sets."""
    return {
        "env": env_name,
        "env_id": str(env_data["id"]),
        "timesteps": int(env_data.get("timesteps", 100_000)),
        "n_envs": int(env_data.get("n_envs", 1)),
        "eval_episodes": int(env_data.get("eval_episodes", 100)),
        "eval_freq": int(env_data.get("eval_freq", 0)),
        "eval_freq_episodes": int(env_data.get("eval_freq_episodes", 10)),
        "solved": env_data.get("solved"),
        "env_kwargs": dict(env_data.get("env_kwargs") or {}),
    }


@dataclass
class RunConfig:
    """Everything needed to build, train and evaluate one agent on one task.

    Saved as ``config.yaml`` in the run folder; plain data only.
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
    solved: float | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
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
    :return: the resolved configuration
    """
    agent_name, agent_data = load_agent_preset(agent)
    env_name, env_data = load_env_preset(env)
    items = list(
        overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    )
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
        seed=int(seed),
        policy=policy,
        hyperparameters=hyper,
        **task_settings(env_name, env_data),
    )
    apply_overrides(config, items)
    _absolute_circuit_file(config.policy)
    if timesteps is not None:
        config.timesteps = int(timesteps)
    if executor is not None:
        if policy.get("extractor") != "quantum":
            raise QrlError(f"--executor {executor!r} given, but agent {agent_name!r} is classical")
        config.policy["executor"] = executor
    return config


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as YAML (numbers, lists, booleans...)."""
    if "=" not in item:
        raise QrlError(f"--set takes key=value, got {item!r}")
    key, _, raw = item.partition("=")
    return key.strip(), parse_yaml(raw, f"--set {item}")


_TOP_LEVEL = {
    "seed",
    "timesteps",
    "n_envs",
    "eval_episodes",
    "eval_freq",
    "eval_freq_episodes",
    "solved",
    "algorithm",
}
_NESTED = {"policy", "hyperparameters", "env_kwargs"}


def apply_overrides(config: RunConfig, items: Sequence[tuple[str, Any]]) -> None:
    """Apply (key, value) overrides in place (nested keys are dotted: ``policy.n_layers``)."""
    valid = sorted(_TOP_LEVEL | {f"{n}.<key>" for n in _NESTED})
    for key, value in items:
        head, _, rest = key.partition(".")
        if head in _NESTED and rest:
            getattr(config, head)[rest] = value
        elif head in _TOP_LEVEL and not rest:
            setattr(config, head, str(value).lower() if head == "algorithm" else value)
        else:
            raise QrlError(f"unknown --set key {key!r}; valid: {', '.join(valid)}")


def preset_descriptions(kind: str) -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped preset of a kind."""
    out = []
    for name in preset_names(kind):
        data = read_yaml(preset_dir(kind) / f"{name}.yaml")
        out.append((name, " ".join(str(data.get("description", "")).split())))
    return out
