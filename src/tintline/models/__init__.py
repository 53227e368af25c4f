"""Networks: plain ``nn.Module``s created by name from registries."""

from . import discriminator, generator  # noqa: F401  (registers the entries)
from .discriminator import PatchGAN
from .generator import ResUNet, UNet
from .layers import ACTIVATION_LAYERS, NORM_LAYERS
from .registry import DISCRIMINATORS, GENERATORS, Registry, RegistryError

__all__ = [
    "ACTIVATION_LAYERS",
    "DISCRIMINATORS",
    "GENERATORS",
    "NORM_LAYERS",
    "PatchGAN",
    "Registry",
    "RegistryError",
    "ResUNet",
    "UNet",
    "create_discriminator",
    "create_generator",
]


def create_generator(name: str, **kwargs):
    return GENERATORS.create(name, **kwargs)


def create_discriminator(name: str, **kwargs):
    return DISCRIMINATORS.create(name, **kwargs)
