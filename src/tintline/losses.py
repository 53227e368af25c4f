"""Loss terms by name: adversarial losses, reconstruction losses, the DRAGAN gradient penalty, sRGB -> CIELAB.

Two registries, named in :class:`tintline.config.LossConfig`:

* :data:`ADVERSARIAL` (``loss.gan_mode``): objects with ``d_loss(real_logits, fake_logits)`` and
  ``g_loss(fake_logits)``, both scalars to minimise;
* :data:`RECONSTRUCTION` (the keys of ``loss.recon``): modules ``(pred, target) -> scalar`` on RGB images in
  [-1, 1], (B, 3, H, W).

Everything here is differentiable torch with no state, so it runs on any device and dtype of its inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .models.registry import Registry

# ----------------------------------------------------------------------------------------------- adversarial


class AdversarialLoss:
    """A GAN loss on D's logits (any shape, e.g. PatchGAN's (B, 1, h, w)); every patch counts equally.

    ``d_loss`` is half the sum of its real and fake terms (pix2pix: D learns a little slower than G).
    """

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


ADVERSARIAL: Registry[AdversarialLoss] = Registry("adversarial loss")


@ADVERSARIAL.register("lsgan")
class LSGANLoss(AdversarialLoss):
    """Least squares (Mao et al. 2017): D regresses real -> 1, fake -> 0; G pushes fake -> 1."""

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return (fake - 1).pow(2).mean()


@ADVERSARIAL.register("vanilla")
class VanillaGANLoss(AdversarialLoss):
    """Binary cross-entropy on logits (Goodfellow et al. 2014), G non-saturating: G minimises -log D(fake)."""

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # BCE(real, 1) = softplus(-real), BCE(fake, 0) = softplus(fake); numerically stable for any logit
        return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake).mean()


@ADVERSARIAL.register("hinge")
class HingeGANLoss(AdversarialLoss):
    """Hinge (Lim & Ye 2017; SAGAN, BigGAN): D wants real >= 1 and fake <= -1; G raises D's score of fakes."""

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


