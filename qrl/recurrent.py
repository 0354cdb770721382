"""The classical recurrent baseline: sb3-contrib's LSTM policy, one LSTM call per minibatch.

RecurrentPPO splits its rollout into sequences at episode starts, so an episode can only
start at the first step of a training sequence. sb3-contrib's ``_process_sequence`` still
loops over time in Python whenever any sequence begins an episode, which is nearly always.
:class:`LSTMPolicy` resets those sequences' states first and runs the LSTM once over the
whole minibatch: the same arithmetic, several times faster. A reset at a later step (which
RecurrentPPO's sequences do not contain) falls back to sb3-contrib's loop.
"""

from __future__ import annotations

import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn


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
