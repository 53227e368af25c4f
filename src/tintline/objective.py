"""The objective: conditional GAN + reconstruction losses (pix2pix), kept apart from networks and the loop.

``d_step(batch)`` and ``g_step(batch)`` return a scalar loss to backpropagate and a dict of detached numbers to log;
the trainer owns optimizers and devices, so debug and tuning tools can reuse this as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """logits (B, 1, h, w) of PatchGAN. lsgan: least squares towards 1/0; vanilla: binary cross-entropy."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"unknown gan mode {mode!r}")


class Pix2PixObjective:
    """G maps input (B, 5, H, W) -> RGB (B, 3, H, W); D judges (line (B, 1, H, W) ++ RGB) patches.

    With ``gan_weight == 0`` the discriminator is never used: the simplest baseline, L1 regression alone.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, cfg: LossConfig):
        self.G = generator
        self.D = discriminator
        self.cfg = cfg
        if self.uses_gan and discriminator is None:
            raise ValueError("gan_weight > 0 needs a discriminator")

    @property
    def uses_gan(self) -> bool:
        return self.cfg.gan_weight > 0

    @staticmethod
    def _line(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["input"][:, :1]  # (B, 1, H, W) line art channel

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.G(batch["input"])

    def d_step(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Discriminator loss on real pairs vs. ``fake`` (detached here: D's step must not reach G)."""
        assert self.D is not None
        line = self._line(batch)
        d_real = self.D(torch.cat([line, batch["target"]], 1))
        d_fake = self.D(torch.cat([line, fake.detach()], 1))
        loss = 0.5 * (gan_loss(d_real, True, self.cfg.gan_mode) + gan_loss(d_fake, False, self.cfg.gan_mode))
        return loss, {
            "loss/d": loss.item(),
            "d/real": d_real.mean().item(),
            "d/fake": d_fake.mean().item(),
        }

    def g_step(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        l1 = F.l1_loss(fake, batch["target"])
        loss = self.cfg.l1_weight * l1
        logs = {"loss/l1": l1.item()}
        if self.uses_gan:
            assert self.D is not None
            adv = gan_loss(self.D(torch.cat([self._line(batch), fake], 1)), True, self.cfg.gan_mode)
            loss = loss + self.cfg.gan_weight * adv
            logs["loss/g_gan"] = adv.item()
        logs["loss/g"] = loss.item()
        return loss, logs
