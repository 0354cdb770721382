"""Recurrent PPO without the overhead around the cell: its algorithm, buffer and LSTM policy.

sb3-contrib's ``RecurrentPPO`` splits every minibatch into sequences at episode starts and
environment changes and pads them, one tensor per sequence. :class:`SequenceBuffer` builds
the same padded minibatches with one indexing operation per field, and a policy whose cell
resets its state at any step (``resets_within_sequences``: the fast weight programmer) gets
sequences cut at environment changes only, so an episode that starts inside a sequence costs
no padding. :class:`RecurrentPPO` is sb3-contrib's algorithm with that buffer; its models
load with sb3-contrib's class too.

The classical recurrent baseline, :class:`LSTMPolicy`, is sb3-contrib's LSTM policy with one
LSTM call per minibatch. RecurrentPPO splits its rollout into sequences at episode starts, so
an episode can only start at the first step of a training sequence. sb3-contrib's
``_process_sequence`` still loops over time in Python whenever any sequence begins an
episode, which is nearly always. :class:`LSTMPolicy` resets those sequences' states first and
runs the LSTM once over the whole minibatch: the same arithmetic, several times faster. A
reset at a later step falls back to sb3-contrib's loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO as ContribRecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RecurrentRolloutBufferSamples, RNNStates
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn


class SequenceBuffer(RecurrentRolloutBuffer):
    """sb3-contrib's recurrent rollout buffer, its minibatches padded in one pass.

    :param args: the arguments of ``RecurrentRolloutBuffer``
    :param split_episodes: cut sequences at episode starts as sb3-contrib does (True), or
        only where the environment changes (False: for cells that reset at any step)
    :param kwargs: the keyword arguments of ``RecurrentRolloutBuffer``
    """

    def __init__(self, *args: Any, split_episodes: bool = True, **kwargs: Any) -> None:
        self.split_episodes = split_episodes
        super().__init__(*args, **kwargs)

    def _get_samples(  # type: ignore[override]
        self,
        batch_inds: np.ndarray,
        env_change: np.ndarray,
        env: VecNormalize | None = None,
    ) -> RecurrentRolloutBufferSamples:
        starts = env_change[batch_inds].astype(bool).ravel()
        if self.split_episodes:
            starts = starts | self.episode_starts[batch_inds].astype(bool).ravel()
        starts[0] = True
        first = np.flatnonzero(starts)
        sequence = np.cumsum(starts) - 1
        position = np.arange(len(batch_inds)) - first[sequence]
        shape = (len(first), int(position.max()) + 1)
        self.seq_start_indices = first  # type: ignore[assignment]

        def pad(values: np.ndarray, scalar: bool = False) -> torch.Tensor:
            # (batch, *shape) -> (n_seq, longest, *shape) -> (n_seq * longest, *shape);
            # one value per step (stored as (batch, 1)) -> (n_seq * longest,)
            out = np.zeros(shape + values.shape[1:], dtype=values.dtype)
            out[sequence, position] = values[batch_inds]
            flat = out.reshape(-1) if scalar else out.reshape(-1, *values.shape[1:])
            return self.to_torch(flat)

        def states(values: np.ndarray) -> torch.Tensor:
            # (steps, layers, dim) -> (layers, n_seq, dim) at the sequences' first steps
            return self.to_torch(values[batch_inds[first]].swapaxes(0, 1)).contiguous()

        return RecurrentRolloutBufferSamples(
            observations=pad(self.observations),
            actions=pad(self.actions),
            old_values=pad(self.values, scalar=True),
            old_log_prob=pad(self.log_probs, scalar=True),
            advantages=pad(self.advantages, scalar=True),
            returns=pad(self.returns, scalar=True),
            lstm_states=RNNStates(
                (states(self.hidden_states_pi), states(self.cell_states_pi)),
                (states(self.hidden_states_vf), states(self.cell_states_vf)),
            ),
            episode_starts=pad(self.episode_starts, scalar=True),
            mask=pad(np.ones_like(self.returns), scalar=True),
        )


class RecurrentPPO(ContribRecurrentPPO):
    """sb3-contrib's ``RecurrentPPO`` with :class:`SequenceBuffer` (same arguments, same
    training); a policy with ``resets_within_sequences = True`` gets sequences cut at
    environment changes only."""

    def _setup_model(self) -> None:
        super()._setup_model()
        if isinstance(self.observation_space, spaces.Dict):
            return  # sb3-contrib's dict buffer
        old = self.rollout_buffer
        assert isinstance(old, RecurrentRolloutBuffer)
        self.rollout_buffer = SequenceBuffer(
            self.n_steps,
            self.observation_space,
            self.action_space,
            old.hidden_state_shape,
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            split_episodes=not getattr(self.policy, "resets_within_sequences", False),
        )


class LSTMPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's ``MlpLstmPolicy`` with one LSTM call per batch of sequences."""

    @staticmethod
    def _process_sequence(
        features: torch.Tensor,
        lstm_states: tuple[torch.Tensor, torch.Tensor],
        episode_starts: torch.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the LSTM over flattened sequences, resetting at their first step."""
        n_seq = lstm_states[0].shape[1]
        starts = episode_starts.reshape(n_seq, -1)
        if starts.shape[1] == 1 or bool((starts[:, 1:] != 0).any()):
            parent = RecurrentActorCriticPolicy._process_sequence
            return parent(features, lstm_states, episode_starts, lstm)
        keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
        states = (keep * lstm_states[0], keep * lstm_states[1])
        sequence = features.reshape(n_seq, -1, lstm.input_size).swapaxes(0, 1)
        output, new_states = lstm(sequence, states)
        return torch.flatten(output.transpose(0, 1), 0, 1), new_states
