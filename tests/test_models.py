"""Every registered network: shapes in train and eval mode on non-square inputs, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from tintline.config import TrainConfig, load_train_config
from tintline.models import DISCRIMINATORS, GENERATORS, RegistryError, create_discriminator, create_generator
from tintline.models.layers import ACTIVATIONS, NORMS

# Small arguments per entry so the suite stays fast; every registered name must appear here.
SMALL_G = {
    "unet": {"base": 8, "depth": 5, "max_width": 32},
    "resunet": {"base": 8, "depth": 4, "max_width": 32, "dropout": 0.1},
}
SMALL_D = {"patchgan": {"base": 8, "n_layers": 2}}
# further variants run through the same checks (name, arguments)
VARIANTS_G = [("unet", {**SMALL_G["unet"], "blend": "multiply", "dropout": 0.5, "act": "prelu"}),
              ("resunet", {**SMALL_G["resunet"], "blocks": 2, "blend": "multiply", "norm": "batch", "act": "leaky"}),
              ("unet", {**SMALL_G["unet"], "classes": 6, "up": "resize"}),
              ("resunet", {**SMALL_G["resunet"], "classes": 6})]
VARIANTS_D = [("patchgan", {**SMALL_D["patchgan"], "spectral_norm": True}),
              ("patchgan", {**SMALL_D["patchgan"], "spectral_norm": True, "norm": "none", "n_layers": 3})]
G_CASES = [(n, SMALL_G[n]) for n in GENERATORS.names()] + VARIANTS_G
D_CASES = [(n, SMALL_D[n]) for n in DISCRIMINATORS.names()] + VARIANTS_D
H, W = 96, 160  # non-square: catches swapped axes


def test_every_registered_network_has_test_arguments():
    assert set(GENERATORS.names()) == set(SMALL_G)
    assert set(DISCRIMINATORS.names()) == set(SMALL_D)


@pytest.mark.parametrize("name, args", G_CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_generator_shape_non_square(name, args, mode):
    torch.manual_seed(0)
    g = create_generator(name, **args)
    assert H % g.multiple == 0 and W % g.multiple == 0
    getattr(g, mode)()
    y = g(torch.rand(2, 5, H, W) * 2 - 1)  # inputs are in [-1, 1]
    assert y.shape == (2, 3, H, W)
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("name, args", G_CASES)
def test_generator_every_parameter_gets_a_gradient(name, args):
    torch.manual_seed(0)
    g = create_generator(name, **args).train()
    if getattr(g, "classes", None) is not None:  # the color-class head: trained through its logits
        y, logits = g(torch.randn(2, 5, H, W), classes=True)
        (y.square().mean() + logits.square().mean()).backward()
    else:
        g(torch.randn(2, 5, H, W)).square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_contract(name):
    """Same contract for every generator: in_channels, multiple, blend, and a multiply blend draws the lines."""
    g = create_generator(name, **{**SMALL_G[name], "in_channels": 9, "blend": "multiply"}).eval()
    x = torch.rand(1, 9, H, W) * 2 - 1
    x[:, 0] = 1.0  # blank paper ...
    x[:, 0, 40:44, :] = -1.0  # ... with one black line
    with torch.no_grad():
        y = g(x)
    assert torch.allclose(y[:, :, 40:44, :], torch.tensor(-1.0))  # the ink is exactly black whatever G predicts
    with pytest.raises(ValueError, match=f"multiple of {g.multiple}"):
        g(torch.randn(1, 9, H + g.multiple // 2, W))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_unet_every_norm_and_activation(norm, act):
    torch.manual_seed(0)
    g = create_generator("unet", **SMALL_G["unet"], norm=norm, act=act).train()
    kinds = {"relu": nn.ReLU, "leaky": nn.LeakyReLU, "prelu": nn.PReLU}
    decoder_acts = [m for m in g.up.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.PReLU))]
    assert decoder_acts and all(type(m) is kinds[act] for m in decoder_acts)  # act is what the decoder uses
    norms = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}
    if norm in norms:
        assert any(isinstance(m, norms[norm]) for m in g.modules())
    else:
        assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in g.modules())
    y = g(torch.randn(2, 5, H, W))
    assert y.shape == (2, 3, H, W) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


@pytest.mark.parametrize("name, args", D_CASES)
def test_discriminator_shape_and_gradients(name, args):
    torch.manual_seed(0)
    d = create_discriminator(name, **args).train()
    out = d(torch.randn(2, 4, H, W))
    assert out.shape[:2] == (2, 1) and out.shape[2] < out.shape[3]  # patch map keeps the aspect (H < W)
    out.mean().backward()
    missing = [n for n, p in d.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing
    d.eval()
    assert d(torch.randn(1, 4, H, W)).shape == (1, 1, *out.shape[2:])


def test_generator_refuses_sizes_it_cannot_take():
    g = create_generator("unet", **SMALL_G["unet"])
    with pytest.raises(ValueError, match="multiple of 32"):
        g(torch.randn(1, 5, 100, 160))


def test_pix2pix_reference_is_the_u_net_256():
    cfg = load_train_config("configs/pix2pix.yaml")
    with torch.device("meta"):  # shapes only: no 218 MB of weights to allocate and initialize
        g = create_generator(cfg.model.generator.name, **cfg.model.generator.args)
    assert sum(p.numel() for p in g.parameters()) == 54_416_003  # 54.4 M as pix2pix (5 input channels instead of 3)
    assert g.multiple == 256
    assert cfg.loss.recon == {"l1": 100.0} and cfg.loss.gan_weight == 1 and cfg.loss.gan_mode == "lsgan"


def test_spectral_norm_bounds_every_convolution():
    torch.manual_seed(0)
    d = create_discriminator("patchgan", **SMALL_D["patchgan"], spectral_norm=True, norm="none").train()
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)
    for _ in range(20):  # power iteration converges while training
        d(torch.randn(1, 4, 32, 32))
    for m in convs:  # each weight's largest singular value is ~1 (as a matrix of out x in*k*k)
        assert torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2) < 1.05
    plain = create_discriminator("patchgan", **SMALL_D["patchgan"])
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_registry_errors_name_the_problem():
    with pytest.raises(RegistryError, match="unknown generator 'nope'"):
        create_generator("nope")
    with pytest.raises(RegistryError, match="no argument"):
        create_generator("unet", widht=3)
    with pytest.raises(RegistryError, match="norm must be one of"):
        create_generator("unet", norm="group")
    with pytest.raises(RegistryError, match="activation must be one of"):
        create_generator("resunet", act="gelu")
    with pytest.raises(RegistryError, match="norm must be one of"):
        create_discriminator("patchgan", norm="layer")


@pytest.mark.parametrize("path", ["configs/default.yaml", "configs/pix2pix.yaml", "configs/l1.yaml"])
def test_every_recipe_loads_and_builds(path):
    cfg = load_train_config(path)
    create_generator(cfg.model.generator.name, **cfg.model.generator.args)
    create_discriminator(cfg.model.discriminator.name, **cfg.model.discriminator.args)


def test_default_recipe_equals_built_in_defaults():
    assert load_train_config("configs/default.yaml") == TrainConfig()
