"""Generators: line art + hints -> RGB.

Input (B, in_channels, H, W), by default 5 channels: line art (1, in [-1, 1], paper = +1), hint colors (3, in
[-1, 1], zero where there is no hint) and hint mask (1, 1 where a hint is). Output (B, 3, H, W) RGB in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ResBlock, activation, check_choices, norm_layer
from .registry import GENERATORS


def multiply_blend(fill: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """fill (B, 3, H, W) and line art (B, 1, H, W), both in [-1, 1] -> fill * line, as a colorist's multiply layer.

    The network then only has to learn colors, not to redraw lines: the ink comes exactly from the input.
    """
    return ((fill + 1) * (line + 1)) / 2 - 1


def _upconv(kind: str, c_in: int, c_out: int, bias: bool) -> nn.Module:
    """(B, c_in, h, w) -> (B, c_out, 2h, 2w). ``transposed``: pix2pix's 4x4 stride-2 transposed convolution;
    ``resize``: nearest-neighbour upsampling then a 3x3 convolution (Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"): every output pixel sees the same number of kernel taps, so no grid texture."""
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)


def _head_bias(head: nn.Module) -> torch.Tensor:
    return (head[-1] if isinstance(head, nn.Sequential) else head).bias


class ColorClasses(nn.Module):
    """The optional color-class head: per-pixel logits over a palette of ``classes`` CIELAB colors.

    A region's color is multimodal (a skirt may be red or blue, a region may stay white); the regression output
    averages the modes into a pale beige that is right for none of them. Pooled over a region, these logits give a
    distribution over the palette whose mode a colorist would pick (the classification of Zhang, Isola and Efros,
    "Colorful Image Colorization", ECCV 2016, per region instead of per pixel). ``palette`` (classes, 3) CIELAB is a
    buffer filled from the training data (:func:`tintline.regions.palette.fit_palette`) and saved with the weights.
    Input: the decoder's features (B, c_in, h, w); output (B, classes, h, w) logits at the features' resolution.
    """

    def __init__(self, c_in: int, classes: int, act: str):
        super().__init__()
        self.net = nn.Sequential(activation(act, c_in), nn.Conv2d(c_in, classes, 1))  # 1x1: ~0.1 GMAC at 256²
        self.register_buffer("palette", torch.zeros(classes, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UNet(nn.Module):
    """The pix2pix U-Net (Isola et al. 2017), generalised in width and depth.

    ``depth`` stride-2 4x4 convolutions go down, as many transposed convolutions come up, with skip connections
    between mirrored levels. Level ``i`` has ``min(base * 2**i, max_width)`` channels. H and W must be multiples of
    ``2**depth`` (:attr:`multiple`); inference pads to that. ``blend="multiply"`` makes the network predict a fill
    color that is multiplied by the input line art (channel 0) instead of predicting the final image directly.
    ``base=64, depth=8, max_width=512, dropout=0.5`` is exactly pix2pix's U-Net-256 (54 M parameters).

    As in pix2pix, the encoder always uses LeakyReLU(0.2); ``act`` (relu / leaky / prelu) is the decoder's
    activation, ``norm`` (batch / instance / none) is used on both sides, and ``dropout`` applies to the
    ``dropout_levels`` innermost decoder blocks. ``up`` chooses the decoder's upsampling: ``transposed`` (pix2pix)
    or ``resize`` (nearest + 3x3 convolution: no checkerboard texture, about 2x the decoder's cost).

    :meth:`fill` returns the color the network paints under the lines (before the multiply blend): what
    region-consistent inference votes on.
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
        up: str = "transposed",
        classes: int = 0,
    ):
        super().__init__()
        check_choices(norm, act)
        if up not in ("transposed", "resize"):
            raise ValueError(f"up must be 'transposed' or 'resize', got {up!r}")
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
                head = _upconv(up, c_in, out_channels, bias=True)
                if blend == "multiply":
                    nn.init.constant_(_head_bias(head), 2.0)  # fill starts near white: output starts as the line art
                self.up.append(nn.Sequential(activation(act, c_in), head, nn.Tanh()))
                continue
            layers = [activation(act, c_in), _upconv(up, c_in, widths[i - 1], bias=norm != "batch"),
                      norm_layer(norm, widths[i - 1])]
            if dropout > 0 and depth - 1 - dropout_levels <= i < depth - 1:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        # color classes from the last decoder features, at half resolution (B, 2*widths[0], H/2, W/2): a region's
        # class is pooled over many pixels, so the full resolution would only cost time
        self.classes = ColorClasses(2 * widths[0], classes, act) if classes > 0 else None

    def forward(self, x: torch.Tensor, classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (B, 3, H, W) RGB; with ``classes=True`` also the color-class logits (B, K, H/2, W/2)."""
        fill, logits = self.fill_and_classes(x, classes)
        out = multiply_blend(fill, x[:, :1]) if self.blend == "multiply" else fill
        return (out, logits) if classes else out

    def fill(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) input -> (B, 3, H, W) in [-1, 1]: the fill color (the output itself with blend=direct)."""
        return self.fill_and_classes(x, False)[0]

    def fill_and_classes(self, x: torch.Tensor, classes: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (fill (B, 3, H, W), color-class logits (B, K, H/2, W/2) or None without the head or when not asked)."""
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"input {h}x{w} is not a multiple of {self.multiple}; pad it first")
        if classes and self.classes is None:
            raise ValueError("this generator has no color-class head (classes: 0)")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)  # level i: (B, widths[i], H / 2**(i+1), W / 2**(i+1))
        x = self.up[0](skips.pop())
        for block in self.up[1:-1]:
            x = block(torch.cat([x, skips.pop()], dim=1))
        x = torch.cat([x, skips.pop()], dim=1)  # (B, 2 * widths[0], H/2, W/2): the last block's input
        logits = self.classes(x) if classes and self.classes is not None else None
        return self.up[-1](x), logits


