"""From a resolved configuration to a Stable-Baselines3 model, and back from a saved one.

The policy block of a preset is plain data. ``extractor: quantum`` puts a
:class:`~qrl.extractors.QuantumExtractor` in front of SB3's heads and passes it the circuit
options (``extractor: dense``, :class:`~qrl.extractors.DenseExtractor`, is its classical
stand-in); for ``recurrent_ppo``, ``cell: lstm`` (sb3-contrib's LSTM policy, as
:class:`~qrl.recurrent.LSTMPolicy`) or ``cell: qfwp``
(:class:`~qrl.fast_weights.QFWPPolicy`, circuit options included) selects the recurrent
policy. Every other key is an argument of SB3's policy class (``net_arch``,
``activation_fn`` by name, ``ortho_init``, ...).

``net_arch`` is written in the on-policy actor-critic form, ``{pi: [...], vf: [...]}``, and
given to each algorithm in the form its policy takes (:func:`algorithm_net_arch`):

- SAC, TD3, DDPG, TQC and CrossQ, whose critic is a Q-network: ``{pi: pi, qf: vf}``; a
  mapping that already has ``qf`` is left as it is.
- DQN and QR-DQN, one Q-network: the list of the value head's layers, ``qf`` if given, else
  ``vf``; a list stays a list.
- PPO, A2C, TRPO and recurrent_ppo: unchanged.

So one agent preset serves every algorithm. Hyperparameters are the algorithm's own
arguments, ``verbose`` (0, 1 or 2; 0 by default) included.
"""

from __future__ import annotations

import collections.abc
import contextlib
import inspect
import json
import types
import typing
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from sb3_contrib import QRDQN, TQC, TRPO, CrossQ
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from qrl.encoders import ACTIVATIONS
from qrl.errors import QrlError, choices_hint, lookup
from qrl.extractors import DenseExtractor, QuantumExtractor, circuit_option_names
from qrl.fast_weights import LSTM_OPTIONS, QFWPPolicy, cell_option_names
from qrl.imports import load_classes
from qrl.observations import n_raw_features
from qrl.presets import (
    RunConfig,
    bad_value,
    bounds_text,
    check_settings,
    merge_config,
    real_number,
    whole_number,
)
from qrl.recurrent import LSTMPolicy, RecurrentPPO

# Every SB3 and sb3-contrib algorithm whose policy takes a features extractor. Left out:
# sb3-contrib's ARS (its policy takes no features extractor) and MaskablePPO (it needs
# action masks from the environment).
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "recurrent_ppo": RecurrentPPO,
    "tqc": TQC,
    "qrdqn": QRDQN,
    "trpo": TRPO,
    "crossq": CrossQ,
}

# Algorithms whose critic is a Q-network next to the actor: net_arch {pi: [...], qf: [...]}
# (DDPG is a TD3).
Q_CRITIC_ALGORITHMS: tuple[type[BaseAlgorithm], ...] = (SAC, TD3, TQC, CrossQ)
# Algorithms with one Q-network and no actor: net_arch is one list of layer sizes.
Q_NETWORK_ALGORITHMS: tuple[type[BaseAlgorithm], ...] = (DQN, QRDQN)

# Recurrent cells of recurrent_ppo's policy (policy key ``cell``).
CELLS: dict[str, type[RecurrentActorCriticPolicy]] = {
    "lstm": LSTMPolicy,
    "qfwp": QFWPPolicy,
}

EXTRACTORS: dict[str, type] = {
    "flatten": FlattenExtractor,
    "quantum": QuantumExtractor,
    "dense": DenseExtractor,
}

# Hyperparameters whose value may be a linear schedule written "lin_<initial value>".
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")

