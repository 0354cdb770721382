"""Classical encoders in front of a circuit: hybrid policies for large observations.

A circuit loads one feature per qubit (three with the Euler encoding), so an image or a long
feature vector cannot be loaded as it is. With ``policy.encoder`` set, a small trainable
network maps the observation to exactly the ``n_qubits * features_per_qubit`` features the
circuit loads, as in the hybrid CNN + quantum-layer agents of Chen et al. (2024); the
policy's ``squash`` (arctan by default) then bounds them into angles, and the circuit's
trainable input scales follow as without an encoder. The encoder is part of the circuit
module, so it is trained, saved and restored with it, and counted as classical.

Every encoder is a function ``(observation space, outputs, hidden sizes) -> nn.Module`` in
:data:`ENCODERS`; the module takes SB3's preprocessed observations (images scaled to
[0, 1], discrete spaces one-hot), batch first, and returns shape (batch, outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import (
    get_flattened_obs_dim,
    is_image_space,
    is_image_space_channels_first,
)
from torch import nn

from qrl.errors import QrlError, lookup

# Qubits of a circuit behind an encoder when policy.n_qubits is not given: small enough for
# any circuit family to simulate quickly, large enough to carry a few features.
DEFAULT_QUBITS = 8

# Activation functions of classical layers by name (SB3's ``activation_fn`` in presets, the
# fast-weight programmer's ``programmer_activation``).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def dense(n_inputs: int, hidden: Sequence[int], n_outputs: int) -> nn.Sequential:
    """Linear layers with a ReLU after each hidden one; the last layer is linear.

    :param n_inputs: input features
    :param hidden: hidden layer sizes (none: a single linear map)
    :param n_outputs: output features
    :return: the network
    """
    layers: list[nn.Module] = []
    size = n_inputs
    for width in hidden:
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, n_outputs))
    return nn.Sequential(*layers)


def linear_encoder(space: spaces.Space, n_outputs: int, hidden: Sequence[int]) -> nn.Module:
    """One linear map from the flattened observation to the circuit's inputs.

    :param space: the observation space
    :param n_outputs: features the circuit loads
    :param hidden: must be empty (an encoder with hidden layers is ``mlp``)
    :return: the encoder
    """
    if hidden:
        raise QrlError(
            f"the linear encoder has no hidden layers, got encoder_hidden {list(hidden)}; "
            "use encoder: mlp"
        )
    return nn.Sequential(nn.Flatten(), *dense(get_flattened_obs_dim(space), (), n_outputs))


def mlp_encoder(space: spaces.Space, n_outputs: int, hidden: Sequence[int]) -> nn.Module:
    """A multilayer perceptron from the flattened observation to the circuit's inputs.

    :param space: the observation space
    :param n_outputs: features the circuit loads
    :param hidden: hidden layer sizes, ReLU after each
    :return: the encoder
    """
    return nn.Sequential(nn.Flatten(), *dense(get_flattened_obs_dim(space), hidden, n_outputs))


def nature_trunk(channels: int) -> nn.Sequential:
    """The convolutional layers of SB3's ``NatureCNN`` (Mnih et al. 2015), then a flatten.

    :param channels: input channels
    :return: the trunk, for channel-first images of at least 36 x 36 pixels
    """
    return nn.Sequential(
        nn.Conv2d(channels, 32, kernel_size=8, stride=4, padding=0),
        nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=0),
        nn.ReLU(),
        nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=0),
        nn.ReLU(),
        nn.Flatten(),
    )


class ImageEncoder(nn.Module):
    """NatureCNN's convolutions, optional hidden layers, then a linear map to the circuit.

    SB3 transposes image observations to channel-first before the policy sees them; a
    channel-last space (a policy built outside an SB3 algorithm) is transposed here. Inputs
    may also arrive flattened (the recurrent qfwp policy flattens every observation); they
    are reshaped to the image first.

    :param space: an image space: Box of uint8 in [0, 255], shape (C, H, W) or (H, W, C)
    :param n_outputs: features the circuit loads
    :param hidden: hidden layer sizes between the convolutions and the output layer
    """

    def __init__(self, space: spaces.Box, n_outputs: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(n) for n in space.shape)
        self.channels_last = not is_image_space_channels_first(space)
        channels, height, width = self._chw(self.shape)
        self.trunk = nature_trunk(channels)
        with torch.no_grad():
            try:
                n_flat = self.trunk(torch.zeros(1, channels, height, width)).shape[1]
            except RuntimeError:  # a kernel larger than what is left of the image
                raise QrlError(
                    f"images of {height} x {width} pixels are too small for the cnn "
                    "encoder (NatureCNN's convolutions need at least 36 x 36); use encoder: "
                    "linear or mlp"
                ) from None
        self.head = dense(n_flat, hidden, n_outputs)

    def _chw(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        c, h, w = (shape[2], shape[0], shape[1]) if self.channels_last else shape
        return c, h, w

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Encode a batch of images (or of flattened images) to shape (batch, n_outputs)."""
        x = observations.reshape(observations.shape[0], *self.shape)
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.trunk(x))


