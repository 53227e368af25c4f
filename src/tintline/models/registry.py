"""String-named factories for swappable parts (timm's ``register_model`` / ``create_model`` pattern).

A registry maps a name to a constructor. Configs name entries; :func:`Registry.create` checks the name and the
keyword arguments at once, so a typo fails when the config is loaded, not an hour into training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..errors import UserError

T = TypeVar("T")


class RegistryError(UserError):
    """Unknown name or bad arguments for a registry entry."""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> T:
        fn = self.get(name)
        params = inspect.signature(fn).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                raise RegistryError(
                    f"{self.kind} {name!r} has no argument(s) {', '.join(unknown)}; it takes: {', '.join(params)}"
                )
        try:
            return fn(**kwargs)
        except (TypeError, ValueError) as e:
            raise RegistryError(f"{self.kind} {name!r}: {e}") from e


GENERATORS: Registry = Registry("generator")
DISCRIMINATORS: Registry = Registry("discriminator")
