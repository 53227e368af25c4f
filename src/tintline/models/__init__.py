"""Networks: plain ``nn.Module``s created by name from registries."""

from . import discriminator, generator  # noqa: F401  (registers the entries)
from .registry import DISCRIMINATORS, GENERATORS, RegistryError

__all__ = ["DISCRIMINATORS", "GENERATORS", "RegistryError", "create_generator", "create_discriminator"]


def create_generator(name: str, **kwargs):
    return GENERATORS.create(name, **kwargs)


def create_discriminator(name: str, **kwargs):
    return DISCRIMINATORS.create(name, **kwargs)