# Arguments that qrl sets itself, or that are not plain data.
_NOT_HYPER = {"self", "policy", "env", "policy_kwargs", "seed", "tensorboard_log"}
_NOT_POLICY = {
    "self",
    "observation_space",
    "action_space",
    "lr_schedule",
    "features_extractor_class",
    "features_extractor_kwargs",
    "optimizer_class",
}


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 algorithm class registered under ``name``."""
    return lookup(ALGORITHMS, str(name).lower(), "algorithm")


def _parameters(func: Any) -> list[str]:
    return [
        n
        for n, p in inspect.signature(func).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and not n.startswith("_")
    ]


def extractor_option_names(extractor_cls: type) -> list[str]:
    """Keyword arguments of a features extractor class, its circuit options included."""
    names = [n for n in _parameters(extractor_cls) if n != "observation_space"]
    return names + (circuit_option_names() if extractor_cls is QuantumExtractor else [])


def hyperparameter_names(algorithm: str) -> list[str]:
    """Arguments of the algorithm's constructor that a preset may set."""
    return [n for n in _parameters(algorithm_class(algorithm).__init__) if n not in _NOT_HYPER]


def policy_class(algorithm: str, policy: dict[str, Any]) -> type[BasePolicy]:
    """The SB3 policy class a policy block selects for an algorithm."""
    algo = algorithm_class(algorithm)
    if algo is RecurrentPPO:
        return lookup(CELLS, str(policy.get("cell", "lstm")).lower(), "cell")
    if "cell" in policy:
        raise QrlError(f"policy.cell is for recurrent_ppo, not {algorithm}")
    return algo.policy_aliases["MlpPolicy"]


def policy_option_names(algorithm: str, policy: dict[str, Any] | None = None) -> list[str]:
    """Keys a policy block may hold for this algorithm, given its extractor and cell."""
    policy = policy or {}
    policy_cls = policy_class(algorithm, policy)
    names = [n for n in _parameters(policy_cls.__init__) if n not in _NOT_POLICY]
    if policy_cls is QFWPPolicy:
        parent = RecurrentActorCriticPolicy.__init__
        names += cell_option_names()
        names += [n for n in _parameters(parent) if n not in _NOT_POLICY and n not in names]
        names = [n for n in names if n not in LSTM_OPTIONS]
    if algorithm_class(algorithm) is RecurrentPPO:
        names.append("cell")
    names.append("extractor")
    extractor_cls = lookup(EXTRACTORS, policy.get("extractor", "flatten"), "extractor")
    if extractor_cls is not FlattenExtractor:
        if policy_cls is QFWPPolicy:
            raise QrlError("the qfwp cell runs its own circuit: drop policy.extractor")
        names += extractor_option_names(extractor_cls)
    return names


