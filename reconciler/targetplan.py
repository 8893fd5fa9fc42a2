"""Plan stage for targets: what each platform should hold, what it holds, the actions between.

For the tenants a `kind: Target` serves, the provider turns tenants and
extensions into its own objects (Kamailio: domain, subscriber and alias rows).
Their *current* value is what the platform holds now — read in bulk for the
zones reconciler manages — not what the state says; the state only says what
reconciler last applied there. So:

- an object that differs from what was last applied is drift, "changed on
  target" (a row deleted there is a create with drift);
- a secret is compared on the platform (`Provider.secret_matches`): nothing
  derived from it (Kamailio's ha1) reaches the plan, the state or a log;
- an object on the platform, or recorded, in a managed zone that no manifest
  declares is an orphan: left alone (listed as unmanaged) or, with
  --allow-delete, deleted;
- an object that is on the platform as declared but not recorded (apply
  was killed between writing the platform and the state) is an update that
  only records it ("recorded: false → true").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, ReconcilerError
from .diff import SENSITIVE, SENSITIVE_CHANGED, Action, FieldChange
from .lifecycle import today
from .manifests import Manifests
from .providers import PROVIDER_OF_KIND, TARGET_KINDS, Observed, Provider, provider_for
from .resources import Key, Resource
from .secrets import FingerprintKey, secret_change, secret_record
from .state.base import Snapshot, StateResource
from .targets import served_tenants

log = logging.getLogger(__name__)


@dataclass
class TargetDiff:
    actions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    orphans: list[StateResource] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # objects per kind, for delete limits


def open_providers(manifests: Manifests) -> dict[str, Provider]:
    """Every target's provider, opened and checked; none open when one fails."""
    providers: dict[str, Provider] = {}
    try:
        for name, entry in manifests.targets.items():
            provider = provider_for(entry)
            providers[name] = provider
            provider.open()
    except ReconcilerError:
        close_providers(providers)
        raise
    return providers


def close_providers(providers: dict[str, Provider]) -> None:
    for provider in providers.values():
        provider.close()


def desired_target_objects(manifests: Manifests, desired: dict[Key, Resource],
                           providers: dict[str, Provider]) -> dict[Key, Resource]:
    """The objects each platform should hold. The SIP password of an extension moves to
    its platform object: the state records it there, not twice."""
    extensions: dict[str, list[Resource]] = {}
    for resource in desired.values():
        if resource.kind == "extension":
            extensions.setdefault(resource.attrs["tenant"], []).append(resource)
    due = today().isoformat()
    out: dict[Key, Resource] = {}
    for tenant_name, target in served_tenants(manifests).items():
        tenant = desired[("tenant", tenant_name)]
        # An extension that starts later gets its SIP login when it is created.
        serving = [e for e in extensions.get(tenant_name, [])
                   if not e.attrs.get("start_date") or e.attrs["start_date"] <= due]
        for resource in providers[target.model.name].desired(tenant, serving):
            out[resource.key] = resource
        for ext in extensions.get(tenant_name, []):
            ext.secrets.pop("sip_password", None)
    return out


def diff_targets(wanted: dict[Key, Resource], recorded: dict[Key, StateResource],
                 providers: dict[str, Provider], key: FingerprintKey | None) -> TargetDiff:
    """Actions that make every platform hold `wanted`; `recorded`: the state's target objects."""
    zones, zone_scope = _managed_zones(wanted, recorded, providers)
    observed: dict[Key, Observed] = {}
    for name, provider in providers.items():
        observed.update(provider.read(zones.get(name, set())))
    result = TargetDiff()
    for ident, resource in wanted.items():
        provider = providers[resource.attrs["target"]]
        have, rec = observed.get(ident), recorded.get(ident)
        if _up_to_date(resource, have, rec, provider):
            result.unchanged += 1
            continue
        result.actions.append(_compare(resource, have, rec, provider, key))
    result.orphans = _unwanted(observed, recorded, wanted.keys(), providers, zones, zone_scope)
    for kind, _ in wanted:  # orphans include every object read that is not wanted
        result.totals[kind] = result.totals.get(kind, 0) + 1
    for orphan in result.orphans:
        result.totals[orphan.kind] = result.totals.get(orphan.kind, 0) + 1
    return result


def _unwanted(observed: dict[Key, Observed], recorded: dict[Key, StateResource], wanted,
              providers: dict[str, Provider], zones: dict[str, set[str]],
              zone_scope: dict[str, str]) -> list[StateResource]:
    """Objects read or recorded in a managed zone that no manifest declares."""
    managed = {(name, zone) for name, names in zones.items() for zone in names}
    unwanted = []
    for ident in sorted((observed.keys() | recorded.keys()) - wanted):
        have, rec = observed.get(ident), recorded.get(ident)
        attrs = have.attrs if have is not None else rec.attrs
        target = attrs.get("target")
        if target not in providers:
            continue  # recorded for a Target no longer declared: no longer managed
        zone = providers[target].zone_of(ident[0], attrs)
        if (target, zone) in managed:
            unwanted.append(StateResource(ident[0], ident[1], zone_scope.get(zone, ""),
                                          attrs, {}, rec.last_applied if rec else None))
    return unwanted


