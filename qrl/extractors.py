"""Quantum features extractors: where a variational circuit enters a Stable-Baselines3 policy.

:class:`QuantumExtractor` is a ``BaseFeaturesExtractor``, so any SB3 algorithm that takes
``features_extractor_class`` (PPO, A2C, DQN, ...) runs it; SB3's usual heads
(``net_arch``) post-process the measured expectation values. Its keyword arguments are
plain data, so a saved model restores with ``PPO.load`` once ``qrl`` is importable.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from qrl.circuits import Circuit, features_per_qubit, make_circuit
from qrl.encoders import DEFAULT_QUBITS, make_encoder
from qrl.errors import QrlError, lookup
from qrl.executors import Executor, make_executor
from qrl.executors.cost import Cost
from qrl.observations import ObservationEncoder, is_discrete, n_raw_features
from qrl.simulator.memory import check_simulable

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_circuit(
    observation_space: gym.Space,
    *,
    circuit: str = "unentangled",
    n_layers: int = 2,
    encoding: str = "auto",
    rotations: str = "zyz",
    observables: Sequence[str] = ("X", "Y", "Z"),
    reupload: bool = True,
    entangler: str | None = None,
    pattern: str | None = None,
    n_qubits: int | None = None,
    features: Sequence[int] | None = None,
    squash: str = "arctan",
    memory_qubits: int = 0,
    encoder: str | None = None,
    encoder_hidden: Sequence[int] | None = None,
) -> tuple[Circuit, ObservationEncoder]:
    """The circuit a policy runs on an observation space, and the encoder of its inputs.

    These are the circuit options of every quantum policy (``policy.<option>`` in a preset),
    spelled out here only; :class:`QuantumExtractor` and the fast-weight cell pass them on by
    name.

    :param observation_space: the environment's observation space
    :param circuit: circuit family: "unentangled", "entangled", a registered name, or
        ``module:function`` (see :mod:`qrl.circuits.families`)
    :param n_layers: variational layers
    :param encoding: "auto" (basis for Discrete/MultiBinary spaces, else "rx"), "rx", "ry",
        "euler" (three features per qubit, after a Hadamard) or "basis"
    :param rotations: axes of the trainable rotations of each layer, e.g. "zyz"
    :param observables: Paulis measured on every qubit
    :param reupload: encode the inputs again in every layer
    :param entangler: the two-qubit gate of the entangling blocks: "cnot", "cz", "crx",
        "cry", "crz" or a registered gate (the entangled circuit's default: "cnot")
    :param pattern: the pairs it acts on: "ring" (default), "chain", "all", "brick",
        "range:R"
    :param n_qubits: qubits to use; by default just enough for the selected features, or
        8 (:data:`qrl.encoders.DEFAULT_QUBITS`) behind an encoder
    :param features: indices of the observation features to encode; all by default (not
        with an encoder, which reads the whole observation)
    :param squash: how Box features (or an encoder's outputs) become angles (see
        :class:`ObservationEncoder`)
    :param memory_qubits: qubits beyond those the features (or the encoder) load, when
        ``n_qubits`` is not given
    :param encoder: a classical encoder in front of the circuit: "linear", "mlp" or "cnn"
        (see :mod:`qrl.encoders`); None (or "none"): the observation is loaded directly
    :param encoder_hidden: the encoder's hidden layer sizes (default: [64] for mlp, none
        for linear and cnn)
    :return: the circuit description and the observation encoder
    """
    hybrid = None if encoder in (None, "none") else encoder
    if hybrid is not None:
        check_hybrid(observation_space, features, encoding)
        encoding = "rx" if encoding == "auto" else encoding
    elif encoder_hidden is not None:
        raise QrlError("encoder_hidden sizes a classical encoder: set policy.encoder too")
    if encoding == "auto":
        encoding = "basis" if is_discrete(observation_space) else "rx"
    elif encoding == "basis" and not is_discrete(observation_space):
        raise QrlError(
            f"basis encoding needs a Discrete or MultiBinary space, not {observation_space}"
        )
    per_qubit = features_per_qubit(encoding)
    if hybrid is not None:
        # The encoder outputs one angle per input slot of the loading qubits, whatever the
        # size of the observation.
        n_loaded = DEFAULT_QUBITS if n_qubits is None else int(n_qubits)
    else:
        n_features = len(features) if features is not None else n_raw_features(observation_space)
        n_loaded = max(1, math.ceil(n_features / per_qubit))
    if n_qubits is None:
        n_qubits = n_loaded + int(memory_qubits)
    options: dict[str, Any] = dict(
        n_layers=n_layers,
        encoding=encoding,
        rotations=rotations,
        observables=tuple(observables),
        reupload=reupload,
    )
    # Given only when set, so that a family without entanglers need not accept them.
    options |= {k: v for k, v in (("entangler", entangler), ("pattern", pattern)) if v is not None}
    spec = make_circuit(circuit, n_qubits, **options)
    check_simulable(spec)  # before an encoder is built: a refusal should cost nothing
    if hybrid is None:
        return spec, ObservationEncoder(observation_space, n_qubits, per_qubit, squash, features)
    network = make_encoder(hybrid, observation_space, n_loaded * per_qubit, encoder_hidden)
    # The encoder's outputs are unbounded features, squashed into angles like any Box's.
    outputs = gym.spaces.Box(-np.inf, np.inf, (n_loaded * per_qubit,), np.float32)
    return spec, ObservationEncoder(outputs, n_qubits, per_qubit, squash, network=network)


def check_hybrid(
    observation_space: gym.Space, features: Sequence[int] | None, encoding: str
) -> None:
    """Refuse circuit options that contradict a classical encoder.

    :param observation_space: the environment's observation space
    :param features: the ``features`` option
    :param encoding: the ``encoding`` option
    :raises QrlError: naming the conflicting options
    """
    n_raw_features(observation_space)  # the same spaces as without an encoder
    if features is not None:
        raise QrlError(
            "policy.features selects observation features to load, but with policy.encoder "
            "the encoder reads the whole observation: drop one of them"
        )
    if encoding == "basis":
        raise QrlError(
            "basis encoding loads the observation's bits, but an encoder outputs angles: "
            "use encoding auto, rx, ry or euler"
        )


def circuit_option_names() -> list[str]:
    """The circuit options of a quantum policy: the keyword arguments of :func:`build_circuit`."""
    return [n for n in inspect.signature(build_circuit).parameters if n != "observation_space"]


class CircuitRunner(nn.Module):
    """A module that runs a variational circuit: executor, scales and counters.

    Subclasses set :attr:`circuit`, :attr:`encoder`, :attr:`dtype`, :attr:`input_scale`
    and :attr:`output_scale` (see :meth:`_setup_circuit`) and call :meth:`run`.
    """

    circuit: Circuit
    encoder: ObservationEncoder
    dtype: torch.dtype
    theta: torch.Tensor
    input_scale: nn.Parameter | None
    output_scale: nn.Parameter | None

    def _setup_circuit(
        self,
        spec: Circuit,
        encoder: ObservationEncoder,
        output_scaling: bool,
        executor: str,
        executor_options: Mapping[str, Any] | None,
        dtype: str,
        trainable_theta: bool = True,
    ) -> None:
        """Install the circuit, its angles, input and output scales and its executor.

        :param trainable_theta: ``theta`` is a parameter initialised uniformly in [-pi, pi);
            otherwise a buffer of zeros
        """
        self.circuit = spec
        self.dtype = lookup(DTYPES, dtype, "dtype")
        self.encoder = encoder
        init = spec.init_weights(dtype=self.dtype)
        if trainable_theta:
            self.theta = nn.Parameter(init["theta"])
        else:
            self.register_buffer("theta", torch.zeros_like(init["theta"]))
        self.input_scale = nn.Parameter(init["input_scale"]) if "input_scale" in init else None
        # Weights of other names (a trainable entangler's ``phi``, a user family's own).
        self.extra_weights = [n for n in init if n not in ("theta", "input_scale")]
        for name in self.extra_weights:
            self.register_parameter(name, nn.Parameter(init[name]))
        ones = torch.ones(spec.n_outputs, dtype=self.dtype)
        self.output_scale = nn.Parameter(ones) if output_scaling else None
        self.executor_name = executor
        self.executor_options = dict(executor_options or {})
        self._executor: Executor | None = make_executor(executor, self.executor_options)
        # Circuits run so far in this process (one per sample), and batched calls. A plain
        # list, not module attributes: nn.Module's __setattr__ costs more than a small circuit.
        self._counts = [0, 0]

    @property
    def circuit_executions(self) -> int:
        """Circuits run so far in this process, one per sample."""
        return self._counts[0]

    @property
    def circuit_calls(self) -> int:
        """Batched executor calls so far in this process."""
        return self._counts[1]

    @property
    def executor(self) -> Executor:
        """The executor that runs the circuit (built on first use after unpickling)."""
        if self._executor is None:
            self._executor = make_executor(self.executor_name, self.executor_options)
        return self._executor

    def set_executor(self, name: str, options: Mapping[str, Any] | None = None) -> None:
        """Run the same weights on another executor from now on.

        :param name: "torch" or a PennyLane device name
        :param options: executor options
        """
        self._executor = make_executor(name, options)
        self.executor_name = name
        self.executor_options = dict(options or {})

    def weights(self, theta: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The circuit's weights by name, as :meth:`Circuit.angles` takes them.

        :param theta: angles to use instead of the module's own (programmed fast weights)
        """
        out: dict[str, torch.Tensor] = {"theta": self.theta if theta is None else theta}
        if self.input_scale is not None:
            out["input_scale"] = self.input_scale
        for name in self.extra_weights:
            out[name] = getattr(self, name)
        return out

    def pop_stats(self) -> dict[str, float]:
        """Statistics of the module's own state since the last call, for TensorBoard (a
        fast-weight cell's programmed angles); none for a plain circuit."""
        return {}

    def quantum_parameters(self) -> list[nn.Parameter]:
        """The parameters of the circuit itself: angles, input and output scales and other
        circuit weights; not those of a classical encoder in front of it."""
        classical = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in classical]

    def run(self, observations: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Expectation values (times output scales) for a batch of observations.

        :param observations: preprocessed observations, batch first
        :param theta: the variational angles, of the circuit's ``theta`` shape, or with
            the batch dimension in front (one set of angles per sample)
        :return: float32 tensor of shape (batch, circuit.n_outputs)
        """
        return self.run_encoded(self.encoder(observations), theta)

    def run_encoded(self, inputs: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """:meth:`run` on observations already encoded by ``self.encoder``.

        :param inputs: the encoder's output, (batch, n_qubits, features per qubit)
        :param theta: as for :meth:`run`
        :return: float32 tensor of shape (batch, circuit.n_outputs)
        """
        inputs = inputs.to(self.dtype)
        values = self.executor(self.circuit, inputs, self.weights(theta.to(self.dtype)))
        counts = self._counts
        counts[0] += inputs.shape[0]
        counts[1] += 1
        if self.output_scale is not None:
            values = values * self.output_scale
        return values.to(torch.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_executor"] = None  # QNodes and devices are rebuilt, never pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        counts = [state.pop("circuit_executions", 0), state.pop("circuit_calls", 0)]
        state.setdefault("_counts", counts)  # models saved before the counters moved
        state.setdefault("extra_weights", [])
        super().__setstate__(state)


class QuantumExtractor(BaseFeaturesExtractor, CircuitRunner):
    """Observation -> encoded angles -> variational circuit -> scaled expectation values.

    With a classical encoder (``encoder``), the observation passes through it first; its
    weights are trained with the rest of the policy (also with ``trainable=False``: they are
    classical) and counted as classical by :func:`parameter_counts`.

    :param observation_space: the environment's observation space
    :param output_scaling: multiply each expectation value by a trainable scale
    :param executor: "torch" or a PennyLane device name
    :param executor_options: options of the PennyLane executor (diff_method, shots, ...)
    :param dtype: "float32" or "float64": the precision of the circuit simulation
    :param trainable: train the circuit's angles and scales; False freezes them at their
        random initial values, so only the classical parts learn (a quantum reservoir)
    :param circuit_options: the circuit options of :func:`build_circuit` (``circuit``,
        ``n_layers``, ``encoding``, ``entangler``, ``pattern``, ``n_qubits``, ...)
    """

    def __init__(
        self,
        observation_space: gym.Space,
        output_scaling: bool = True,
        executor: str = "torch",
        executor_options: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        trainable: bool = True,
        **circuit_options: Any,
    ) -> None:
        unknown = sorted(set(circuit_options) - set(circuit_option_names()))
        if unknown:
            raise QrlError(
                f"unknown circuit options {unknown}; valid: {', '.join(circuit_option_names())}"
            )
        spec, encoder = build_circuit(observation_space, **circuit_options)
        super().__init__(observation_space, features_dim=spec.n_outputs)
        self._setup_circuit(spec, encoder, output_scaling, executor, executor_options, dtype)
        self.trainable = bool(trainable)
        for param in self.quantum_parameters():
            param.requires_grad_(self.trainable)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Expectation values (times output scales) for a batch of observations."""
        return self.run(observations, self.theta)


class DenseExtractor(BaseFeaturesExtractor):
    """A classical stand-in for a circuit: the same inputs and outputs, a dense layer between.

    The observation is squashed exactly as :class:`QuantumExtractor` squashes it, then mapped
    by a linear layer and a tanh (bounded like expectation values) to ``features_dim``
    features, by default as many as the unentangled circuit's ``<X>,<Y>,<Z>`` readout (three
    per feature). Swapping it for the circuit, with every other part of a policy fixed, is
    the layer-swap ablation.

    :param observation_space: the environment's observation space
    :param features_dim: number of output features; 3 per observation feature by default
    :param squash: how Box features are scaled (see :class:`ObservationEncoder`)
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int | None = None,
        squash: str = "arctan",
    ) -> None:
        n_in = n_raw_features(observation_space)
        n_out = 3 * n_in if features_dim is None else int(features_dim)
        if n_out < 1:
            raise QrlError(f"features_dim must be positive, got {features_dim}")
        super().__init__(observation_space, features_dim=n_out)
        self.encoder = ObservationEncoder(observation_space, n_in, 1, squash)
        self.layer = nn.Linear(n_in, n_out)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Bounded features for a batch of observations."""
        x = self.encoder(observations).flatten(1)
        return torch.tanh(self.layer(x))


def executor_cost(model: BaseAlgorithm | BasePolicy) -> Cost | None:
    """The summed cost counters of a model's circuit executors (None when none counts: exact
    simulation spends nothing)."""
    # The executors already built: reading a counter must not connect to a device.
    built = [m._executor for _, m in circuit_modules(model) if m._executor is not None]
    found = [e.cost for e in built if e.cost is not None]
    if not found:
        return None
    total = Cost()
    for cost in found:
        total.add(cost)
    return total


def circuit_modules(
    model: BaseAlgorithm | BasePolicy, trainable_only: bool = False
) -> Iterator[tuple[str, CircuitRunner]]:
    """The modules of a model or policy that run circuits (quantum extractors and fast-weight
    cells), with their module paths.

    :param model: an SB3 algorithm or policy
    :param trainable_only: skip target networks, which are never trained directly
    """
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    for path, module in policy.named_modules():
        if isinstance(module, CircuitRunner):
            if trainable_only and "target" in path:
                continue
            yield path, module


def set_executor(
    model: BaseAlgorithm | BasePolicy, name: str, options: Mapping[str, Any] | None = None
) -> int:
    """Switch every circuit of a model to another executor.

    :param model: an SB3 algorithm or policy
    :param name: "torch" or a PennyLane device name
    :param options: executor options
    :return: the number of circuit modules switched (0 for a classical policy)
    """
    count = 0
    for _, module in circuit_modules(model):
        module.set_executor(name, options)
        count += 1
    if count == 0 and name != "torch":
        raise QrlError(f"executor {name!r} given, but this policy has no quantum circuit")
    return count


def parameter_counts(model: BaseAlgorithm | BasePolicy) -> dict[str, int]:
    """Trainable parameters of a policy: quantum (circuit angles and scales), classical, total.

    A fast-weight programmer and a classical encoder in front of a circuit are classical; the
    angles a programmer programs are not parameters.

    Target networks are not counted: they are copies, not trained parameters.
    """
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    quantum_ids = {id(p) for _, m in circuit_modules(policy) for p in m.quantum_parameters()}
    quantum = classical = 0
    for name, p in policy.named_parameters():
        if not p.requires_grad or "target" in name:
            continue
        if id(p) in quantum_ids:
            quantum += p.numel()
        else:
            classical += p.numel()
    return {"quantum": quantum, "classical": classical, "total": quantum + classical}
