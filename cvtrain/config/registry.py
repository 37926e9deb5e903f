"""The `@schema(group, name)` decorator: a schema dataclass registers itself where it is defined.

Each YAML option in `conf/<group>/` starts its defaults list with `/schema/<group>/<name>@_here_`, so a misspelled
key or a value of the wrong type fails during composition, before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SCHEMAS: list[tuple[str, str, type]] = []  # (group, name, dataclass), filled by the decorator on import


def schema(group: str, name: str) -> Callable[[type[T]], type[T]]:
    def register(cls: type[T]) -> type[T]:
        SCHEMAS.append((group, name, cls))
        return cls

    return register
