"""Diff stage: desired resources against the state → typed actions.

A plain dict comparison keyed by (kind, id): linear, and fast enough for
100k extensions (deepdiff would cost as much as parsing). Secrets are
compared by reference and, with a fingerprint key, by keyed fingerprint
(see secrets.py); an action carries the records apply stores, never in a
saved plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .resources import KIND_RANK, LOGO_IMAGE, Key, Resource
from .secrets import FingerprintKey, secret_change, secret_record
from .state.base import StateResource

SENSITIVE_CHANGED = "(sensitive value changed)"
SENSITIVE = "(sensitive value)"
_WRITTEN_AGAIN = {
    "reference changed": "(sensitive value written again: its reference or version changed)",
    "no fingerprint with this key yet": "(sensitive value written again: no fingerprint with "
                                        "this key yet)",
}
SENSITIVE_MARKERS = frozenset({SENSITIVE, SENSITIVE_CHANGED, *_WRITTEN_AGAIN.values()})
# Attributes written with the record but never compared or shown: another
# attribute stands for each (the logo's image: its `logo_sha256`).
UNCOMPARED = frozenset({LOGO_IMAGE})


class FieldChange(NamedTuple):
    """One field's change. A tuple: a plan of 1M creates makes 13M of them."""

    before: Any
    after: Any
    drift: bool = False  # the platform value differs from what reconciler last applied
    applied: Any = None  # what reconciler last applied, when drift is True
    on_target: str | None = None  # the target (its name) where the drift was read


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
    secret_records: dict[str, dict] = field(default_factory=dict)  # what the state keeps
    rank: int = 0
    target: str | None = None  # the Target whose platform the action changes (providers/)
    # Whether the state holds the resource; None: as the action says (all but create). A
    # target object can be missing on the platform yet recorded, or the reverse.
    in_state: bool | None = None
    # The secrets a provider needs to write (SIP passwords for ha1): in memory only, never
    # in a plan file, the cache or the state.
    secret_values: dict[str, Any] = field(default_factory=dict, repr=False)
    owner: str | None = None  # the owner to record (creates and adoptions of owned kinds)

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


def diff(desired: dict[Key, Resource], current: dict[Key, StateResource],
         key: FingerprintKey | None = None) -> Diff:
    actions: list[Action] = []
    unchanged = 0
    for ident, resource in desired.items():
        existing = current.get(ident)
        if existing is None:
            actions.append(_create(resource, key))
            continue
        action = _update(resource, existing, key)
        if action is None:
            unchanged += 1
        else:
            actions.append(action)
    orphans = [r for key, r in current.items() if key not in desired]
    return Diff(actions, unchanged, orphans)


def delete_action(existing: StateResource) -> Action:
    changes = {name: FieldChange(value, None) for name, value in existing.attrs.items()
               if value not in (None, [], {}) and name not in UNCOMPARED}
    return Action("delete", existing.kind, existing.id, existing.scope, None, changes, None)


def _create(resource: Resource, key: FingerprintKey | None) -> Action:
    changes = {name: FieldChange(None, value) for name, value in resource.attrs.items()
               if value not in (None, [], {}, False) and name not in UNCOMPARED}
    records = {name: secret_record(secret, key, _subject(resource, name))
               for name, secret in resource.secrets.items()}
    for name in records:
        changes[name] = FieldChange(None, SENSITIVE)
    return Action("create", resource.kind, resource.id, resource.scope, _source(resource),
                  changes, resource.attrs, records, resource.rank)


def _subject(resource: Resource, name: str) -> str:
    return f"{resource.kind}/{resource.id}/{name}"


def _update(resource: Resource, existing: StateResource, key: FingerprintKey | None) -> Action | None:
    changes: dict[str, FieldChange] = {}
    applied = existing.last_applied or {}
    same = resource.attrs == existing.attrs  # nearly always: one comparison in C, no loop
    for name, after in () if same else resource.attrs.items():
        before = existing.attrs.get(name)
        if before != after and name not in UNCOMPARED:
            drift = existing.last_applied is not None and applied.get(name) != before
            changes[name] = FieldChange(before, after, drift, applied.get(name) if drift else None)
    records = {}
    for name, secret in resource.secrets.items():
        subject = _subject(resource, name)
        reason = secret_change(secret, existing.secrets.get(name), key, subject)
        if reason is not None:
            records[name] = secret_record(secret, key, subject)
            before = SENSITIVE if name in existing.secrets else None
            changes[name] = FieldChange(before, _WRITTEN_AGAIN.get(reason, SENSITIVE_CHANGED))
    if not changes and resource.scope == existing.scope:
        return None
    return Action("update", resource.kind, resource.id, resource.scope, _source(resource),
                  changes, resource.attrs, records, resource.rank)


def _source(resource: Resource) -> str | None:
    where = resource.source()
    return where.short if where else None
