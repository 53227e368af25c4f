"""Generators: line art + hints -> RGB.

Input (B, in_channels, H, W), by default 5 channels: line art (1, in [-1, 1], paper = +1), hint colors (3, in
[-1, 1], zero where there is no hint) and hint mask (1, 1 where a hint is). Output (B, 3, H, W) RGB in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import activation, norm_layer
from .registry import GENERATORS


class UNet(nn.Module):
    """The pix2pix U-Net (Isola et al. 2017), generalised in width and depth.

    ``depth`` stride-2 4x4 convolutions go down, as many transposed convolutions come up, with skip connections
    between mirrored levels. Level ``i`` has ``min(base * 2**i, max_width)`` channels. H and W must be multiples of
    ``2**depth`` (:attr:`multiple`); inference pads to that. ``blend="multiply"`` makes the network predict a fill
    color that is multiplied by the input line art (channel 0) instead of predicting the final image directly.
    ``base=64, depth=8, max_width=512, dropout=0.5`` is exactly pix2pix's U-Net-256 (54 M parameters).
    """

    def __init__(
        self,
        in_channels: int = 5,
        out_channels: int = 3,
        base: int = 64,
        depth: int = 8,
        max_width: int = 512,
        norm: str = "batch",
        act: str = "relu",
        dropout: float = 0.0,
        dropout_levels: int = 3,
        blend: str = "direct",
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        if blend not in ("direct", "multiply"):
            raise ValueError(f"blend must be 'direct' or 'multiply', got {blend!r}")
        self.blend = blend
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.multiple = 2**depth
        widths = [min(base * 2**i, max_width) for i in range(depth)]
        self.down = nn.ModuleList()
        for i in range(depth):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_channels if i == 0 else widths[i - 1], widths[i], 4, 2, 1, bias=norm != "batch"))
            if 0 < i < depth - 1:  # no norm on the input layer nor on the 1x1-ish innermost one (as pix2pix)
                layers.append(norm_layer(norm, widths[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            c_in = widths[i] if i == depth - 1 else 2 * widths[i]
            if i == 0:
                head = nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1)
                if blend == "multiply":
                    nn.init.constant_(head.bias, 2.0)  # fill starts near white: output starts as the line art
                self.up.append(nn.Sequential(activation(act, c_in), head, nn.Tanh()))
                continue
            layers = [activation(act, c_in), nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=norm != "batch"),
                      norm_layer(norm, widths[i - 1])]
            if dropout > 0 and depth - 1 - dropout_levels <= i < depth - 1:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"input {h}x{w} is not a multiple of {self.multiple}; pad it first")
        line = x[:, :1]  # (B, 1, H, W) line art in [-1, 1], paper = +1
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)  # level i: (B, widths[i], H / 2**(i+1), W / 2**(i+1))
        x = self.up[0](skips.pop())
        for block in self.up[1:]:
            x = block(torch.cat([x, skips.pop()], dim=1))
        if self.blend == "multiply":
            # x is a flat fill color; multiplying by the line art (as a colorist's multiply layer) draws the ink
            # exactly, so the network only has to learn colors, not to redraw lines.
            x = ((x + 1) * (line + 1)) / 2 - 1
        return x


GENERATORS.register("unet")(UNet)
