"""The objective: conditional GAN + reconstruction losses (pix2pix), kept apart from networks and the loop.

``d_step(batch, fake)`` and ``g_step(batch, fake)`` return a scalar loss to backpropagate and a dict of detached
numbers to log; the trainer owns optimizers and devices, so debug and tuning tools can reuse this as is. The loss
terms are chosen by name (:class:`tintline.config.LossConfig`) from the registries in :mod:`tintline.losses`.

Logged numbers (each term unweighted, so runs with different weights compare):

* ``d_step``: ``loss/d`` (adversarial D loss), ``loss/gp`` (DRAGAN penalty, when enabled), ``loss/d_total``
  (what is backpropagated), ``d/real`` and ``d/fake`` (mean logits);
* ``g_step``: ``loss/<name>`` per reconstruction term (``loss/l1`` always, for progress and comparison),
  ``loss/region`` (region-pooled color loss, when ``loss.region`` > 0 and the batch has ``regions``),
  ``loss/classes`` (region-pooled color-class cross-entropy, when ``loss.classes`` > 0 and the generator has a
  color-class head), ``loss/g_gan`` (adversarial G loss, with a discriminator) and ``loss/g`` (the weighted total).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig
from .losses import ADVERSARIAL, RECONSTRUCTION, dragan_penalty, region_class_loss, region_color_loss


class Pix2PixObjective:
    """G maps input (B, C, H, W) -> RGB (B, 3, H, W); D judges (line (B, 1, H, W) ++ RGB) patches.

    With ``gan_weight == 0`` the discriminator is never used: the simplest baseline, reconstruction alone.

    ``palette`` (K, 3) CIELAB: the generator's color-class palette when it has a color-class head; then (with
    ``loss.classes`` > 0) :meth:`generate` also asks G for its class logits and keeps them in :attr:`last_logits`
    for the next :meth:`g_step` (generate and g_step are always called in pairs on the same batch).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, cfg: LossConfig,
                 plain_discriminator: nn.Module | None = None, palette: torch.Tensor | None = None):
        self.G = generator
        self.palette = palette if cfg.classes > 0 else None
        self.last_logits: torch.Tensor | None = None
        self.D = discriminator
        # Under DDP ``discriminator`` is the synchronised wrapper: every forward through it must be followed by a
        # backward into D's weights on all ranks. G's step (D frozen) and the DRAGAN penalty (a gradient with
        # respect to the input only) therefore judge with the same weights through ``plain_discriminator``.
        self.D_plain = plain_discriminator if plain_discriminator is not None else discriminator
        self.cfg = cfg
        if self.uses_gan and discriminator is None:
            raise ValueError("gan_weight > 0 needs a discriminator")
        self.adversarial = ADVERSARIAL.create(cfg.gan_mode)
        # only the terms with a weight are computed for the loss; loss/l1 is logged in any case
        self.recon = {name: (w, RECONSTRUCTION.create(name)) for name, w in cfg.recon.items() if w > 0}

    @property
    def uses_gan(self) -> bool:
        return self.cfg.gan_weight > 0

    @staticmethod
    def _line(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["input"][:, :1]  # (B, 1, H, W) line art channel

    def _judge(self, line: torch.Tensor, rgb: torch.Tensor, plain: bool = False) -> torch.Tensor:
        d = self.D_plain if plain else self.D
        assert d is not None
        return d(torch.cat([line, rgb], 1))  # (B, 1, h, w) logits

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.palette is None:
            return self.G(batch["input"])
        fake, self.last_logits = self.G(batch["input"], classes=True)  # (B, 3, H, W), (B, K, H/2, W/2)
        return fake

    def d_step(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Discriminator loss on real pairs vs. ``fake`` (detached here: D's step must not reach G)."""
        if self.D is None:
            raise ValueError("d_step needs a discriminator (gan_weight > 0)")
        line = self._line(batch)
        d_real = self._judge(line, batch["target"])
        d_fake = self._judge(line, fake.detach())
        adv = self.adversarial.d_loss(d_real, d_fake)
        loss = adv
        logs = {"loss/d": adv.item(), "d/real": d_real.mean().item(), "d/fake": d_fake.mean().item()}
        if self.cfg.dragan_weight > 0:
            # perturb the color image only; the line art is the condition, not what D is asked to judge
            gp = dragan_penalty(lambda rgb: self._judge(line, rgb, plain=True), batch["target"])
            loss = loss + self.cfg.dragan_weight * gp
            logs["loss/gp"] = gp.item()
        logs["loss/d_total"] = loss.item()
        return loss, logs

    def g_step(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        target = batch["target"]
        loss = fake.new_zeros(())
        logs: dict[str, float] = {}
        for name, (weight, term) in self.recon.items():
            value = term(fake, target)
            loss = loss + weight * value
            logs[f"loss/{name}"] = value.item()
        if self.cfg.region > 0 and "regions" in batch:
            value = region_color_loss(fake, target, batch["regions"])
            loss = loss + self.cfg.region * value
            logs["loss/region"] = value.item()
        if self.palette is not None and self.last_logits is not None and "regions" in batch:
            value = region_class_loss(self.last_logits, target, batch["regions"], self.palette)
            loss = loss + self.cfg.classes * value
            logs["loss/classes"] = value.item()
            self.last_logits = None
        if "loss/l1" not in logs:
            logs["loss/l1"] = F.l1_loss(fake.detach(), target).item()
        if self.uses_gan:
            adv = self.adversarial.g_loss(self._judge(self._line(batch), fake, plain=True))
            loss = loss + self.cfg.gan_weight * adv
            logs["loss/g_gan"] = adv.item()
        logs["loss/g"] = loss.item()
        return loss, logs
