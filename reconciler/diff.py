"""Diff stage: desired resources against the state → typed actions.

A plain dict comparison keyed by (kind, id): linear, and fast enough for
100k extensions (deepdiff would cost as much as parsing). Secrets are
compared by hashing the desired value with the stored salt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .resources import KIND_RANK, Key, Resource
from .secrets import hash_secret
from .state.base import StateResource

SENSITIVE_CHANGED = "(sensitive value changed)"
SENSITIVE = "(sensitive value)"


@dataclass(frozen=True, slots=True)
class FieldChange:
    before: Any
    after: Any
    drift: bool = False  # the platform value differs from what reconciler last applied
    applied: Any = None  # what reconciler last applied, when drift is True


@dataclass(slots=True)
class Action:
    """One create, update or delete, in execution order within a plan."""

    action: str
    kind: str
    id: str
    scope: str
    source: str | None
    changes: dict[str, FieldChange]
    attrs: dict[str, Any] | None  # the full record to write (None for delete)
    secret_hashes: dict[str, str] = field(default_factory=dict)  # new salted hashes
    rank: int = 0

    @property
    def key(self) -> Key:
        return (self.kind, self.id)

    def sort_key(self) -> tuple:
        order = KIND_RANK[self.kind]
        if self.action == "delete":
            return (1, -order, -self.rank, self.id)
        return (0, order, self.rank, self.id)


@dataclass(slots=True)
class Diff:
    actions: list[Action]
    unchanged: int
    orphans: list[StateResource]  # in the state and in scope, but not in the manifests


def diff(desired: dict[Key, Resource], current: dict[Key, StateResource]) -> Diff:
    actions: list[Action] = []
    unchanged = 0
    for key, resource in desired.items():
        existing = current.get(key)
        if existing is None:
            actions.append(_create(resource))
            continue
        action = _update(resource, existing)
        if action is None:
            unchanged += 1
        else:
            actions.append(action)
    orphans = [r for key, r in current.items() if key not in desired]
    return Diff(actions, unchanged, orphans)


def delete_action(existing: StateResource) -> Action:
    changes = {name: FieldChange(value, None) for name, value in existing.attrs.items()
               if value not in (None, [], {})}
    return Action("delete", existing.kind, existing.id, existing.scope, None, changes, None)


def _create(resource: Resource) -> Action:
    changes = {name: FieldChange(None, value) for name, value in resource.attrs.items()
               if value not in (None, [], {}, False)}
    hashes = {name: hash_secret(secret.reveal()) for name, secret in resource.secrets.items()}
    for name in hashes:
        changes[name] = FieldChange(None, SENSITIVE)
    return Action("create", resource.kind, resource.id, resource.scope, _source(resource),
                  changes, resource.attrs, hashes, resource.rank)


def _update(resource: Resource, existing: StateResource) -> Action | None:
    changes: dict[str, FieldChange] = {}
    applied = existing.last_applied or {}
    for name, after in resource.attrs.items():
        before = existing.attrs.get(name)
        if before != after:
            drift = existing.last_applied is not None and applied.get(name) != before
            changes[name] = FieldChange(before, after, drift, applied.get(name) if drift else None)
    hashes = {}
    for name, secret in resource.secrets.items():
        if not secret.matches(existing.secrets.get(name)):
            hashes[name] = hash_secret(secret.reveal())
            before = SENSITIVE if name in existing.secrets else None
            changes[name] = FieldChange(before, SENSITIVE_CHANGED)
    if not changes and resource.scope == existing.scope:
        return None
    return Action("update", resource.kind, resource.id, resource.scope, _source(resource),
                  changes, resource.attrs, hashes, resource.rank)


def _source(resource: Resource) -> str | None:
    where = resource.source()
    return where.short if where else None
