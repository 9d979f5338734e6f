"""The method registry (timm-style): `@register` a Method subclass, `create_method(name)` builds it."""

from __future__ import annotations

from .base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or taken")
    METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    return list(METHODS)


def create_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown model {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]()
