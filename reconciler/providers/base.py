"""The provider interface: how reconciler reads and changes a real platform.

A provider sits *beside* the state store. The state keeps reconciler's
bookkeeping (serial, change log, lock, what was last applied); a provider
owns a few resource kinds (`kinds`) and is, for them, the platform of record:
`plan` reads what is really there and `apply` changes it. Without a
`kind: Target` document there is no provider and the state store is the
platform of record, as in v1.

The life of a provider in one run (see docs/targets.md):

    open()                      connect and check the platform (schema, rights);
                                never create anything
    zone_of(kind, attrs)        the zone (partition) an object lies in; the objects
                                of `zone_kind` are the zones themselves
    desired(tenant, extensions) what the platform should hold for one tenant
    read(zones)                 what it holds in the zones reconciler manages,
                                one bulk read per table
    secret_matches(key, name, secret)
                                does the platform hold this secret (compared
                                there, never returned)
    apply(writes)               idempotent upserts and deletes keyed by identity
    close()

Every method but `desired` may raise `ReconcilerError` with a message for
the user; nothing they raise or log may hold a secret.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from ..resources import Key, Resource
from ..secrets import SecretValue


@dataclass(frozen=True, slots=True)
class Observed:
    """One object as the platform holds it; `zone` is the partition reconciler manages
    (a SIP domain for Kamailio, a customer id for a vendor API)."""

    kind: str
    id: str
    zone: str
    attrs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TargetWrite:
    """One change for the platform: upsert (attrs given) or delete (attrs None)."""

    action: str
    kind: str
    id: str
    attrs: dict[str, Any] | None
    secrets: dict[str, SecretValue] = field(default_factory=dict)


class Provider(abc.ABC):
    """A real platform that apply provisions and plan reads back."""

    provider: str  # the `provider:` name of a Target document
    kinds: tuple[str, ...]  # the resource kinds it provisions, in creation order
    zone_kind: str  # the kind whose objects are the zones (their id is the zone)

    def __init__(self, name: str) -> None:
        self.name = name  # the Target's name

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and check the platform; raise ReconcilerError when it is unusable."""

    @classmethod
    @abc.abstractmethod
    def zone_of(cls, kind: str, attrs: dict[str, Any]) -> str:
        """The zone an object of this provider lies in (from its attributes alone: also
        known for objects of a Target no longer declared)."""

    @abc.abstractmethod
    def desired(self, tenant: Resource, extensions: list[Resource]) -> list[Resource]:
        """The objects the platform should hold for one tenant and its extensions."""

    @abc.abstractmethod
    def read(self, zones: set[str]) -> dict[Key, Observed]:
        """Every object of `kinds` in `zones`, read in bulk (one query per table)."""

    @abc.abstractmethod
    def secret_matches(self, key: Key, name: str, secret: SecretValue) -> bool:
        """True when the object read as `key` holds `secret` as its field `name`."""

    @abc.abstractmethod
    def apply(self, writes: list[TargetWrite]) -> None:
        """Make the writes in one transaction; each is idempotent (keyed by identity)."""

    def close(self) -> None:  # pragma: no cover - nothing to close by default
        pass
