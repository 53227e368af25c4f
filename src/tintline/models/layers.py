"""Small building blocks shared by the networks: norms and activations by name, and a residual block."""

from __future__ import annotations

import torch
from torch import nn

from .registry import Registry

# name -> constructor(channels); networks take these names as their ``norm`` / ``act`` arguments
NORM_LAYERS: Registry[nn.Module] = Registry("norm")
ACTIVATION_LAYERS: Registry[nn.Module] = Registry("activation")

NORM_LAYERS.register("batch")(lambda channels: nn.BatchNorm2d(channels))
NORM_LAYERS.register("instance")(lambda channels: nn.InstanceNorm2d(channels, affine=True))
NORM_LAYERS.register("none")(lambda channels: nn.Identity())
ACTIVATION_LAYERS.register("relu")(lambda channels: nn.ReLU(inplace=False))
ACTIVATION_LAYERS.register("leaky")(lambda channels: nn.LeakyReLU(0.2, inplace=False))
ACTIVATION_LAYERS.register("prelu")(lambda channels: nn.PReLU(channels))  # one learned slope per channel

NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("relu", "leaky", "prelu")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")
    return NORM_LAYERS.get(kind)(channels)


def activation(kind: str, channels: int) -> nn.Module:
    if kind not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {kind!r}")
    return ACTIVATION_LAYERS.get(kind)(channels)


def check_choices(norm: str, act: str) -> None:
    """Fail at construction (not at the first forward) on an unknown norm or activation name."""
    norm_layer(norm, 1)
    activation(act, 1)


class ResBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): ``x + conv(act(norm(conv(act(norm(x))))))``.

    (B, c_in, H, W) -> (B, c_out, H, W); a 1x1 convolution projects the shortcut when ``c_in != c_out``. Dropout,
    when on, sits between the two 3x3 convolutions.
    """

    def __init__(self, c_in: int, c_out: int, norm: str = "batch", act: str = "relu", dropout: float = 0.0):
        super().__init__()
        bias = norm != "batch"  # a batch norm right after the convolution makes its bias redundant
        layers: list[nn.Module] = [
            norm_layer(norm, c_in), activation(act, c_in), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias),
            norm_layer(norm, c_out), activation(act, c_out),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.branch = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.branch(x)
