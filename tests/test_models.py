"""Every registered network: shapes in train and eval mode on non-square inputs, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch

from tintline.config import TrainConfig, load_train_config
from tintline.models import DISCRIMINATORS, GENERATORS, RegistryError, create_discriminator, create_generator

# Small arguments per entry so the suite stays fast; every registered name must appear here.
SMALL_G = {"unet": {"base": 8, "depth": 5, "max_width": 32}}
SMALL_D = {"patchgan": {"base": 8, "n_layers": 2}}
H, W = 96, 160  # non-square: catches swapped axes


def test_every_registered_network_has_test_arguments():
    assert set(GENERATORS.names()) == set(SMALL_G)
    assert set(DISCRIMINATORS.names()) == set(SMALL_D)


@pytest.mark.parametrize("name", GENERATORS.names())
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_generator_shape_non_square(name, mode):
    torch.manual_seed(0)
    g = create_generator(name, **SMALL_G[name])
    getattr(g, mode)()
    y = g(torch.randn(2, 5, H, W))
    assert y.shape == (2, 3, H, W)
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    g = create_generator(name, **SMALL_G[name]).train()
    g(torch.randn(2, 5, H, W)).square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_shape_and_gradients(name):
    torch.manual_seed(0)
    d = create_discriminator(name, **SMALL_D[name]).train()
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
    g = create_generator(cfg.model.generator.name, **cfg.model.generator.args)
    assert sum(p.numel() for p in g.parameters()) == 54_416_003  # 54.4 M as pix2pix (5 input channels instead of 3)
    assert g.multiple == 256
    assert cfg.loss.l1_weight == 100 and cfg.loss.gan_weight == 1


def test_registry_errors_name_the_problem():
    with pytest.raises(RegistryError, match="unknown generator 'nope'"):
        create_generator("nope")
    with pytest.raises(RegistryError, match="no argument"):
        create_generator("unet", widht=3)
    with pytest.raises(RegistryError, match="norm must be one of"):
        create_generator("unet", norm="group")


@pytest.mark.parametrize("path", ["configs/default.yaml", "configs/pix2pix.yaml", "configs/l1.yaml"])
def test_every_recipe_loads_and_builds(path):
    cfg = load_train_config(path)
    create_generator(cfg.model.generator.name, **cfg.model.generator.args)
    create_discriminator(cfg.model.discriminator.name, **cfg.model.discriminator.args)


def test_default_recipe_equals_built_in_defaults():
    assert load_train_config("configs/default.yaml") == TrainConfig()
