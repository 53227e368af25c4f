"""tintline: colorize anime and manga line art with a conditional GAN and optional color hints."""

__version__ = "0.1.0"
