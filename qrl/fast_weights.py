"""The quantum fast weight programmer (QFWP, Chen 2024): a recurrent quantum policy.

A classical *slow programmer* reads each observation and emits two vectors, one entry per
(layer, rotation axis) of the circuit and one per qubit; their outer product is the update
``Delta_t`` of the circuit's rotation angles. The angles (the *fast weights*) accumulate over
the steps of an episode::

    theta_t = decay * theta_{t-1} + Delta_t              (bound None)
    theta_t = bound * tanh((decay * theta_{t-1} + Delta_t) / bound)

and the circuit runs the encoded observation with ``theta_t``; its measurements feed SB3's
heads. The angles are the recurrent state: they start at ``theta_0`` (zero, or learned) at
every episode start.

:class:`FastWeightCell` takes the place of the LSTM of sb3-contrib's ``RecurrentPPO``
(:class:`QFWPPolicy`). Its state ``h`` holds ``theta_t - theta_0`` flattened, so the zero
state RecurrentPPO starts from and resets to is exactly "a fresh episode". A whole sequence
costs one batched circuit call: the programmer runs on every step at once, the accumulation
is an elementwise loop over time, and the circuit then runs on all (step, sequence) pairs
with one set of angles per sample.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from qrl.encoders import ACTIVATIONS
from qrl.errors import QrlError, lookup
from qrl.extractors import CircuitRunner, build_circuit

CRITICS = ("separate", "shared", "none")
PROGRAMMER_INPUTS = ("observation", "encoded")

# Longest sequence whose linear recurrence runs as one (time x time) matrix product; longer
# ones (and bounded recurrences) loop over time.
MAX_SCAN_STEPS = 128


@functools.lru_cache(maxsize=64)
def _decay_tables(
    n_time: int, decay: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """decay^(t - s) for s <= t (else 0), (time, time), and decay^(t + 1), (time,)."""
    steps = torch.arange(n_time, device=device)
    lag = steps[:, None] - steps[None, :]
    weights = torch.where(lag >= 0, decay ** lag.clamp(min=0).to(dtype), 0.0)
    return weights, decay ** (steps + 1).to(dtype)


def _array(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a tensor (a copy off the CPU), outside autograd."""
    return t.detach().cpu().numpy()


def _norms(a: np.ndarray) -> np.ndarray:
    """Euclidean norms along the last axis."""
    return np.sqrt((a * a).sum(axis=-1))


def programmer_network(
    n_inputs: int, hidden: Sequence[int], activation: str
) -> tuple[nn.Module, int]:
    """The slow programmer's trunk: linear layers with an activation after each.

    :return: the network and its output size
    """
    act = lookup(ACTIVATIONS, activation, "programmer_activation")
    if not isinstance(hidden, Sequence) or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in hidden
    ):
        raise QrlError(
            f"programmer must be a list of layer sizes such as [8] or [], not {hidden!r}"
        )
    layers: list[nn.Module] = []
    size = n_inputs
    for width in hidden:
        layers += [nn.Linear(size, int(width)), act()]
        size = int(width)
    return nn.Sequential(*layers), size