def policy_kwargs(policy: dict[str, Any], algorithm: str | None = None) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` from a preset's policy block (``cell`` is read by
    :func:`policy_class`).

    :param policy: the policy block
    :param algorithm: the registered algorithm, whose form ``net_arch`` is given in
        (:func:`algorithm_net_arch`); None leaves ``net_arch`` as written
    :return: the keyword arguments of the SB3 policy class
    """
    options = dict(policy)
    options.pop("cell", None)
    extractor = options.pop("extractor", "flatten")
    extractor_cls = lookup(EXTRACTORS, extractor, "extractor")
    extractor_keys = set()
    if extractor_cls is not FlattenExtractor:
        extractor_keys = set(extractor_option_names(extractor_cls))
    kwargs: dict[str, Any] = {}
    extractor_kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key in extractor_keys:
            extractor_kwargs[key] = value
        elif key == "activation_fn" and isinstance(value, str):
            kwargs[key] = lookup(ACTIVATIONS, value, "activation_fn")
        else:
            kwargs[key] = value
    if algorithm is not None and "net_arch" in kwargs:
        kwargs["net_arch"] = algorithm_net_arch(algorithm, kwargs["net_arch"])
    if extractor_cls is not FlattenExtractor:
        kwargs["features_extractor_class"] = extractor_cls
        kwargs["features_extractor_kwargs"] = extractor_kwargs
    return kwargs


def validate(config: RunConfig) -> None:
    """Check every setting before any work starts: the values of the top-level settings
    (:func:`qrl.presets.check_settings`: types, ranges, no credentials), the algorithm, the
    policy and hyperparameter names, and the hyperparameters' and SB3 policy arguments'
    values against the SB3 signatures (:func:`check_arguments`).

    :raises QrlError: naming the setting, the value and what is allowed
    """
    check_settings(config)
    algo = algorithm_class(config.algorithm)
    valid_policy = policy_option_names(config.algorithm, config.policy)
    for key in config.policy:
        if key not in valid_policy:
            raise QrlError(f"unknown policy option {key!r}; {choices_hint(key, valid_policy)}")
    valid_hyper = hyperparameter_names(config.algorithm)
    for key in config.hyperparameters:
        if key not in valid_hyper:
            raise QrlError(
                f"unknown {config.algorithm} hyperparameter {key!r}; "
                f"{choices_hint(key, valid_hyper)}"
            )
    check_arguments(algo.__init__, config.hyperparameters, "hyperparameters")
    _check_policy_arguments(config)
    load_classes(config.env_wrapper, gym.Wrapper, "env_wrapper")
    load_classes(config.callback, BaseCallback, "callback")


def _check_policy_arguments(config: RunConfig) -> None:
    """Check the policy block against the SB3 policy's signature, in place, ``net_arch`` in
    the form the algorithm takes (:func:`algorithm_net_arch`; the block keeps its own).

    :param config: the configuration
    :raises QrlError: naming the setting, the value and what is allowed
    """
    values = dict(config.policy)
    if "net_arch" in values:
        values["net_arch"] = algorithm_net_arch(config.algorithm, values["net_arch"])
    check_arguments(policy_class(config.algorithm, config.policy).__init__, values, "policy")
    config.policy.update({k: v for k, v in values.items() if k != "net_arch"})


_NET_ARCH_KEYS = ("pi", "vf", "qf")


def algorithm_net_arch(algorithm: str, net_arch: Any) -> Any:
    """``policy.net_arch`` in the form the algorithm's policy takes.

    Presets write the on-policy actor-critic form ``{pi: [...], vf: [...]}``. For an
    algorithm whose critic is a Q-network (SAC, TD3, DDPG, TQC, CrossQ) it becomes
    ``{pi: pi, qf: vf}`` (``pi`` missing: ``[]``, as on-policy); a mapping with ``qf`` is
    left as it is. For one with a single Q-network (DQN, QR-DQN) it becomes the list of the
    value head's layers, ``qf`` if given, else ``vf``. Lists, null and the values of the
    other algorithms pass unchanged (SB3's signature checks them).

    :param algorithm: the registered algorithm
    :param net_arch: the policy block's ``net_arch``
    :return: the ``net_arch`` to give the algorithm's policy
    :raises QrlError: for a mapping with keys other than pi, vf and qf or with neither vf nor
        qf, and for DQN or QR-DQN a value that is neither a list nor null nor such a mapping
    """
    algo = algorithm_class(algorithm)
    if issubclass(algo, Q_NETWORK_ALGORITHMS):
        allowed = (
            "a list of layer sizes such as [64, 64], null, or {pi: [...], vf: [...]} "
            f"whose vf (or qf) layers {algorithm}'s Q-network takes"
        )
    elif issubclass(algo, Q_CRITIC_ALGORITHMS):
        allowed = (
            "a list of layer sizes such as [64, 64], null, {pi: [...], vf: [...]} "
            "(the critic takes vf) or {pi: [...], qf: [...]}"
        )
    else:
        return net_arch
    if isinstance(net_arch, dict):
        if any(key not in _NET_ARCH_KEYS for key in net_arch) or not (
            "vf" in net_arch or "qf" in net_arch
        ):
            raise bad_value("policy.net_arch", net_arch, allowed)
        if issubclass(algo, Q_NETWORK_ALGORITHMS):
            return net_arch.get("qf", net_arch.get("vf"))
        if "qf" in net_arch:
            return net_arch
        return {"pi": net_arch.get("pi", []), "qf": net_arch["vf"]}
    if issubclass(algo, Q_NETWORK_ALGORITHMS) and not (
        net_arch is None or isinstance(net_arch, list)
    ):
        raise bad_value("policy.net_arch", net_arch, allowed)
    return net_arch


# Ranges of hyperparameters and policy arguments: (minimum, maximum, minimum excluded).
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "gamma": (0, 1, False),
    "gae_lambda": (0, 1, False),
    "tau": (0, 1, False),
    "exploration_fraction": (0, 1, False),
    "exploration_initial_eps": (0, 1, False),
    "exploration_final_eps": (0, 1, False),
    "learning_rate": (0, None, False),  # 0 freezes the policy (tests of evaluation do)
    "clip_range": (0, None, True),
    "clip_range_vf": (0, None, True),
    "max_grad_norm": (0, None, True),
    "target_kl": (0, None, True),
    "rms_prop_eps": (0, None, True),
    "ent_coef": (0, None, False),
    "vf_coef": (0, None, False),
    "n_steps": (1, None, False),
    "batch_size": (1, None, False),
    "n_epochs": (1, None, False),
    "buffer_size": (1, None, False),
    "learning_starts": (0, None, False),
    "train_freq": (1, None, False),
    "gradient_steps": (-1, None, False),
    "target_update_interval": (1, None, False),
    "policy_delay": (1, None, False),
    "stats_window_size": (1, None, False),
    "sde_sample_freq": (-1, None, False),
    "target_policy_noise": (0, None, False),
    "target_noise_clip": (0, None, False),
    "n_critics": (1, None, False),
    "lstm_hidden_size": (1, None, False),
    "verbose": (0, 2, False),
    "n_lstm_layers": (1, None, False),
}


def _members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union annotation (``int | None`` -> (int, NoneType)), or itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _kind(member: Any) -> str | None:
    """What plain data an annotation member takes: "int", "float", "bool", "str", "none",
    "schedule", "list", "dict", "pair" (``tuple[int, str]``); None for Python objects."""
    origin = typing.get_origin(member) or member
    kinds = {bool: "bool", int: "int", float: "float", str: "str", type(None): "none"}
    if isinstance(origin, type) and origin in kinds:
        return kinds[origin]
    if origin is collections.abc.Callable:
        return "schedule"
    if origin in (list, collections.abc.Sequence):
        return "list"
    if origin in (dict, collections.abc.Mapping):
        return "dict"
    if origin is tuple:
        return "pair"
    if origin is torch.device:
        return "str"
    return None


_ALLOWED = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "none": "null",
    "schedule": "lin_<number> (a linear schedule)",
    "list": "a list",
    "dict": "a mapping",
    "pair": "a [number, unit] pair",
}


def check_argument(name: str, value: Any, annotation: Any, what: str) -> Any:
    """Check one value against its SB3 annotation and :data:`RANGES`.

    :param name: the argument
    :param value: its value (plain data from a preset or ``--set``)
    :param annotation: the argument's annotation in the SB3 signature
    :param what: the section, for messages ("hyperparameters", "policy")
    :return: the value, whole numbers written ``1e6`` as ints
    :raises QrlError: naming the setting, the value and what is allowed
    """
    kinds = [k for k in map(_kind, _members(annotation)) if k is not None]
    if not kinds:
        return value  # a Python object, or an annotation we cannot read: SB3 checks it
    key = f"{what}.{name}"
    low, high, above = RANGES.get(name, (None, None, False))
    allowed = " or ".join(_ALLOWED[k] for k in dict.fromkeys(kinds))
    if low is not None or high is not None:
        bounds = bounds_text(low, high, above)
        allowed += f" ({bounds})" if len(kinds) > 1 else f" {bounds}"
    if value is None:
        if "none" in kinds:
            return None
    elif isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int | float):
        number_kind = "int" if "int" in kinds else "float" if "float" in kinds else None
        if "schedule" in kinds and number_kind is None:
            number_kind = "float"
        if number_kind == "int":
            return whole_number(value, key, _int(low, above), _int(high, False))
        if number_kind == "float":
            real_number(value, key, low, high, above)
            return value
    elif isinstance(value, str):
        if "schedule" in kinds and value.startswith("lin_"):
            bounds = "" if low is None and high is None else f" {bounds_text(low, high, above)}"
            try:
                real_number(float(value[4:]), key, low, high, above)
            except (ValueError, QrlError):
                raise bad_value(
                    key, value, f"lin_<number>, e.g. lin_3e-3, the number{bounds}"
                ) from None
            return value
        if "str" in kinds:
            if name == "device":
                _check_device(value, key)
            return value
    elif isinstance(value, list | tuple):
        if "pair" in kinds and len(value) == 2:
            try:
                count = whole_number(value[0], key, _int(low, above))
            except QrlError:
                raise bad_value(key, value, allowed) from None
            if not isinstance(value[1], str):
                raise bad_value(key, value, allowed)
            return [count, value[1]]
        if "list" in kinds:
            return value
    elif isinstance(value, dict) and "dict" in kinds:
        return value
    raise bad_value(key, value, allowed)


def _int(bound: float | None, above: bool) -> int | None:
    if bound is None:
        return None
    return int(bound) + 1 if above else int(bound)


def _check_device(value: str, key: str) -> None:
    try:
        torch.device(value)
    except RuntimeError:
        raise bad_value(key, value, "auto, cpu, cuda or cuda:<index>") from None


def check_arguments(function: Any, values: dict[str, Any], what: str) -> None:
    """Check values against the annotations of a function's arguments (SB3's signatures),
    in place: whole numbers written ``1e6`` become ints.

    :param function: e.g. ``PPO.__init__`` or a policy class's ``__init__``
    :param values: argument name -> value; names the function does not take are left alone
    :param what: the section, for messages ("hyperparameters", "policy")
    :raises QrlError: naming the setting, the value and what is allowed
    """
    annotations = {n: p.annotation for n, p in inspect.signature(function).parameters.items()}
    # String annotations (``from __future__ import annotations``) made objects; SB3 names
    # types it imports for type checkers only, and then keeps the objects above.
    with contextlib.suppress(NameError, TypeError, AttributeError):
        annotations |= typing.get_type_hints(function)
    for name, value in values.items():
        annotation = annotations.get(name, inspect.Parameter.empty)
        if annotation is not inspect.Parameter.empty:
            values[name] = check_argument(name, value, annotation, what)


def resolve_config(
    agent: str,
    env: str,
    seed: int = 0,
    timesteps: int | None = None,
    executor: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    gym_packages: Sequence[str] = (),
) -> RunConfig:
    """Merge env preset, agent preset and overrides (:func:`qrl.presets.merge_config`) and
    check every name against the SB3 signatures: a validated :class:`RunConfig`.

    :param agent: agent preset name or path
    :param env: env preset name or path, or a Gymnasium id
    :param seed: random seed
    :param timesteps: training budget; the env preset's by default
    :param executor: circuit executor for quantum policies ("torch", "default.qubit", ...)
    :param overrides: ``key=value`` strings (or a mapping) such as ``policy.n_layers=3``
    :param gym_packages: modules to import first, whose import registers tasks
    :return: the resolved configuration
    """
    config = merge_config(agent, env, seed, timesteps, executor, overrides, gym_packages)
    validate(config)
    return config


def schedule(value: Any) -> Any:
    """Turn ``"lin_3e-3"`` into SB3's linear schedule from 3e-3 to 0; other values pass."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value[4:])
        except ValueError:
            raise QrlError(f"bad schedule {value!r}: write lin_<number>, e.g. lin_3e-3") from None
        return LinearSchedule(start, 0.0, 1.0)
    return value


def build_model(config: RunConfig, env: VecEnv) -> BaseAlgorithm:
    """Create the SB3 model a configuration describes.

    :param config: the resolved run configuration
    :param env: the training environments
    :return: an untrained model
    """
    algo = algorithm_class(config.algorithm)
    hyper = {k: schedule(v) if k in SCHEDULED else v for k, v in config.hyperparameters.items()}
    hyper.setdefault("verbose", 0)
    kwargs = policy_kwargs(config.policy, config.algorithm)
    policy_cls = policy_class(config.algorithm, config.policy)
    if kwargs.get("features_extractor_class") is QuantumExtractor or policy_cls is QFWPPolicy:
        n_raw_features(env.observation_space)  # a clear error before SB3's own checks
    try:
        return algo(policy_cls, env, policy_kwargs=kwargs, seed=config.seed, **hyper)
    except (
        TypeError,
        ValueError,
        KeyError,
        AssertionError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise QrlError(
            f"cannot build {config.algorithm} for {config.env_id} with agent "
            f"{config.agent!r}: {exc}"
        ) from exc


# Where the policy class of a saved model lives -> the algorithms that save it.
_SAVED_BY = {
    "stable_baselines3.dqn.": ("dqn",),
    "stable_baselines3.sac.": ("sac",),
    "stable_baselines3.td3.": ("td3", "ddpg"),
    "sb3_contrib.tqc.": ("tqc",),
    "sb3_contrib.qrdqn.": ("qrdqn",),
    "sb3_contrib.crossq.": ("crossq",),
    "sb3_contrib.common.recurrent.": ("recurrent_ppo",),
    "qrl.recurrent": ("recurrent_ppo",),
    "qrl.fast_weights": ("recurrent_ppo",),
}


def model_file_problem(path: Path) -> str | None:
    """What is wrong with a saved model file, or None if it is a whole SB3 zip archive
    (every member's checksum verified, SB3's ``data`` member present)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        return f"corrupted: not a whole zip archive ({exc}); it may have been cut short"
    if bad is not None:
        return f"corrupted: its member {bad} fails its checksum"
    if "data" not in names:
        return "corrupted: no Stable-Baselines3 data in it (cut short, damaged or not a model)"
    return None


def saved_timesteps(path: Path) -> int | None:
    """The steps a saved model had trained (SB3's ``num_timesteps``), None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            return int(json.loads(archive.read("data"))["num_timesteps"])
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile):
        return None


def saved_algorithms(path: Path) -> tuple[str, ...] | None:
    """The algorithms that could have saved a model file, read from its policy class
    (PPO, A2C and TRPO share theirs: told apart by their own settings, ``clip_range`` and
    ``cg_max_steps``); None when the file does not say.

    :param path: a whole model file (see :func:`model_file_problem`)
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        module = str(data["policy_class"]["__module__"])
    except (KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None
    for prefix, names in _SAVED_BY.items():
        if module.startswith(prefix):
            return names
    if module == "stable_baselines3.common.policies":
        for key, name in (("clip_range", "ppo"), ("cg_max_steps", "trpo"), ("n_steps", "a2c")):
            if key in data:
                return (name,)
    return None


# What evaluation needs of a saved model's schedules: nothing. Models saved by
# rl-baselines3-zoo pickle its own schedule classes, which need rl_zoo3 to unpickle.
EVALUATION_OBJECTS: dict[str, Any] = {
    "learning_rate": 0.0,
    "lr_schedule": lambda _: 0.0,
    "clip_range": lambda _: 0.0,
    "clip_range_vf": None,
    "exploration_schedule": lambda _: 0.0,
}


def load_model(
    path: str | Path,
    algorithm: str,
    env: VecEnv | None = None,
    custom_objects: dict[str, Any] | None = None,
    **changes: Any,
) -> BaseAlgorithm:
    """Load a saved model, with a clear error for a missing, damaged or foreign file.

    :param path: the model's .zip file
    :param algorithm: the registered algorithm it was trained with
    :param env: environments to attach (needed to continue training)
    :param custom_objects: saved values to replace instead of unpickling them (SB3's
        ``custom_objects``; :data:`EVALUATION_OBJECTS` for a model only evaluated)
    :param changes: hyperparameters to change (``"lin_<x>"`` schedules allowed)
    :return: the model
    :raises QrlError: naming the file and the problem (for a model of another algorithm,
        which one it is)
    """
    path = Path(path)
    if not path.is_file():
        raise QrlError(f"model file {path} does not exist")
    algo = algorithm_class(algorithm)
    problem = model_file_problem(path)
    if problem is not None:
        raise QrlError(f"model file {path} is unusable: {problem}")
    saved = saved_algorithms(path)
    if saved is not None and str(algorithm).lower() not in saved:
        raise QrlError(
            f"model file {path} holds a {saved[0]} model, not {algorithm}: pass --algo {saved[0]}"
        )
    try:
        hyper = {k: schedule(v) if k in SCHEDULED else v for k, v in changes.items()}
        return algo.load(path, env=env, device="auto", custom_objects=custom_objects, **hyper)
    except ModuleNotFoundError as exc:
        raise QrlError(
            f"model file {path} was saved with classes of the module {exc.name!r}, which is "
            f"not installed: install it to load the model"
        ) from None
    except (
        zipfile.BadZipFile,
        EOFError,
        KeyError,
        RuntimeError,
        ValueError,
        TypeError,
        AssertionError,
        AttributeError,
    ) as exc:
        raise QrlError(
            f"model file {path} is corrupted or is not a saved {algorithm} model "
            f"({type(exc).__name__}: {exc})"
        ) from None
