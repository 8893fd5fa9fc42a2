"""Ownership: which environment manages which object of a shared state.

Many environments share one state (a partner's, and one per customer). Each
account, base package, site and tenant is *owned* by the environment that
created it (the `owner` column of the state); users and extensions belong to
their tenant, so they follow its owner. An environment

- writes and deletes only what it owns (or creates);
- may declare an object owned by another environment only as a read-only
  reference (`ref: true`): it must exist, it is read for the rules, never
  written or deleted;
- takes an object over only with `--adopt` (the plan shows `owner: A → B`);
- deletes nothing that another object of the state still points at (a master
  tenant, a site a tenant uses, a package with sites, an account with
  sub-accounts, packages or tenants).

An environment's name is its directory relative to the repository root (git
top-level), or the directory's own name outside a git work tree: the same from
every folder and every CI runner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic
from .diff import Action, FieldChange
from .resources import KIND_SPECS, Key, Resource
from .state.base import StateResource
from .state.location import repository_root

if TYPE_CHECKING:  # the models (pydantic) load only where manifests are read
    from .manifests import Manifests

OWNED_KINDS = ("account", "base_package", "site", "tenant")


def environment_name(env: Path) -> str:
    """The name an environment's objects are owned under."""
    path = Path(os.path.abspath(env))
    root = repository_root(path)
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix() or "."
        except ValueError:
            pass
    return path.name


def references(manifests: Manifests) -> dict[Key, object]:
    """The objects declared with `ref: true`, by key → their manifest entry."""
    found: dict[Key, object] = {}
    for kind, entries in (("account", manifests.accounts), ("base_package", manifests.packages),
                          ("site", manifests.sites), ("tenant", manifests.tenants)):
        for ident, entry in entries.items():
            if getattr(entry.model, "ref", False):
                found[(kind, ident)] = entry
    return found


def without_references(desired: dict[Key, Resource], refs: dict[Key, object]) -> dict[Key, Resource]:
    """The resources the environment writes: references and their users and extensions left out."""
    ref_tenants = {ident for kind, ident in refs if kind == "tenant"}
    return {key: r for key, r in desired.items()
            if key not in refs and not (r.kind in ("user", "extension")
                                        and r.attrs.get("tenant") in ref_tenants)}


def effective_owner(resource: StateResource, state: dict[Key, StateResource]) -> str | None:
    """A top-level object's owner; a user's or extension's is its tenant's."""
    if resource.kind in OWNED_KINDS:
        return resource.owner
    tenant = state.get(("tenant", resource.attrs.get("tenant")))
    return tenant.owner if tenant is not None else None


def effective_owners(state: dict[Key, StateResource]) -> dict[Key, str | None]:
    """`effective_owner` of every resource in `state`, each tenant looked up once."""
    of_tenant = {ident: r.owner for (kind, ident), r in state.items() if kind == "tenant"}
    return {key: r.owner if r.kind in OWNED_KINDS else of_tenant.get(r.attrs.get("tenant"))
            for key, r in state.items()}


def label(key: Key) -> str:
    return f"{KIND_SPECS[key[0]].manifest_kind} '{key[1]}'"


@dataclass
class Ownership:
    """What the ownership check decided for one plan."""

    env: str
    adopted: dict[Key, str | None] = field(default_factory=dict)  # key → the former owner
    errors: list[Diagnostic] = field(default_factory=list)


def check_ownership(env: str, desired: dict[Key, Resource], refs: dict[Key, object],
                    state: dict[Key, StateResource], adopt: bool) -> Ownership:
    """Who may write what: errors for objects of other environments, adoptions with --adopt."""
    result = Ownership(env)
    for key, resource in desired.items():
        existing = state.get(key)
        if key[0] not in OWNED_KINDS or existing is None or existing.owner == env:
            continue
        if adopt:
            result.adopted[key] = existing.owner
        elif existing.owner is None:
            result.errors.append(Diagnostic(
                resource.source(), f"{label(key)} already exists in the state, and no environment "
                "owns it yet (a state from before ownership)",
                "pass --adopt to manage it from this environment (the plan shows the takeover), "
                "or declare it with 'ref: true' to use it without changing it"))
        else:
            result.errors.append(Diagnostic(
                resource.source(), f"{label(key)} already exists, owned by environment "
                f"'{existing.owner}' (account {existing.scope})",
                "declare it with 'ref: true' to use it without changing it, change it in that "
                "environment, or pass --adopt to take it over from there"))
    for key, entry in refs.items():
        if key not in state:
            result.errors.append(Diagnostic(
                entry.source, f"{label(key)} is declared with 'ref: true' but is not in the state",
                "apply the environment that owns it first, or remove 'ref: true' to create it here"))
    return result


def adoption_actions(ownership: Ownership, actions: list[Action],
                     desired: dict[Key, Resource]) -> tuple[list[Action], int]:
    """The actions with every adoption shown as an `owner` change (an update of its own when
    nothing else changes); and how many unchanged resources became updates."""
    by_key = {action.key: action for action in actions}
    added = 0
    for key, former in sorted(ownership.adopted.items()):
        action = by_key.get(key)
        if action is None:
            resource = desired[key]
            where = resource.source()
            action = Action("update", key[0], key[1], resource.scope,
                            where.short if where else None, {}, resource.attrs, {}, resource.rank)
            actions.append(action)
            added += 1
        action.changes["owner"] = FieldChange(former, ownership.env)
        action.owner = ownership.env
    for action in actions:
        if action.action == "create" and action.kind in OWNED_KINDS:
            action.owner = ownership.env
    return actions, added


def deletable(orphans: list[StateResource], state: dict[Key, StateResource],
              env: str) -> tuple[list[StateResource], list[StateResource]]:
    """Orphans this environment may delete (it owns them) and unowned ones it leaves alone;
    those of other environments are not its business at all."""
    mine, unowned = [], []
    for orphan in orphans:
        owner = effective_owner(orphan, state)
        if owner == env:
            mine.append(orphan)
        elif owner is None:
            unowned.append(orphan)
    return mine, unowned


# What each kind points at: (field, target kind, is a list).
POINTERS = {
    "account": (("parent", "account", False),),
    "base_package": (("account", "account", False),),
    "site": (("base_package", "base_package", False),),
    "tenant": (("account", "account", False), ("master", "tenant", False),
               ("sites", "site", True)),
}


def dangling(deletes: list[Action], platform: dict[Key, StateResource]) -> list[str]:
    """Refusals for deletes that would leave another object of the state pointing at nothing."""
    going = {action.key for action in deletes}
    refusals = []
    for holder in platform.values():
        if holder.key in going:
            continue
        for name, kind, many in POINTERS.get(holder.kind, ()):
            value = holder.attrs.get(name)
            for target in (value or []) if many else [value]:
                if (kind, target) in going:
                    owner = f"environment '{holder.owner}'" if holder.owner else "no environment"
                    refusals.append(
                        f"deleting {label((kind, target))} would leave {label(holder.key)} "
                        f"(owned by {owner}) pointing at nothing through '{name}' — change or "
                        "delete that one first")
    return sorted(refusals)