def dragan_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                   scale: float = 0.5) -> torch.Tensor:
    """DRAGAN gradient penalty (Kodali et al. 2017) around the real samples: ``mean((||grad critic(x')|| - 1)**2)``.

    ``x' = real + scale * std(real) * u`` with ``u ~ U[0, 1)`` per element (the paper's perturbation, std over the
    batch). ``critic`` maps images (B, C, H, W) to logits of any shape (their sum is differentiated, so a PatchGAN's
    patches all count); the gradient norm is per sample. The graph is kept (``create_graph``), so the penalty
    backpropagates into the critic's parameters.
    """
    real = real.detach()
    x = (real + scale * real.std() * torch.rand_like(real)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


# ----------------------------------------------------------------------------------------------- color


# sRGB (linear) -> XYZ, D65 white, and the D65 / 2° reference white: the constants of skimage.color.rgb2lab
_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423),
                 (0.212671, 0.715160, 0.072169),
                 (0.019334, 0.119193, 0.950227))
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPS = 0.008856  # (6/29)**3, below which CIELAB's cube root turns into a line


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (..., 3, H, W) -> CIELAB (D65), L in [0, 100], a and b about [-128, 127]; differentiable.

    Matches ``skimage.color.rgb2lab``. Values outside [0, 1] are clamped. Both branches of each piecewise function
    are evaluated on clamped arguments, so no branch produces an infinite gradient (cube root at 0) that
    ``torch.where`` would turn into NaN.
    """
    rgb = rgb.clamp(0, 1)
    lin = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    m = torch.tensor(_XYZ_FROM_RGB, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,...jhw->...ihw", m, lin) / white[:, None, None]  # (..., 3, H, W), white -> 1
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS).pow(1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


# ----------------------------------------------------------------------------------------------- reconstruction

RECONSTRUCTION: Registry[nn.Module] = Registry("reconstruction loss")


@RECONSTRUCTION.register("l1")
class L1Loss(nn.Module):
    """Mean absolute error on RGB in [-1, 1] (pix2pix's reconstruction term)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target)


@RECONSTRUCTION.register("mse")
class MSELoss(nn.Module):
    """Mean squared error on RGB in [-1, 1]: punishes large errors more, blurs more than L1."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target)


@RECONSTRUCTION.register("lab")
class LabL1Loss(nn.Module):
    """Mean absolute error in CIELAB, in Lab units (a per-channel CIE76 ΔE; L spans 0..100).

    Perceptual distances: an error in a saturated hue or in lightness costs what the eye sees. For the same RGB
    error it is about 60 times an L1 on [-1, 1] images, so ``lab: 1.5`` weighs about like ``l1: 100``.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(srgb_to_lab((pred + 1) / 2), srgb_to_lab((target + 1) / 2))


def region_means(values: torch.Tensor, labels: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """values (B, C, H, W), labels (B, H, W) int64 in 0..n-1 -> (per-region means (B*n, C), pixels per region
    (B*n,)), region r of image i at row i*n + r. Empty regions have mean 0."""
    b, c = values.shape[:2]
    ids = (labels + torch.arange(b, device=labels.device).view(b, 1, 1) * n).reshape(-1)  # (B*H*W,) global ids
    counts = torch.bincount(ids, minlength=b * n).to(values.dtype)
    flat = values.permute(0, 2, 3, 1).reshape(-1, c)
    sums = flat.new_zeros(b * n, c).index_add_(0, ids, flat)
    return sums / counts.clamp_min(1)[:, None], counts


def _counted(counts: torch.Tensor, n: int) -> torch.Tensor:
    """(B*n,) pixel counts -> regions that count: non-empty and not label 0 (ink)."""
    return (counts > 0) & (torch.arange(len(counts), device=counts.device) % n != 0)


def region_color_loss(pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Region-pooled color loss: mean CIELAB L1 between each region's mean predicted and mean true color.

    pred, target (B, 3, H, W) RGB in [-1, 1]; labels (B, H, W) int64, regions 1..n per image and 0 for pixels that
    do not count (ink). Every region of every image weighs the same, small or large, as in region accuracy, and
    only the region's mean is asked for, so the network is free to shade inside it. Returns a scalar (0 with no
    region).
    """
    n = int(labels.max().item()) + 1
    mp, counts = region_means(pred, labels, n)
    mt, _ = region_means(target, labels, n)
    keep = _counted(counts, n)
    if not keep.any():
        return pred.sum() * 0
    lab = srgb_to_lab(((torch.stack([mp[keep], mt[keep]]) + 1) / 2)[..., None, None])  # (2, R, 3, 1, 1)
    return (lab[0] - lab[1]).abs().mean()


SOFT_NEIGHBOURS = 5  # palette colors a true color is spread over
SOFT_SIGMA = 5.0  # CIELAB units


def region_class_loss(logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor,
                      palette: torch.Tensor) -> torch.Tensor:
    """Region-pooled color-class loss: cross-entropy of each region's mean logits against its mean true color
    soft-encoded on the palette (the ``SOFT_NEIGHBOURS`` nearest palette colors, Gaussian weights of width
    ``SOFT_SIGMA`` CIELAB units, as Zhang et al. 2016 encode ab values): neighbouring palette colors are not
    punished as if they were far, and the true color between two of them is represented.

    logits (B, K, h, w) at a stride of the images (h = H / s); target (B, 3, H, W) RGB in [-1, 1]; labels (B, H, W)
    int64, regions 1..n and 0 for ink; palette (K, 3) CIELAB. The true color of a region is averaged over all its
    pixels, the logits over its pixels on the logits' grid (the labels sampled at stride s); a region that no grid
    point hits does not count. Every region weighs the same. Returns a scalar (0 with no region).
    """
    k, h, w = logits.shape[1:]
    sy, sx = labels.shape[-2] // h, labels.shape[-1] // w
    n = int(labels.max().item()) + 1
    true_mean, counts = region_means(target, labels, n)  # (B*n, 3) over all the region's pixels
    small = labels[:, sy // 2 :: sy, sx // 2 :: sx][:, :h, :w]  # (B, h, w): the label at each logit's centre
    pooled, s_counts = region_means(logits, small, n)  # (B*n, K) mean logits over the region's grid points
    keep = _counted(counts, n) & (s_counts > 0)
    if not keep.any():
        return logits.sum() * 0
    with torch.no_grad():
        lab = srgb_to_lab(((true_mean[keep] + 1) / 2)[..., None, None])[..., 0, 0]  # (R, 3)
        dist = torch.cdist(lab.float(), palette.float().to(lab.device))  # (R, K)
        d, nn_idx = dist.topk(min(SOFT_NEIGHBOURS, k), largest=False)
        w = torch.softmax(-d.pow(2) / (2 * SOFT_SIGMA**2), dim=1)  # (R, m)
        soft = torch.zeros(len(lab), k, device=lab.device).scatter_(1, nn_idx, w).to(logits.dtype)  # (R, K)
    return -(soft * F.log_softmax(pooled[keep], dim=1)).sum(1).mean()
