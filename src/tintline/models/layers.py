"""Small building blocks shared by the networks: norms and activations by name."""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("relu", "leaky", "prelu")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def activation(kind: str, channels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=False)
    if kind == "leaky":
        return nn.LeakyReLU(0.2, inplace=False)
    if kind == "prelu":
        return nn.PReLU(channels)
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {kind!r}")
