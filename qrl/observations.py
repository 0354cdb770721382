"""Turning an observation space into circuit inputs: angles for Box spaces, bits for discrete.

SB3 hands a features extractor the preprocessed observation: a float tensor for a Box space
(of any shape), a one-hot vector for a Discrete space, 0/1 floats for MultiBinary. This
module maps that to a tensor of shape (batch, n_qubits, features_per_qubit) for
:meth:`qrl.circuits.Circuit.angles`, optionally through a trainable classical encoder first
(:mod:`qrl.encoders`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from qrl.errors import QrlError, lookup

# Squashing of unbounded features into (-pi/2, pi/2) before the trainable input scale.
SQUASHES = {
    "arctan": torch.atan,
    "tanh": lambda x: (math.pi / 2) * torch.tanh(x),
    "none": lambda x: x,
}
SQUASH_NAMES = (*SQUASHES, "auto")


def is_discrete(space: spaces.Space) -> bool:
    """Whether the space is loaded bit by bit (basis encoding)."""
    return isinstance(space, spaces.Discrete | spaces.MultiBinary)


def n_raw_features(space: spaces.Space) -> int:
    """Number of scalar features the space provides (bits for discrete spaces).

    :raises QrlError: for spaces the circuits cannot encode
    """
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return max(1, math.ceil(math.log2(int(space.n))))
    if isinstance(space, spaces.MultiBinary):
        return int(np.prod(space.shape))
    raise QrlError(
        f"a quantum circuit cannot encode observation space {space}; supported: "
        "Box (any shape, angle encoding), Discrete and MultiBinary (basis encoding)"
    )


class ObservationEncoder(nn.Module):
    """Preprocessed observations to circuit inputs of shape (batch, n_qubits, per_qubit).

    :param space: the observation space
    :param n_qubits: number of qubits the inputs are laid out on
    :param per_qubit: features per qubit (3 for the Euler encoding, else 1)
    :param squash: "arctan", "tanh", "none", or "auto" (linear rescale of bounded Box
        dimensions to [-pi/2, pi/2], arctan for unbounded ones); ignored for discrete spaces
    :param features: indices of the (flattened) features to use, in order; all by default
    :param network: a classical encoder (:mod:`qrl.encoders`) applied to the observation
        first; ``space`` is then the space of its outputs, an unbounded Box of shape (n,),
        so that "auto" squashes them with arctan. Its outputs are squashed like any Box
        features, which bounds them into angles: "none" is refused.
    """

    network: nn.Module | None
    index: torch.Tensor
    bits: torch.Tensor
    linear: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(
        self,
        space: spaces.Space,
        n_qubits: int,
        per_qubit: int,
        squash: str = "arctan",
        features: Sequence[int] | None = None,
        network: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if network is not None and squash == "none":
            raise QrlError(
                "squash 'none' would load the encoder's unbounded outputs as angles; "
                "use arctan or tanh"
            )
        # Registered even when None, so that the module's attributes do not depend on it.
        self.add_module("network", network)
        total = n_raw_features(space)
        self.space = space
        self.n_qubits = n_qubits
        self.per_qubit = per_qubit
        self.squash = squash
        lookup(dict.fromkeys(SQUASH_NAMES), squash, "squash")
        index = list(range(total)) if features is None else [int(i) for i in features]
        bad = [i for i in index if not 0 <= i < total]
        if bad:
            raise QrlError(f"features {bad} out of range: the observation has {total} features")
        if len(index) > n_qubits * per_qubit:
            raise QrlError(
                f"{len(index)} features do not fit on {n_qubits} qubits x {per_qubit} per "
                "qubit; raise n_qubits or select features"
            )
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)
        self.select = index != list(range(total))  # skip the gather when all are used in order
        if isinstance(space, spaces.Discrete):
            n = int(space.n)
            bits = [[(i >> (total - 1 - k)) & 1 for k in range(total)] for i in range(n)]
            self.register_buffer("bits", torch.tensor(bits, dtype=torch.float32), persistent=False)
        linear = torch.zeros(total, dtype=torch.bool)
        low = torch.zeros(total)
        high = torch.ones(total)
        if isinstance(space, spaces.Box) and squash == "auto":
            lo = np.asarray(space.low, dtype=np.float64).reshape(-1)
            hi = np.asarray(space.high, dtype=np.float64).reshape(-1)
            bounded = np.isfinite(lo) & np.isfinite(hi) & (np.abs(lo) < 1e6) & (np.abs(hi) < 1e6)
            linear = torch.as_tensor(bounded & (hi > lo))
            low = torch.as_tensor(np.where(linear.numpy(), lo, 0.0), dtype=torch.float32)
            high = torch.as_tensor(np.where(linear.numpy(), hi, 1.0), dtype=torch.float32)
        self.register_buffer("linear", linear, persistent=False)
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("high", high, persistent=False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_modules", {}).setdefault("network", None)  # pickled before encoders
        super().__setstate__(state)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Map a batch of preprocessed observations to circuit inputs."""
        batch = obs.shape[0]
        if self.network is not None:
            obs = self.network(obs)
        x = obs.reshape(batch, -1)
        if isinstance(self.space, spaces.Discrete):
            x = x.to(self.bits.dtype) @ self.bits
        elif isinstance(self.space, spaces.Box):
            x = self._squash(x)
        if self.select:
            x = x[:, self.index]
        pad = self.n_qubits * self.per_qubit - x.shape[1]
        if pad:
            x = torch.nn.functional.pad(x, (0, pad))
        return x.reshape(batch, self.n_qubits, self.per_qubit)

    def _squash(self, x: torch.Tensor) -> torch.Tensor:
        if self.squash != "auto":
            return SQUASHES[self.squash](x)
        unit = (x - self.low) / (self.high - self.low)  # [0, 1] on bounded dimensions
        return torch.where(self.linear, (unit - 0.5) * math.pi, torch.atan(x))