def _up_to_date(resource: Resource, have: Observed | None, rec: StateResource | None,
                provider: Provider) -> bool:
    """The common case of a no-op plan, decided without building any change."""
    if have is None or rec is None or have.attrs != resource.attrs or rec.scope != resource.scope:
        return False
    for name, secret in resource.secrets.items():
        if not provider.secret_matches(resource.key, name, secret):
            return False
    return True


def _managed_zones(wanted: dict[Key, Resource], recorded: dict[Key, StateResource],
                   providers: dict[str, Provider]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Per target the zones reconciler manages there (declared or recorded), and each zone's
    account."""
    zone_kinds = {provider.zone_kind for provider in providers.values()}
    zones: dict[str, set[str]] = {}
    zone_scope: dict[str, str] = {}
    for items in (wanted, recorded):
        for (kind, ident), item in items.items():
            if kind in zone_kinds and item.attrs.get("target") in providers:
                zones.setdefault(item.attrs["target"], set()).add(ident)
                zone_scope.setdefault(ident, item.scope)
    return zones, zone_scope


def _compare(resource: Resource, have: Observed | None, rec: StateResource | None,
             provider: Provider, key: FingerprintKey | None) -> Action:
    """The action that makes the platform hold `resource` (not up to date)."""
    on = provider.name
    applied = rec.last_applied if rec is not None else None
    changes: dict[str, FieldChange] = {}
    if have is None:
        if applied is not None:  # reconciler created it; someone deleted it there
            changes["exists"] = FieldChange(False, True, True, True, on)
        for name, value in resource.attrs.items():
            if value not in (None, [], {}, False):
                changes[name] = FieldChange(None, value)
        for name in resource.secrets:
            changes[name] = FieldChange(None, SENSITIVE)
        return _action("create", resource, changes, rec, key, on)
    for name, after in resource.attrs.items():
        before = have.attrs.get(name)
        if before != after:
            drift = applied is not None and applied.get(name) != before
            changes[name] = FieldChange(before, after, drift, applied.get(name) if drift else None,
                                        on)
    for name, secret in resource.secrets.items():
        if not provider.secret_matches(resource.key, name, secret):
            subject = f"{resource.kind}/{resource.id}/{name}"
            # Drift when the manifest's secret is the one last applied (certain with a
            # fingerprint key; without one, a new value behind the same reference looks alike).
            drift = rec is not None and name in rec.secrets and \
                secret_change(secret, rec.secrets.get(name), key, subject) is None
            changes[name] = FieldChange(SENSITIVE, SENSITIVE_CHANGED, drift,
                                        SENSITIVE if drift else None, on)
    if rec is None and not changes:
        changes["recorded"] = FieldChange(False, True)
    return _action("update", resource, changes, rec, key, on)


def _action(verb: str, resource: Resource, changes: dict[str, FieldChange],
            rec: StateResource | None, key: FingerprintKey | None, target: str) -> Action:
    records = {name: secret_record(secret, key, f"{resource.kind}/{resource.id}/{name}")
               for name, secret in resource.secrets.items()}
    where = resource.source()
    return Action(verb, resource.kind, resource.id, resource.scope,
                  where.short if where else None, changes, resource.attrs, records,
                  resource.rank, target=target, in_state=rec is not None,
                  secret_values=dict(resource.secrets))


def stranded_on_targets(owner: str, manifests: Manifests, snapshot: Snapshot,
                        owners: dict[Key, str | None]) -> list[Diagnostic]:
    """Objects that apply put on a platform for this environment's tenants, whose Target is
    no longer declared: nothing could update or delete them, and phones would keep
    registering with their passwords. A Target is removed after its objects."""
    tenant_of_zone = {r.attrs.get("sip_domain"): ident for (kind, ident), r
                      in snapshot.resources.items() if kind == "tenant" and owners[kind, ident] == owner}
    stranded: dict[str, list[str]] = {}
    tenants: dict[str, str] = {}
    for (kind, ident), resource in snapshot.resources.items():
        target = resource.attrs.get("target") if kind in TARGET_KINDS else None
        if not target or target in manifests.targets:
            continue
        tenant = tenant_of_zone.get(PROVIDER_OF_KIND[kind].zone_of(kind, resource.attrs))
        if tenant is not None:
            stranded.setdefault(target, []).append(f"{kind} {ident}")
            tenants.setdefault(target, tenant)
    return [Diagnostic(
        _where(manifests, tenants[target]),
        f"target '{target}' is not declared, but it holds {len(objects)} objects that "
        f"this environment applied there (e.g. {', '.join(sorted(objects)[:3])})",
        f"declare the Target '{target}' again; to take them off the platform, remove what "
        "needs them (the tenants' sip_domain or extensions), apply with --allow-delete, and "
        "remove the Target after that") for target, objects in sorted(stranded.items())]


def _where(manifests: Manifests, tenant: str):
    """The tenant's `sip_domain` in the manifests, if it is still declared there."""
    entry = manifests.tenants.get(tenant)
    return entry.at("sip_domain") if entry is not None else None


def split_recorded(resources: dict[Key, StateResource]) -> tuple[dict, dict]:
    """The state's resources: (reconciler's own, target objects)."""
    own, targets = {}, {}
    for ident, resource in resources.items():
        (targets if ident[0] in TARGET_KINDS else own)[ident] = resource
    return own, targets