GENERATORS.register("unet")(UNet)


class ResUNet(nn.Module):
    """A U-Net built from residual blocks: the same contract as :class:`UNet`, deeper features per level.

    Input (B, in_channels, H, W) with H and W multiples of ``2**depth`` (:attr:`multiple`); output
    (B, out_channels, H, W) in [-1, 1]; ``blend`` as in :class:`UNet`. Resolution level ``l`` (after ``l``
    halvings, 0..depth) has ``min(base * 2**max(l - 1, 0), max_width)`` channels, UNet's widths for ``l >= 1``.

    * encoder: a 3x3 stem and ``blocks`` pre-activation :class:`~.layers.ResBlock` s at full resolution, then per
      level a stride-2 4x4 convolution followed by ``blocks`` residual blocks;
    * decoder: per level, nearest-neighbour upsampling + 3x3 convolution (no checkerboard artefacts of transposed
      convolutions), concatenation with the encoder's features of that level, ``blocks`` residual blocks (the first
      maps 2·width -> width); ``dropout`` inside the blocks of the ``dropout_levels`` innermost decoder levels;
    * head: norm, activation, 3x3 convolution, tanh.

    ``norm`` and ``act`` are used everywhere (there is no pix2pix convention to keep here).
    """

    def __init__(
        self,
        in_channels: int = 5,
        out_channels: int = 3,
        base: int = 32,
        depth: int = 6,
        max_width: int = 256,
        blocks: int = 1,
        norm: str = "instance",
        act: str = "relu",
        dropout: float = 0.0,
        dropout_levels: int = 2,
        blend: str = "direct",
        classes: int = 0,
    ):
        super().__init__()
        check_choices(norm, act)
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        if blend not in ("direct", "multiply"):
            raise ValueError(f"blend must be 'direct' or 'multiply', got {blend!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.blend = blend
        self.multiple = 2**depth
        ch = [min(base * 2 ** max(level - 1, 0), max_width) for level in range(depth + 1)]

        def res_blocks(c_in: int, c: int, drop: float = 0.0) -> list[nn.Module]:
            return [ResBlock(c_in if k == 0 else c, c, norm, act, drop) for k in range(blocks)]

        self.stem = nn.Sequential(nn.Conv2d(in_channels, ch[0], 3, 1, 1), *res_blocks(ch[0], ch[0]))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[level - 1], ch[level], 4, 2, 1), *res_blocks(ch[level], ch[level]))
            for level in range(1, depth + 1)
        )
        self.up = nn.ModuleList()
        for level in reversed(range(depth)):  # target level, innermost first
            drop = dropout if level >= depth - dropout_levels else 0.0
            self.up.append(nn.ModuleDict({
                "resize": nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                        nn.Conv2d(ch[level + 1], ch[level], 3, 1, 1)),
                "fuse": nn.Sequential(*res_blocks(2 * ch[level], ch[level], drop)),
            }))
        conv = nn.Conv2d(ch[0], out_channels, 3, 1, 1)
        if blend == "multiply":
            nn.init.constant_(conv.bias, 2.0)  # fill starts near white: output starts as the line art
        self.head = nn.Sequential(norm_layer(norm, ch[0]), activation(act, ch[0]), conv, nn.Tanh())
        # color classes from the last decoder features at level 1 (B, ch[1], H/2, W/2), as UNet's
        self.classes = ColorClasses(ch[min(1, depth)], classes, act) if classes > 0 else None

    def forward(self, x: torch.Tensor, classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (B, 3, H, W) RGB; with ``classes=True`` also the color-class logits (B, K, H/2, W/2)."""
        fill, logits = self.fill_and_classes(x, classes)
        out = multiply_blend(fill, x[:, :1]) if self.blend == "multiply" else fill
        return (out, logits) if classes else out

    def fill(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) input -> (B, 3, H, W) in [-1, 1]: the fill color (the output itself with blend=direct)."""
        return self.fill_and_classes(x, False)[0]

    def fill_and_classes(self, x: torch.Tensor, classes: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (fill (B, 3, H, W), color-class logits (B, K, H/2, W/2) or None without the head or when not asked)."""
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"input {h}x{w} is not a multiple of {self.multiple}; pad it first")
        if classes and self.classes is None:
            raise ValueError("this generator has no color-class head (classes: 0)")
        logits = None
        x = self.stem(x)  # (B, ch[0], H, W)
        skips = [x]
        for block in self.down:
            x = block(x)  # level l: (B, ch[l], H / 2**l, W / 2**l)
            skips.append(x)
        skips.pop()  # the bottleneck is x itself
        for up in self.up:
            if classes and self.classes is not None and len(skips) == 1:
                logits = self.classes(x)  # x: (B, ch[1], H/2, W/2) before the last upsampling
            x = up["fuse"](torch.cat([up["resize"](x), skips.pop()], dim=1))
        return self.head(x), logits


GENERATORS.register("resunet")(ResUNet)
