"""Backends by name: each backend family (embedders, judges) lists its members once, in its backends/
package; settings validation, `--help` choices and loading all read that list."""
from __future__ import annotations

from typing import Generic, Iterable, Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    def __init__(self, kind: str, members: Iterable[type[T]]) -> None:
        self.kind = kind
        self._members = {m.name: m for m in members}

    def names(self) -> tuple[str, ...]:
        return tuple(self._members)

    def get(self, name: str) -> type[T]:
        if name not in self._members:
            raise ValueError(f"unknown {self.kind} backend {name!r}: choose one of {', '.join(self._members)}")
        return self._members[name]
