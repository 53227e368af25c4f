"""Discriminators: (line art, RGB) -> a map of real/fake logits, one per overlapping patch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from .layers import norm_layer
from .registry import DISCRIMINATORS


class PatchGAN(nn.Module):
    """pix2pix's PatchGAN (``base=64, n_layers=3`` is the 70x70 version).

    Input (B, in_channels, H, W): line art (1) concatenated with an RGB image (3). Output (B, 1, H', W') logits,
    about H / 2**n_layers per side; each judges one receptive-field patch, so D only looks at local texture and
    color, which is what L1 does not constrain.

    ``spectral_norm=True`` wraps every convolution in spectral normalization (Miyato et al. 2018): each layer is
    1-Lipschitz, which keeps D's gradients bounded and GAN training stable; it is usually combined with
    ``norm="none"`` and the hinge loss, but any norm works.
    """

    def __init__(
        self,
        in_channels: int = 4,
        base: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        spectral_norm: bool = False,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")

        def conv(c_in: int, c_out: int, stride: int, bias: bool = True) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride, 1, bias=bias)
            return _spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = [conv(in_channels, base, 2), nn.LeakyReLU(0.2)]
        c = base
        for i in range(1, n_layers + 1):
            c_out = base * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [conv(c, c_out, stride, bias=norm != "batch"), norm_layer(norm, c_out), nn.LeakyReLU(0.2)]
            c = c_out
        layers.append(conv(c, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


DISCRIMINATORS.register("patchgan")(PatchGAN)