def cnn_encoder(space: spaces.Space, n_outputs: int, hidden: Sequence[int]) -> nn.Module:
    """NatureCNN's convolutions and a linear map to the circuit's inputs (image spaces only).

    :param space: the observation space, an image space
    :param n_outputs: features the circuit loads
    :param hidden: hidden layer sizes after the convolutions (none by default)
    :return: the encoder
    :raises QrlError: for a space that is not an image
    """
    if not isinstance(space, spaces.Box) or not is_image_space(space):
        raise QrlError(
            f"the cnn encoder needs an image observation space (a Box of uint8 in [0, 255] "
            f"of shape (H, W, C) or (C, H, W)), not {space}; use encoder: linear or mlp"
        )
    return ImageEncoder(space, n_outputs, hidden)


EncoderBuilder = Callable[[spaces.Space, int, Sequence[int]], nn.Module]

# The classical encoders a quantum policy may put in front of its circuit (policy.encoder).
ENCODERS: dict[str, EncoderBuilder] = {
    "linear": linear_encoder,
    "mlp": mlp_encoder,
    "cnn": cnn_encoder,
}

# Hidden layer sizes of each encoder when policy.encoder_hidden is not given.
DEFAULT_HIDDEN: dict[str, tuple[int, ...]] = {"linear": (), "mlp": (64,), "cnn": ()}


def hidden_sizes(name: str, hidden: Sequence[int] | None) -> tuple[int, ...]:
    """The hidden layer sizes of an encoder: the given ones, checked, or its default.

    :param name: a key of :data:`ENCODERS`
    :param hidden: layer sizes such as [64], or None for the encoder's default
    :return: the sizes
    """
    if hidden is None:
        return DEFAULT_HIDDEN.get(name, ())
    ok = isinstance(hidden, Sequence) and not isinstance(hidden, str)
    ok = ok and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in hidden)
    if not ok:
        raise QrlError(
            f"encoder_hidden must be a list of layer sizes such as [64] or [], not {hidden!r}"
        )
    return tuple(int(w) for w in hidden)


def make_encoder(
    name: str, space: spaces.Space, n_outputs: int, hidden: Sequence[int] | None = None
) -> nn.Module:
    """Build the classical encoder registered under ``name``.

    :param name: a key of :data:`ENCODERS` ("linear", "mlp", "cnn")
    :param space: the observation space
    :param n_outputs: features the circuit loads (``n_qubits * features_per_qubit``)
    :param hidden: hidden layer sizes; the encoder's default (:data:`DEFAULT_HIDDEN`) if None
    :return: a module from preprocessed observations to shape (batch, n_outputs)
    :raises QrlError: for an unknown name, bad sizes, or a space the encoder cannot read
    """
    builder = lookup(ENCODERS, name, "encoder")
    return builder(space, n_outputs, hidden_sizes(name, hidden))
