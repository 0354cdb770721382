"""From a resolved configuration to a Stable-Baselines3 model, and back from a saved one.

The policy block of a preset is plain data. ``extractor: quantum`` puts a
:class:`~qrl.extractors.QuantumExtractor` in front of SB3's heads and passes it the circuit
options (``extractor: dense``, :class:`~qrl.extractors.DenseExtractor`, is its classical
stand-in); for ``recurrent_ppo``, ``cell: lstm`` (sb3-contrib's LSTM policy, as
:class:`~qrl.recurrent.LSTMPolicy`) or ``cell: qfwp``
(:class:`~qrl.fast_weights.QFWPPolicy`, circuit options included) selects the recurrent
policy. Every other key is an argument of SB3's policy class (``net_arch``,
``activation_fn`` by name, ``ortho_init``, ...).
"""

from __future__ import annotations

import inspect
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from qrl.encoders import ACTIVATIONS
from qrl.errors import QrlError, choices_hint, lookup
from qrl.extractors import DenseExtractor, QuantumExtractor, circuit_option_names
from qrl.fast_weights import LSTM_OPTIONS, QFWPPolicy, cell_option_names
from qrl.observations import n_raw_features
from qrl.presets import RunConfig, merge_config
from qrl.recurrent import LSTMPolicy

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "recurrent_ppo": RecurrentPPO,
}

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
_NOT_HYPER = {"self", "policy", "env", "policy_kwargs", "seed", "tensorboard_log", "verbose"}
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


def policy_kwargs(policy: dict[str, Any]) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` from a preset's policy block (``cell`` is read by
    :func:`policy_class`)."""
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
    if extractor_cls is not FlattenExtractor:
        kwargs["features_extractor_class"] = extractor_cls
        kwargs["features_extractor_kwargs"] = extractor_kwargs
    return kwargs


def validate(config: RunConfig) -> None:
    """Check the algorithm, policy and hyperparameter names before any work starts."""
    algorithm_class(config.algorithm)
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
    if int(config.timesteps) < 1 or int(config.n_envs) < 1 or int(config.eval_episodes) < 0:
        raise QrlError("timesteps and n_envs must be positive, eval_episodes not negative")
    if int(config.eval_freq) < 0 or int(config.eval_freq_episodes) < 1:
        raise QrlError(
            "eval_freq must be 0 (no evaluation during training) or a number of steps, "
            "and eval_freq_episodes at least 1"
        )


def resolve_config(
    agent: str,
    env: str,
    seed: int = 0,
    timesteps: int | None = None,
    executor: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> RunConfig:
    """Merge env preset, agent preset and overrides (:func:`qrl.presets.merge_config`) and
    check every name against the SB3 signatures: a validated :class:`RunConfig`.

    :param agent: agent preset name or path
    :param env: env preset name or path, or a Gymnasium id
    :param seed: random seed
    :param timesteps: training budget; the env preset's by default
    :param executor: circuit executor for quantum policies ("torch", "default.qubit", ...)
    :param overrides: ``key=value`` strings (or a mapping) such as ``policy.n_layers=3``
    :return: the resolved configuration
    """
    config = merge_config(agent, env, seed, timesteps, executor, overrides)
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
    kwargs = policy_kwargs(config.policy)
    policy_cls = policy_class(config.algorithm, config.policy)
    if kwargs.get("features_extractor_class") is QuantumExtractor or policy_cls is QFWPPolicy:
        n_raw_features(env.observation_space)  # a clear error before SB3's own checks
    if algo is DQN and isinstance(kwargs.get("net_arch"), dict):
        raise QrlError(
            "dqn takes policy.net_arch as one list of layer sizes (e.g. [] or [64, 64]), "
            f"not {kwargs['net_arch']}; add --set 'policy.net_arch=[]'"
        )
    try:
        return algo(policy_cls, env, policy_kwargs=kwargs, seed=config.seed, verbose=0, **hyper)
    except (TypeError, ValueError, KeyError, AssertionError, NotImplementedError) as exc:
        raise QrlError(
            f"cannot build {config.algorithm} for {config.env_id} with agent "
            f"{config.agent!r}: {exc}"
        ) from exc


def load_model(
    path: str | Path, algorithm: str, env: VecEnv | None = None, **changes: Any
) -> BaseAlgorithm:
    """Load a saved model, with a clear error for a missing or corrupted file.

    :param path: the model's .zip file
    :param algorithm: the registered algorithm it was trained with
    :param env: environments to attach (needed to continue training)
    :param changes: hyperparameters to change (``"lin_<x>"`` schedules allowed)
    :return: the model
    """
    path = Path(path)
    if not path.is_file():
        raise QrlError(f"model file {path} does not exist")
    algo = algorithm_class(algorithm)
    try:
        hyper = {k: schedule(v) if k in SCHEDULED else v for k, v in changes.items()}
        return algo.load(path, env=env, device="auto", **hyper)
    except (zipfile.BadZipFile, EOFError, KeyError, RuntimeError, ValueError, OSError) as exc:
        raise QrlError(
            f"model file {path} is corrupted or is not a saved {algorithm} model "
            f"({type(exc).__name__}: {exc})"
        ) from None
