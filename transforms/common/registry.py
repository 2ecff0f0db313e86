"""Plugins by name: each family (judges, embedders, exports) lists its built-in members once, in its package,
and any installed distribution adds its own through an entry point of the family's group, e.g. in its setup.py:

    entry_points={"judgemine.judges": ["toy = toy_judge:ToyJudge"]}

Settings, flags, `--help` choices, loading and the reference pages all read the registry, so a member is one
module plus one registration line. A member's own settings are the fields of its `Options` dataclass (declared
with transforms/common/options.py), named with the member's prefix so that one flag means one thing."""
from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from typing import ClassVar, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Named(Protocol):
    name: ClassVar[str]
    Options: ClassVar[type]


T = TypeVar("T", bound=Named)


class PluginError(ValueError):
    """An installed plugin that cannot be loaded or clashes with a member already registered."""


class Registry(Generic[T]):
    """kind: the family's word in messages. setting: the run setting (or export flag) that picks a member, whose
    value decides which member's own options apply. section: where its members' options are listed in `--help`
    ("judge: vllm"). group: the entry point group plugins register under."""

    def __init__(self, kind: str, setting: str, section: str, group: str, members: Iterable[type[T]]) -> None:
        self.kind, self.setting, self.section, self.group = kind, setting, section, group
        self._members = {m.name: m for m in members}
        self._origins: dict[str, str] = {}  # a plugin's distribution and version, by member name
        self._plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in importlib.metadata.entry_points(group=self.group):
            try:
                member = point.load()
            except Exception as e:  # noqa: BLE001 - any import error of a third-party module, named
                raise PluginError(f"the {self.kind} plugin {point.name!r} ({point.value}) failed to load: {e}") from e
            if getattr(member, "name", None) != point.name:
                raise PluginError(f"the {self.kind} plugin {point.value} is registered as {point.name!r} but its "
                                  f"name is {getattr(member, 'name', None)!r}")
            if point.name in self._members and self._members[point.name] is not member:
                raise PluginError(f"the {self.kind} plugin {point.value} takes the name {point.name!r} of another")
            self._members[point.name] = member
            dist = point.dist
            self._origins[point.name] = f"{dist.name}=={dist.version}" if dist else point.value
            log.debug("%s plugin %s from %s", self.kind, point.name, point.value)

    def members(self) -> dict[str, type[T]]:
        self._load_plugins()
        return dict(self._members)

    def names(self) -> tuple[str, ...]:
        return tuple(self.members())

    def origin(self, name: str) -> str:
        """Where a member's code comes from: "" for judgemine's own (its stage versions cover it), a plugin's
        distribution and version, so that another version of the plugin is other code in the fingerprints."""
        self._load_plugins()
        return self._origins.get(name, "")

    def get(self, name: str) -> type[T]:
        members = self.members()
        if name not in members:
            raise ValueError(f"unknown {self.kind} {name!r}: choose one of {', '.join(members)}")
        return members[name]