class FastWeightCell(CircuitRunner):
    """Slow programmer + fast weights + circuit, with the interface of a one-layer ``nn.LSTM``.

    ``input_size``, ``hidden_size`` and ``num_layers`` size RecurrentPPO's state buffers;
    ``forward(seq, (h, c))`` runs a sequence of shape (time, batch, input_size) without
    resets, :meth:`sequence` runs RecurrentPPO's flattened minibatches with resets at
    episode starts. ``c`` is unused and stays zero.

    :param observation_space: the environment's observation space (for the circuit encoding)
    :param input_size: size of the flattened observation
    :param programmer: hidden layer sizes of the slow programmer (the paper: [8])
    :param programmer_activation: a key of :data:`qrl.encoders.ACTIVATIONS` ("tanh", "relu",
        "identity", ...)
    :param programmer_input: what the programmer reads: "observation" (the flattened
        observation, as in the paper) or "encoded" (the features as the circuit loads them,
        after squashing: every feature on the same angular scale)
    :param decay: the decay ``lambda`` of the fast weights (1: plain accumulation)
    :param bound: None, or a bound ``b``: the angles stay in (-b, b) through a tanh
    :param learn_init: learn the initial angles ``theta_0`` (else they are zero)
    :param circuit_options: options of :func:`qrl.extractors.build_circuit`, plus
        ``output_scaling``, ``executor``, ``executor_options`` and ``dtype``. A classical
        ``encoder`` is supported: it reads the flattened observation (the cnn encoder
        reshapes it to the image), is trained with the programmer, and is classical for
        :func:`qrl.extractors.parameter_counts`; with ``programmer_input: encoded`` the
        programmer reads its squashed outputs
    """

    def __init__(
        self,
        observation_space: gym.Space,
        input_size: int,
        programmer: Sequence[int] = (8,),
        programmer_activation: str = "tanh",
        programmer_input: str = "observation",
        decay: float = 1.0,
        bound: float | None = None,
        learn_init: bool = False,
        output_scaling: bool = True,
        executor: str = "torch",
        executor_options: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        **circuit_options: Any,
    ) -> None:
        super().__init__()
        lookup(dict.fromkeys(PROGRAMMER_INPUTS), programmer_input, "programmer_input")
        if not 0.0 <= float(decay) <= 1.0:
            raise QrlError(f"decay must be in [0, 1], got {decay}")
        if bound is not None and float(bound) <= 0:
            raise QrlError(f"bound must be positive (or None), got {bound}")
        spec, encoder = build_circuit(observation_space, **circuit_options)
        self._setup_circuit(
            spec,
            encoder,
            output_scaling,
            executor,
            executor_options,
            dtype,
            trainable_theta=False,
        )
        if learn_init:
            self.theta = nn.Parameter(torch.zeros_like(self.theta))
        self.shape = tuple(spec.weight_shapes["theta"])  # (layers, qubits, rotations)
        n_layers, n_qubits, n_rot = self.shape
        self.programmer_input = programmer_input
        n_read = input_size
        if programmer_input == "encoded":
            n_read = n_qubits * spec.features_per_qubit
        self.trunk, width = programmer_network(n_read, programmer, programmer_activation)
        self.layer_head = nn.Linear(width, n_layers * n_rot)
        self.qubit_head = nn.Linear(width, n_qubits)
        self.decay = float(decay)
        self.bound = None if bound is None else float(bound)
        self.input_size = int(input_size)
        self.hidden_size = int(np.prod(self.shape))
        self.num_layers = 1
        self.output_size = spec.n_outputs
        # Rollout statistics for TensorBoard (see :meth:`pop_stats`): sums of the norms of
        # the angles and of the updates, sample count, sum of the angle norms at episode
        # ends, episode count, largest angle norm.
        self._stats = [0.0, 0.0, 0, 0.0, 0, 0.0]

    def quantum_parameters(self) -> list[nn.Parameter]:
        """The circuit's own parameters: input and output scales, learned initial angles,
        and weights the circuit declares beside ``theta`` (a trainable entangler's ``phi``)."""
        params = [self.input_scale, self.output_scale]
        if isinstance(self.theta, nn.Parameter):
            params.append(self.theta)
        params += [getattr(self, name) for name in self.extra_weights]
        return [p for p in params if p is not None]

    def updates(
        self, observations: torch.Tensor, encoded: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The programmed angle updates ``Delta`` for a batch of observations.

        :param observations: shape (batch, time, input_size)
        :param encoded: the observations as ``self.encoder`` encodes them, flattened to
            (batch * time, ...), if already computed
        :return: shape (batch, time, hidden_size): outer(layer vector, qubit vector), flattened in
            the order of the circuit's ``theta`` (layer, qubit, rotation)
        """
        if self.programmer_input == "encoded":
            n_seq, n_time = observations.shape[:2]
            if encoded is None:
                encoded = self.encoder(observations.reshape(n_seq * n_time, -1))
            observations = encoded.reshape(n_seq, n_time, -1)
        z = self.trunk(observations)
        n_layers, n_qubits, n_rot = self.shape
        per_layer = self.layer_head(z).unflatten(-1, (n_layers, 1, n_rot))
        per_qubit = self.qubit_head(z).unflatten(-1, (1, n_qubits, 1))
        return (per_layer * per_qubit).flatten(-3)

    def step(self, state: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """One fast-weight step on the state ``theta - theta_0``.

        :param state: shape (batch, hidden_size)
        :param update: ``Delta_t``, the same shape
        :return: the next state
        """
        theta0 = self.theta.flatten().to(state.dtype)
        if self.bound is None and self.decay == 1.0:
            return state + update
        angles = self.decay * (state + theta0) + update
        if self.bound is not None:
            angles = self.bound * torch.tanh(angles / self.bound)
        return angles - theta0

    def sequence(
        self,
        features: torch.Tensor,
        states: tuple[torch.Tensor, torch.Tensor],
        episode_starts: torch.Tensor,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run flattened sequences, as RecurrentPPO's ``_process_sequence`` does for an LSTM.

        :param features: shape (n_seq * time, input_size), sequence-major
        :param states: ``(h, c)``, each of shape (1, n_seq, hidden_size)
        :param episode_starts: shape (n_seq * time,): 1 where the state resets to theta_0
            before the step
        :return: outputs of shape (n_seq * time, output_size), and the final states
        """
        h, c = states
        n_seq = h.shape[1]
        x = features.reshape(n_seq, -1, self.input_size)
        keep = (1.0 - episode_starts.reshape(n_seq, -1)).to(h.dtype)
        encoded = self.encoder(features)  # read by the circuit, and by the programmer
        deltas = self.updates(x, encoded)
        states_t = self.accumulate(h[0], keep, deltas)  # (n_seq, time, hidden)
        theta = (states_t + self.theta.flatten().to(states_t.dtype)).reshape(-1, *self.shape)
        out = self.run_encoded(encoded, theta)
        if not torch.is_grad_enabled():
            self._record(h[0], keep, states_t, deltas)
        return out, (states_t[:, -1].unsqueeze(0), torch.zeros_like(c))

    def accumulate(
        self, state: torch.Tensor, keep: torch.Tensor, deltas: torch.Tensor
    ) -> torch.Tensor:
        """The states of every step of a batch of sequences.

        :param state: the state before the first step, shape (n_seq, hidden_size)
        :param keep: shape (n_seq, time): 0 where the state resets before the step
        :param deltas: the updates, shape (n_seq, time, hidden_size)
        :return: the state after each step, shape (n_seq, time, hidden_size)
        """
        n_time = deltas.shape[1]
        if n_time == 1:  # a rollout step
            return self.step(state * keep, deltas[:, 0]).unsqueeze(1)
        if self.bound is not None or n_time > MAX_SCAN_STEPS:
            trace = []
            for t in range(n_time):
                state = self.step(state * keep[:, t, None], deltas[:, t])
                trace.append(state)
            return torch.stack(trace, dim=1)
        # Without a bound the recurrence is linear, h_t = decay * keep_t * h_{t-1} + u_t with
        # u_t = Delta_t + (decay - 1) * theta_0: one product with the (time x time) matrix of
        # decay^(t - s), zero across a reset.
        u = deltas
        if self.decay != 1.0:
            u = deltas + (self.decay - 1.0) * self.theta.flatten().to(deltas.dtype)
        weights, powers = _decay_tables(n_time, self.decay, deltas.dtype, deltas.device)
        episodes = torch.cumsum(1.0 - keep, dim=1)  # resets so far, per step
        same = episodes[:, :, None] == episodes[:, None, :]
        states = (weights * same) @ u
        carried = powers * (episodes == 0)
        return states + carried[..., None] * state[:, None, :]

    def forward(
        self, seq: torch.Tensor, states: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``nn.LSTM``'s interface: a (time, batch, input_size) sequence without resets.

        :return: outputs of shape (time, batch, output_size), and the final states
        """
        n_time, batch = seq.shape[:2]
        flat = seq.transpose(0, 1).reshape(batch * n_time, self.input_size)
        starts = torch.zeros(batch * n_time, dtype=seq.dtype, device=seq.device)
        out, states = self.sequence(flat, states, starts)
        return out.reshape(batch, n_time, -1).transpose(0, 1), states

    def _record(
        self,
        previous: torch.Tensor,
        keep: torch.Tensor,
        states_t: torch.Tensor,
        deltas: torch.Tensor,
    ) -> None:
        # On NumPy views (copies off the CPU): a rollout step's arrays are a few hundred
        # numbers, where a NumPy call costs a fraction of a PyTorch one.
        theta0 = _array(self.theta.flatten().to(states_t.dtype))
        norms = _norms(_array(states_t) + theta0)
        stats = self._stats
        stats[0] += float(norms.sum())
        stats[1] += float(_norms(_array(deltas)).sum())
        stats[2] += norms.size
        stats[5] = max(stats[5], float(norms.max()))
        # A reset before the first step closes the episode whose last angles were `previous`
        # (a zero state is the start of training or of a prediction, not an episode's end).
        last = _array(previous)
        ended = (_array(keep)[:, 0] == 0) & (last != 0).any(axis=-1)
        if ended.any():
            stats[3] += float(_norms(last[ended] + theta0).sum())
            stats[4] += int(ended.sum())

    def pop_stats(self) -> dict[str, float]:
        """Norms of the fast weights and of their updates since the last call (no-grad calls,
        i.e. rollouts and predictions), then reset.

        :return: ``fast_weight_norm`` (mean over steps), ``fast_weight_norm_max``,
            ``fast_weight_norm_episode_end`` (mean at the last step of finished episodes),
            ``update_norm`` (mean over steps); empty if nothing ran
        """
        s = self._stats
        out: dict[str, float] = {}
        if s[2]:
            out["fast_weight_norm"] = s[0] / s[2]
            out["fast_weight_norm_max"] = s[5]
            out["update_norm"] = s[1] / s[2]
        if s[4]:
            out["fast_weight_norm_episode_end"] = s[3] / s[4]
        self._stats = [0.0, 0.0, 0, 0.0, 0, 0.0]
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_stats", [0.0, 0.0, 0, 0.0, 0, 0.0])
        state.setdefault("programmer_input", "observation")
        super().__setstate__(state)


class QFWPPolicy(RecurrentActorCriticPolicy):
    """RecurrentPPO policy whose recurrent cell is a :class:`FastWeightCell`, not an LSTM.

    The observation is flattened (SB3's ``FlattenExtractor``) and read by the cell; the
    cell's measured values feed SB3's ``net_arch`` heads. Every option is plain data, so
    ``RecurrentPPO.load`` restores a saved model once ``qrl`` is importable.

    :param observation_space: observation space
    :param action_space: action space
    :param lr_schedule: learning rate schedule
    :param critic_programmer: "separate" (the critic has its own cell), "shared" (the critic
        reads the actor's cell outputs, detached, as sb3-contrib's ``shared_lstm``) or
        "none" (the critic has no memory: a linear layer on the observation)
    :param kwargs: the options of :class:`FastWeightCell` (``programmer``, ``decay``,
        ``bound``, ``learn_init``, ``programmer_input``, ``output_scaling``, ``executor``,
        ``dtype``, ...) and of :func:`qrl.extractors.build_circuit` (``circuit``,
        ``n_layers``, ``encoding``, ``rotations``, ``observables``, ``memory_qubits``, ...);
        the rest go to sb3-contrib's ``RecurrentActorCriticPolicy`` (``net_arch``,
        ``activation_fn``, ``ortho_init``, ...)
    """

    # The cell resets its state at any step of a sequence, so qrl's RecurrentPPO cuts
    # training sequences at environment changes only (no padding for episode starts).
    resets_within_sequences = True

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        lr_schedule: Schedule,
        critic_programmer: str = "separate",
        **kwargs: Any,
    ) -> None:
        taken = sorted(set(kwargs) & set(LSTM_OPTIONS))
        if taken:
            raise QrlError(
                f"the qfwp policy has no LSTM: drop {taken}; use critic_programmer "
                f"({', '.join(CRITICS)}) and the programmer options"
            )
        lookup(dict.fromkeys(CRITICS), critic_programmer, "critic_programmer")
        if kwargs.get("optimizer_kwargs") is None and kwargs.get("optimizer_class") in (
            None,
            torch.optim.Adam,
        ):
            # SB3's Adam (eps 1e-5) with the multi-tensor update: the same arithmetic on the
            # two cells' many small parameters in a few calls instead of one per tensor.
            kwargs["optimizer_kwargs"] = {"eps": 1e-5, "foreach": True}
        names = set(cell_option_names())
        cell_options = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        # Check the options (and size the state) before sb3-contrib builds anything.
        probe = FastWeightCell(observation_space, 1, **cell_options)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            lstm_hidden_size=probe.hidden_size,
            n_lstm_layers=1,
            shared_lstm=critic_programmer == "shared",
            enable_critic_lstm=critic_programmer == "separate",
            **kwargs,
        )
        self.critic_programmer = critic_programmer
        self.cell_options = cell_options
        # Replace the LSTMs sb3-contrib built, then rebuild the heads and the optimizer over
        # the cell's output size.
        actor = FastWeightCell(observation_space, self.features_dim, **cell_options)
        self.lstm_actor = actor  # type: ignore[assignment]
        self.lstm_output_dim = actor.output_size
        if self.lstm_critic is not None:
            critic = FastWeightCell(observation_space, self.features_dim, **cell_options)
            self.lstm_critic = critic  # type: ignore[assignment]
        if self.critic is not None:
            self.critic = nn.Linear(self.features_dim, self.lstm_output_dim)
        self._build(lr_schedule)

    @staticmethod
    def _process_sequence(  # type: ignore[override]
        features: torch.Tensor,
        lstm_states: tuple[torch.Tensor, torch.Tensor],
        episode_starts: torch.Tensor,
        lstm: nn.Module,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run the fast-weight cell over flattened sequences (one circuit call)."""
        assert isinstance(lstm, FastWeightCell)
        return lstm.sequence(features, lstm_states, episode_starts)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in LSTM_OPTIONS:
            data.pop(key, None)
        return data | {"critic_programmer": self.critic_programmer} | dict(self.cell_options)


# Options of RecurrentActorCriticPolicy that size or place the LSTM; QFWPPolicy sets them.
LSTM_OPTIONS = ("lstm_hidden_size", "n_lstm_layers", "shared_lstm", "enable_critic_lstm")


def cell_option_names() -> list[str]:
    """Options of :class:`FastWeightCell`: its own and those of ``build_circuit``."""
    skip = {"self", "observation_space", "input_size", "circuit_options"}
    own = [n for n in inspect.signature(FastWeightCell.__init__).parameters if n not in skip]
    return own + [n for n in inspect.signature(build_circuit).parameters if n not in skip]


def fast_weight_cells(policy: nn.Module) -> list[tuple[str, FastWeightCell]]:
    """The fast-weight cells of a policy, with their module paths."""
    return [(p, m) for p, m in policy.named_modules() if isinstance(m, FastWeightCell)]
