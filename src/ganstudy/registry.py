"""A small typed name -> entry registry with errors that list the valid choices, and the one
check of an entry's keyword arguments (``arch_args``, ``game_args``) against what it accepts.

One registration style for every registry: an entry carries its own ``name`` and is added with
``REGISTRY.add(entry)``, which returns the entry, so a class or function registers as
``@REGISTRY.add`` (a game class with ``name = "..."``) and a record as
``REGISTRY.add(Record("name", ...))``: the name is written once.
"""

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

from ganstudy.errors import GanstudyError, UnknownNameError


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Maps clean unique names to entries; ``kind`` names the registry in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, entry: T) -> T:
        """Register ``entry`` under ``entry.name``; returns it (usable as a decorator)."""
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name or name != name.strip() or " " in name:
            raise ValueError(f"bad {self.kind} name {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def keywords(fn: Callable[..., Any], skip: int = 0) -> tuple[str, ...]:
    """The names ``fn`` accepts as keywords, after its first ``skip`` parameters (in order)."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in kinds)


def check_keywords(what: str, given: Mapping[str, object], accepted: Iterable[str]) -> None:
    """One line for keys of ``given`` outside ``accepted``: ``what``, the keys, the accepted."""
    accepted = sorted(accepted)
    unknown = [key for key in given if key not in accepted]
    if unknown:
        keys = ", ".join(repr(key) for key in unknown)
        raise GanstudyError(
            f"{what}: unexpected keyword{'s' if len(unknown) > 1 else ''} {keys}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
