"""Every registered loss (shape, gradient, falls on a toy problem), the DRAGAN penalty, sRGB -> Lab, the objective."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

from tintline.config import ConfigError, LossConfig, TrainConfig, build_config
from tintline.losses import ADVERSARIAL, RECONSTRUCTION, dragan_penalty, srgb_to_lab
from tintline.models import create_discriminator, create_generator
from tintline.objective import Pix2PixObjective

TINY_G = {"base": 8, "depth": 5, "max_width": 32}
TINY_D = {"base": 8, "n_layers": 2}
ALL_TERMS = {"l1": 100.0, "mse": 10.0, "lab": 1.0}


def test_config_names_are_the_registry_names():
    fields = LossConfig.model_fields
    assert set(get_args(fields["gan_mode"].annotation)) == set(ADVERSARIAL.names()) == {"lsgan", "vanilla", "hinge"}
    recon_keys = get_args(get_args(fields["recon"].annotation)[0])
    assert set(recon_keys) == set(RECONSTRUCTION.names()) == {"l1", "mse", "lab"}


# ------------------------------------------------------------------------------------------------ adversarial


@pytest.mark.parametrize("mode", ADVERSARIAL.names())
def test_adversarial_prefers_correct_logits(mode):
    adv = ADVERSARIAL.create(mode)
    real, fake = torch.full((2, 1, 3, 5), 1.0), torch.full((2, 1, 3, 5), -1.0)
    if mode == "lsgan":
        fake = torch.zeros_like(fake)  # lsgan's targets are 1 / 0
    assert adv.d_loss(real, fake) < adv.d_loss(fake, real)  # D: right way round beats swapped
    assert adv.g_loss(real) < adv.g_loss(fake)  # G: a fake D calls real beats one D calls fake


@pytest.mark.parametrize("mode", ADVERSARIAL.names())
def test_adversarial_shape_gradient_and_toy_descent(mode):
    adv = ADVERSARIAL.create(mode)
    torch.manual_seed(0)
    real = torch.randn(2, 1, 3, 5, requires_grad=True)
    fake = torch.randn(2, 1, 3, 5, requires_grad=True)
    d, g = adv.d_loss(real, fake), adv.g_loss(fake)
    assert d.shape == () and g.shape == ()
    d.backward()
    assert real.grad.abs().sum() > 0 and fake.grad.abs().sum() > 0
    # toy problem: D's logits learn to separate; then G's logits learn to fool a fixed D
    opt = torch.optim.Adam([real, fake], lr=0.1)
    first = adv.d_loss(real, fake).item()
    for _ in range(50):
        opt.zero_grad()
        adv.d_loss(real, fake).backward()
        opt.step()
    assert adv.d_loss(real, fake).item() < 0.5 * first
    fake_g = torch.full((2, 1, 3, 5), -2.0, requires_grad=True)
    opt = torch.optim.Adam([fake_g], lr=0.1)
    first = adv.g_loss(fake_g).item()
    for _ in range(50):
        opt.zero_grad()
        adv.g_loss(fake_g).backward()
        opt.step()
    assert adv.g_loss(fake_g).item() < first - 0.1


def test_dragan_penalty_is_positive_and_reaches_d_parameters():
    torch.manual_seed(0)
    d = create_discriminator("patchgan", **TINY_D).train()
    line = torch.rand(2, 1, 32, 64) * 2 - 1
    real = torch.rand(2, 3, 32, 64) * 2 - 1
    gp = dragan_penalty(lambda rgb: d(torch.cat([line, rgb], 1)), real)
    assert gp.shape == () and gp.item() > 0 and torch.isfinite(gp)
    gp.backward()
    # every convolution's weight gets a gradient (the output bias cannot: it does not change D's input gradient)
    convs = {n: p.grad for n, p in d.named_parameters() if p.dim() == 4}
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in convs.values()), convs.keys()
    # the penalty pulls D's gradient norm toward 1: for a linear critic with norm 1 it vanishes
    w = torch.zeros(3 * 4 * 4)
    w[0] = 1.0
    assert dragan_penalty(lambda x: x.flatten(1) @ w, torch.rand(5, 3, 4, 4)).item() < 1e-10


# ------------------------------------------------------------------------------------------------ color


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_matches_skimage(dtype):
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 16, 12, dtype=dtype)
    rgb[0, :, 0, :8] = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.01, 0.02, 0.03],
                                     [0.04, 0.05, 0.5], [1, 1, 0]], dtype=dtype).T  # extremes and the dark segment
    lab = srgb_to_lab(rgb).double().numpy()
    ref = np.stack([rgb2lab(img.permute(1, 2, 0).double().numpy()) for img in rgb]).transpose(0, 3, 1, 2)
    assert np.abs(lab - ref).max() < 1e-3


def test_lab_gradient_is_finite_at_black_and_white():
    rgb = torch.tensor([0.0, 1.0, 0.5, 0.001]).view(1, 1, 2, 2).expand(1, 3, 2, 2).clone().requires_grad_(True)
    srgb_to_lab(rgb).abs().sum().backward()
    assert torch.isfinite(rgb.grad).all()


# ------------------------------------------------------------------------------------------------ reconstruction


@pytest.mark.parametrize("name", RECONSTRUCTION.names())
def test_reconstruction_shape_gradient_and_toy_descent(name):
    term = RECONSTRUCTION.create(name)
    torch.manual_seed(0)
    target = torch.rand(2, 3, 6, 10) * 2 - 1
    assert term(target, target).item() == pytest.approx(0, abs=1e-6)
    raw = torch.zeros(2, 3, 6, 10, requires_grad=True)  # pred = tanh(raw): stays in [-1, 1] as G's output
    loss = term(torch.tanh(raw), target)
    assert loss.shape == () and loss.item() > 0
    loss.backward()
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0
    opt = torch.optim.Adam([raw], lr=0.05)
    first = loss.item()
    for _ in range(50):
        opt.zero_grad()
        term(torch.tanh(raw), target).backward()
        opt.step()
    assert term(torch.tanh(raw), target).item() < 0.5 * first


# ------------------------------------------------------------------------------------------------ objective


def _tiny(cfg: LossConfig, seed: int = 0):
    torch.manual_seed(seed)
    g = create_generator("unet", **TINY_G)
    d = create_discriminator("patchgan", **TINY_D) if cfg.gan_weight > 0 else None
    batch = {"input": torch.rand(2, 5, 32, 64) * 2 - 1, "target": torch.rand(2, 3, 32, 64) * 2 - 1}
    return Pix2PixObjective(g, d, cfg), batch


def _train_step(obj: Pix2PixObjective, batch, opt_g, opt_d) -> tuple[dict[str, float], dict[str, float]]:
    """What the trainer does each step."""
    fake = obj.generate(batch)
    ld: dict[str, float] = {}
    if obj.uses_gan:
        loss_d, ld = obj.d_step(batch, fake)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        obj.D.requires_grad_(False)
    loss_g, lg = obj.g_step(batch, fake)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    if obj.uses_gan:
        obj.D.requires_grad_(True)
    return ld, lg


@pytest.mark.parametrize("mode", ADVERSARIAL.names())
def test_steps_with_every_term_log_each_and_are_finite(mode):
    cfg = LossConfig(gan_mode=mode, gan_weight=1.0, dragan_weight=10.0, recon=ALL_TERMS)
    obj, batch = _tiny(cfg)
    fake = obj.generate(batch)
    loss_d, ld = obj.d_step(batch, fake)
    assert {"loss/d", "loss/gp", "loss/d_total", "d/real", "d/fake"} == set(ld)
    assert ld["loss/d_total"] == pytest.approx(ld["loss/d"] + 10.0 * ld["loss/gp"], rel=1e-5)
    loss_d.backward()
    assert all(p.grad is not None for p in obj.D.parameters())
    assert all(p.grad is None for p in obj.G.parameters())  # D's step does not reach G
    loss_g, lg = obj.g_step(batch, fake)
    assert {"loss/l1", "loss/mse", "loss/lab", "loss/g_gan", "loss/g"} == set(lg)
    weighted = sum(w * lg[f"loss/{k}"] for k, w in ALL_TERMS.items()) + lg["loss/g_gan"]
    assert lg["loss/g"] == pytest.approx(weighted, rel=1e-5)
    for v in (*ld.values(), *lg.values(), loss_d.item(), loss_g.item()):
        assert np.isfinite(v)


@pytest.mark.parametrize("mode", ADVERSARIAL.names())
def test_a_few_steps_with_every_term_reduce_reconstruction(mode):
    cfg = LossConfig(gan_mode=mode, gan_weight=1.0, dragan_weight=10.0, recon=ALL_TERMS)
    obj, batch = _tiny(cfg)
    opt_g = torch.optim.Adam(obj.G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(obj.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    logs = [_train_step(obj, batch, opt_g, opt_d)[1] for _ in range(10)]
    for term in ALL_TERMS:
        assert logs[-1][f"loss/{term}"] < logs[0][f"loss/{term}"], (term, [lg[f"loss/{term}"] for lg in logs])


def test_without_gan_no_discriminator_and_l1_is_always_logged():
    obj, batch = _tiny(LossConfig(gan_weight=0, recon={"l1": 0, "lab": 1.0}))
    assert not obj.uses_gan and obj.D is None
    loss, logs = obj.g_step(batch, obj.generate(batch))
    assert set(logs) == {"loss/l1", "loss/lab", "loss/g"}  # l1 for progress, though not in the loss
    assert loss.item() == pytest.approx(logs["loss/lab"], rel=1e-5)
    with pytest.raises(ValueError, match="discriminator"):
        obj.d_step(batch, obj.generate(batch))
    with pytest.raises(ValueError, match="needs a discriminator"):
        Pix2PixObjective(obj.G, None, LossConfig(gan_weight=1.0))


# ------------------------------------------------------------------------------------------------ config keys


def test_loss_config_keys():
    assert LossConfig().recon == {"l1": 100.0} and LossConfig().l1_weight == 100.0
    # old configs: l1_weight is read as recon.l1, alone or merged onto the defaults
    assert LossConfig(l1_weight=5).recon == {"l1": 5}
    assert build_config(TrainConfig, {"loss": {"l1_weight": 7.0}}).loss.recon == {"l1": 7.0}
    # new terms merge into the default {l1: 100}
    assert build_config(TrainConfig, {"loss": {"recon": {"lab": 1.5}}}).loss.recon == {"l1": 100.0, "lab": 1.5}
    cfg = build_config(TrainConfig, {"loss": {"recon": {"l1": 0, "mse": 1}, "gan_mode": "hinge", "gan_weight": 1,
                                                "dragan_weight": 10}})
    assert cfg.loss.recon == {"l1": 0, "mse": 1} and cfg.loss.gan_mode == "hinge" and cfg.loss.dragan_weight == 10
    for bad, msg in [
        ({"recon": {"lap": 1}}, "recon"),
        ({"recon": {"l1": -1}}, ">= 0"),
        ({"gan_weight": 0, "recon": {"l1": 0}}, "nothing to train"),
        ({"gan_weight": 0, "dragan_weight": 1}, "needs a discriminator"),
        ({"l1_weight": 3, "recon": {"l1": 4}}, "disagree"),
        ({"gan_mode": "wgan"}, "gan_mode"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            build_config(TrainConfig, {"loss": bad})
