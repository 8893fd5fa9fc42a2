"""The state-store interface: what planning reads and applying writes.

A store holds the current platform objects, a serial that grows with every
applied change, and a change log that says which resources each serial
touched (so a stale plan can name them). SQLite and PostgreSQL implement it in
`sql.py`; a vendor API would implement the same few methods.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StateResource:
    """A platform object as the state knows it."""

    kind: str
    id: str
    scope: str
    attrs: dict[str, Any]  # what the platform has now
    secrets: dict[str, dict] = field(default_factory=dict)  # field → record (secrets.py)
    last_applied: dict[str, Any] | None = None  # what reconciler last wrote
    owner: str | None = None  # the environment that manages it (None: not owned yet)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.id)


@dataclass(slots=True)
class Snapshot:
    """One consistent read of the state."""

    serial: int
    resources: dict[tuple[str, str], StateResource]


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    serial: int
    kind: str
    id: str
    scope: str
    action: str
    applied_at: str


@dataclass(frozen=True, slots=True)
class Write:
    """One resource write of an apply: upsert (attrs given) or delete (attrs None)."""

    action: str
    kind: str
    id: str
    scope: str
    attrs: dict[str, Any] | None
    secrets: dict[str, dict] = field(default_factory=dict)
    owner: str | None = None  # set on create and adoption; an update keeps the owner


class LockTimeout(Exception):
    """Another process holds the state lock."""


class StateConflict(Exception):
    """A write found the state other than planned (a row vanished, the lock was lost)."""


class StateStore(abc.ABC):
    """What reconciler needs from a place that keeps the current state."""

    url_for_display: str

    @abc.abstractmethod
    def snapshot(self, scope: set[str] | None = None,
                 without_extensions_of: frozenset[str] = frozenset()) -> Snapshot:
        """The serial and the resources in `scope` (all when None), read consistently;
        without the extensions of the tenants `without_extensions_of` (sealed by the plan
        memo: the plan does not compare them)."""

    @abc.abstractmethod
    def platform(self, without_extensions_of: frozenset[str] = frozenset()
                 ) -> dict[tuple[str, str], StateResource]:
        """Every account, base package, site and tenant of the whole state, and the
        extensions that have a DID (but those of `without_extensions_of`): what ownership
        and platform-wide uniqueness compare."""

    @abc.abstractmethod
    def write(self, writes: list[Write]) -> int:
        """Apply writes in one transaction, one serial step each; returns the new serial."""

    @abc.abstractmethod
    def changes_since(self, serial: int) -> list[ChangeRecord]:
        """Change-log entries with a serial greater than `serial`."""

    @abc.abstractmethod
    def lock(self, timeout: float) -> AbstractContextManager[None]:
        """Hold the exclusive apply lock; raise LockTimeout naming the holder."""

    @abc.abstractmethod
    def version(self) -> tuple[int, int]:
        """(serial, revision); the revision moves with every write, even outside reconciler."""

    @abc.abstractmethod
    def revision_tracked(self) -> bool:
        """True when the triggers that count every write as a revision are in place (only
        then may a cached plan be served by (serial, revision))."""

    @abc.abstractmethod
    def identity(self) -> str:
        """The state's id: random, made with the state; a copy made later has it too."""

    def cache_version(self) -> tuple[str, int, int] | None:
        """(id, serial, revision), what a cached plan is valid for; None when the revision
        triggers are not provably in place (then no plan is served from the cache)."""
        if not self.revision_tracked():
            return None
        return (self.identity(), *self.version())

    @abc.abstractmethod
    def history_mark(self, serial: int) -> str:
        """A digest of the change-log entry of `serial`: a copy whose history went another
        way since (a restored backup that was written to again) gives another mark."""

    def assert_locked(self) -> None:
        """Raise StateConflict when the apply lock this process took is lost (default: a
        store without a lock that can be lost)."""

    def close(self) -> None:  # pragma: no cover - default is nothing to close
        pass
