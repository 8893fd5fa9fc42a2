"""Plan stage: validated manifests + state snapshot → an ordered, checked plan.

`build_plan` is a fixed sequence of named steps (like octoDNS's
`BaseProvider.plan`): validate, read the state in scope, number `auto`
extensions, diff, check forbidden changes, decide deletes, order. A plan that
breaks a rule is still built, so it can be shown; it is `rejected` and can be
neither saved nor applied.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, Diagnostics, ReconcilerError, display_path
from .diff import Action, Diff, delete_action, diff
from .gcpause import paused_gc
from .cost import CostReport, Prices, cost_report
from .lifecycle import split_scheduled, today
from .resources import KIND_SPECS, ExistingExtensions, Key, Resource, desired_resources, user_id
from .secrets import FingerprintKey, SecretError, fingerprint_key
from .state.base import Snapshot, StateResource, StateStore

if TYPE_CHECKING:
    from .manifests import Manifests

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PlanOptions:
    allow_delete: bool = False
    max_delete_percent: float = 10.0
    force: bool = False
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ForbiddenChange:
    kind: str
    id: str
    field: str
    before: object
    after: object
    reason: str
    instead: str
    source: str | None
    # Errors that only follow from this change (a new dial plan makes every
    # extension "too short"): shown under it, not as separate problems.
    follow_ons: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True, slots=True)
class LeftAlone:
    """A resource in the state and in scope that the manifests no longer declare."""

    kind: str
    id: str
    scope: str
    target: str = ""  # an object on this target's platform that no manifest declares


@dataclass
class Plan:
    env: str
    state_serial: int
    scope: list[str]
    actions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    forbidden: list[ForbiddenChange] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # delete-safety messages
    left_alone: list[LeftAlone] = field(default_factory=list)  # orphans kept (no --allow-delete)
    scheduled: list[Action] = field(default_factory=list)  # creates with a future start_date
    cost: CostReport | None = None  # with a price list: the monthly cost before and after
    # "fingerprinted" (a key is configured) or "write-only"; "" when nothing has secrets
    secrets_mode: str = ""
    state_id: str = ""  # which state the plan was made against (a copy has another id …
    state_mark: str = ""  # … or, restored and written to again, another history mark)
    # The open providers of the targets this plan read, by target name; apply writes
    # through them. Runtime only: never in a plan file or the cache.
    providers: dict = field(default_factory=dict, repr=False, compare=False)

    def close(self) -> None:
        if self.providers:  # none for a plan from the cache: no need to import the providers
            from .targetplan import close_providers

            close_providers(self.providers)

    @property
    def rejected(self) -> bool:
        return bool(self.errors or self.forbidden or self.refusals)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a.action == action)

    @property
    def summary(self) -> dict[str, int]:
        return {"create": self.count("create"), "update": self.count("update"),
                "delete": self.count("delete"), "unchanged": self.unchanged,
                "left_alone": len(self.left_alone)}


def build_plan(env: Path, store: StateStore, options: PlanOptions) -> Plan:
    with paused_gc(freeze=True):
        return _build_plan(env, store, options)


def _build_plan(env: Path, store: StateStore, options: PlanOptions) -> Plan:
    # Imported here, not at the top: a plan served from the cache needs none of them.
    from .targetplan import desired_target_objects, diff_targets, open_providers, split_recorded
    from .validate import validate_environment

    key = _fingerprint_key()
    manifests, diagnostics = validate_environment(env, need_secrets=True)
    log.info("%s: %d errors, %d warnings; accounts in scope: %s", display_path(env),
             len(diagnostics.errors), len(diagnostics.warnings),
             ", ".join(sorted(manifests.accounts)) or "none")
    scope = set(manifests.accounts)
    snapshot = store.snapshot(scope)
    log.info("state: %d resources in scope, serial %d", len(snapshot.resources), snapshot.serial)
    plan = Plan(display_path(env), snapshot.serial, sorted(scope), state_id=store.identity(),
                state_mark=store.history_mark(snapshot.serial))
    desired = desired_resources(manifests, existing_extensions(snapshot))
    if any(resource.secrets for resource in desired.values()):
        plan.secrets_mode = "fingerprinted" if key else "write-only"
    _forbid_admin_removal(plan, manifests, diagnostics, snapshot, desired)
    _keep_existing_admin_passwords(diagnostics, snapshot)
    _collect_diagnostics(plan, diagnostics, options.strict)
    _check_foreign_identities(plan, desired, store, scope)
    if plan.errors:
        # Still name the forbidden changes: an invalid manifest is often the
        # consequence of one (a new dial plan makes every extension too short).
        guarded = {key: r for key, r in desired.items() if KIND_SPECS[key[0]].forbidden
                   or key[0] == "account"}
        _check_forbidden(plan, diff(guarded, snapshot.resources, key).actions, desired, store)
        _group_follow_ons(plan)
        return plan
    own, recorded = split_recorded(snapshot.resources)
    plan.providers = open_providers(manifests)
    wanted = desired_target_objects(manifests, desired, plan.providers)
    result = diff(desired, own, key)
    _injected_bug(desired)
    totals = _totals(own.values())
    if plan.providers:
        on_targets = diff_targets(wanted, recorded, plan.providers, key)
        log.info("targets: %d actions, %d unchanged, %d not declared",
                 len(on_targets.actions), on_targets.unchanged, len(on_targets.orphans))
        result.actions += on_targets.actions
        result.unchanged += on_targets.unchanged
        result.orphans += on_targets.orphans
        totals.update(on_targets.totals)
    plan.unchanged = result.unchanged
    plan.actions = result.actions
    _check_forbidden(plan, plan.actions, desired, store)
    _plan_deletes(plan, result, snapshot, options, totals)
    plan.actions.sort(key=Action.sort_key)
    plan.actions, plan.scheduled = split_scheduled(plan.actions, today())
    plan.cost = _cost(manifests, snapshot, plan.actions)
    log.info("planned %d actions, %d scheduled, %d unchanged", len(plan.actions),
             len(plan.scheduled), plan.unchanged)
    return plan


def _cost(manifests: Manifests, snapshot: Snapshot, actions: list[Action]) -> CostReport | None:
    """The monthly cost of the state in scope, before and after the plan's actions."""
    if not manifests.price_lists:
        return None
    prices = Prices.from_model(next(iter(manifests.price_lists.values())).model)
    before = {key: resource.attrs for key, resource in snapshot.resources.items()}
    after = dict(before)
    for action in actions:
        if action.action == "delete":
            after.pop(action.key, None)
        else:
            after[action.key] = action.attrs
    return cost_report(prices, before, after)


# Fault injection for the secret-canary tests: a bug whose message holds a secret.
FAULT_BUG_ENV = "RECONCILER_FAULT_BUG"


def _injected_bug(desired: dict[Key, Resource]) -> None:
    if os.environ.get(FAULT_BUG_ENV):
        values = [s.reveal() for r in desired.values() for s in r.secrets.values()]
        raise RuntimeError(f"injected bug holding secret values {values}")


def _fingerprint_key() -> FingerprintKey | None:
    try:
        return fingerprint_key()
    except SecretError as exc:
        raise ReconcilerError(Diagnostic(None, str(exc), exc.hint)) from None


def existing_extensions(snapshot: Snapshot) -> dict[str, ExistingExtensions]:
    by_tenant: dict[str, ExistingExtensions] = {}
    for resource in snapshot.resources.values():
        if resource.kind != "extension":
            continue
        known = by_tenant.setdefault(resource.attrs["tenant"], ExistingExtensions())
        known.numbers.add(resource.attrs["number"])
        if resource.attrs.get("auto"):
            known.auto_by_name[resource.attrs["name"]] = resource.attrs["number"]
    return by_tenant


def _collect_diagnostics(plan: Plan, diagnostics: Diagnostics, strict: bool) -> None:
    for item in diagnostics.sorted():
        if item.is_error or strict:
            plan.errors.append(item)
        else:
            plan.warnings.append(item)


def _forbid_admin_removal(plan: Plan, manifests: Manifests, diagnostics: Diagnostics,
                          snapshot: Snapshot, desired: dict[Key, Resource]) -> None:
    """A tenant without admin is a validation error; for an existing one, a forbidden change."""
    admins: dict[str, list[str]] = {}
    for resource in snapshot.resources.values():
        if resource.kind == "user" and resource.attrs.get("role") == "admin":
            admins.setdefault(resource.attrs["tenant"], []).append(resource.attrs["email"])
    kept = []
    for item in diagnostics.items:
        tenant = item.subject[1] if item.rule == "tenant.admin-required" and item.subject else None
        if tenant in admins:
            # Point at the role of a former admin that is still declared, else at `users`.
            demoted = [desired[key] for email in sorted(admins[tenant])
                       if (key := ("user", user_id(tenant, email))) in desired]
            where = _short(demoted[0], "role") if demoted else None
            plan.forbidden.append(ForbiddenChange(
                "tenant", tenant, "admins", sorted(admins[tenant]), [],
                "removing the last administrator of an existing tenant",
                "keep at least one user with 'role: admin' in this tenant",
                where or (item.source.short if item.source else None)))
        else:
            kept.append(item)
    diagnostics.items = kept


def _keep_existing_admin_passwords(diagnostics: Diagnostics, snapshot: Snapshot) -> None:
    """An admin already on the platform without a password in the manifest keeps its own."""
    diagnostics.items = [
        item for item in diagnostics.items
        if not (item.rule == "user.admin-password-required" and item.subject in snapshot.resources)
    ]


def _check_foreign_identities(plan: Plan, desired: dict[Key, Resource], store: StateStore,
                              scope: set[str]) -> None:
    """Identities are global: a name taken by another customer cannot be reused."""
    top_level = [key for key in desired if key[0] in ("account", "base_package", "site", "tenant")]
    for key, owner in store.foreign_scopes(top_level, scope).items():
        resource = desired[key]
        label = KIND_SPECS[key[0]].manifest_kind
        plan.errors.append(Diagnostic(
            resource.source(), f"{label} '{key[1]}' already exists under account {owner}, "
            "which this environment does not declare",
            "choose another identity, or plan the environment that declares that account"))


def _check_forbidden(plan: Plan, actions: list[Action], desired: dict[Key, Resource],
                     store: StateStore) -> None:
    sub_accounts: dict[str, list[str]] = {}
    if any(a.kind == "account" and a.changes.get("parent") for a in actions):
        # Sub-accounts need not be in scope (one left out of the manifests still
        # exists), so look at every account in the state; rare, so a full read.
        for resource in store.snapshot().resources.values():
            if resource.kind == "account" and resource.attrs.get("parent"):
                sub_accounts.setdefault(resource.attrs["parent"], []).append(resource.id)
    for action in actions:
        if action.action != "update" or action.target is not None:
            continue  # a target's objects have no forbidden changes
        resource = desired[action.key]
        for name, change in action.changes.items():
            rule = KIND_SPECS[action.kind].forbidden.get(name)
            if rule is not None:
                plan.forbidden.append(ForbiddenChange(
                    action.kind, action.id, name, change.before, change.after, rule.reason,
                    rule.instead, _short(resource, name)))
        parent = action.changes.get("parent")
        if action.kind == "account" and parent and parent.before is None and action.id in sub_accounts:
            plan.forbidden.append(ForbiddenChange(
                "account", action.id, "parent", None, parent.after,
                f"account {action.id} is a main account with sub-accounts "
                f"({', '.join(sorted(sub_accounts[action.id]))})",
                "move its sub-accounts to another main account first", _short(resource, "parent")))


def _group_follow_ons(plan: Plan) -> None:
    """Move the errors a forbidden change causes under it, so the root cause comes first."""
    for index, change in enumerate(plan.forbidden):
        rule = KIND_SPECS[change.kind].forbidden.get(change.field)
        if rule is None or not rule.follow_on_rules:
            continue
        subject = (change.kind, change.id)
        follow_ons = tuple(d for d in plan.errors
                           if d.rule in rule.follow_on_rules and d.subject == subject)
        if follow_ons:
            plan.errors = [d for d in plan.errors if d not in follow_ons]
            plan.forbidden[index] = replace(change, follow_ons=follow_ons)


def _short(resource: Resource, field_name: str) -> str | None:
    where = resource.source(field_name)
    return where.short if where else None


# The --max-delete-percent limit applies to kinds with at least this many resources in
# scope (as octoDNS does): deleting 1 of 3 sites is a third, yet no mass deletion.
DELETE_LIMIT_FROM = 10


def _totals(resources) -> dict[str, int]:
    totals: dict[str, int] = {}
    for resource in resources:
        totals[resource.kind] = totals.get(resource.kind, 0) + 1
    return totals


def _plan_deletes(plan: Plan, result: Diff, snapshot: Snapshot, options: PlanOptions,
                  totals: dict[str, int]) -> None:
    """Orphans are left alone, or deleted within the limits; `totals`: resources in scope
    per kind (for target objects: declared or on the platform)."""
    if not result.orphans:
        return
    if not options.allow_delete:
        plan.left_alone = sorted(
            (LeftAlone(o.kind, o.id, o.scope, _target_of(o)) for o in result.orphans),
            key=lambda o: (o.scope, KIND_SPECS[o.kind].order, o.id))
        return
    plan.actions.extend(_delete_action(orphan, snapshot) for orphan in result.orphans)
    if options.force:
        return
    deletes: dict[str, int] = {}
    for orphan in result.orphans:
        deletes[orphan.kind] = deletes.get(orphan.kind, 0) + 1
    for kind in KIND_SPECS:
        if kind not in deletes or totals[kind] < DELETE_LIMIT_FROM:
            continue
        share = 100.0 * deletes[kind] / totals[kind]
        if share > options.max_delete_percent:
            plan.refusals.append(
                f"deleting {deletes[kind]} of {totals[kind]} {kind} resources in scope "
                f"({share:.2f}%) is over the {options.max_delete_percent:g}% limit — "
                "review the deletes, then pass --force (or raise --max-delete-percent)")


def _target_of(orphan: StateResource) -> str:
    from .providers import TARGET_KINDS

    return orphan.attrs.get("target", "") if orphan.kind in TARGET_KINDS else ""


def _delete_action(orphan: StateResource, snapshot: Snapshot) -> Action:
    from .providers import TARGET_KINDS

    action = delete_action(orphan)
    if orphan.kind in TARGET_KINDS:
        action.target = orphan.attrs["target"]
        action.in_state = orphan.last_applied is not None
    if orphan.kind == "tenant":
        action.rank = _state_master_depth(orphan, snapshot)
    elif orphan.kind == "account" and orphan.attrs.get("parent"):
        action.rank = 1
    return action


def _state_master_depth(tenant: StateResource, snapshot: Snapshot) -> int:
    depth, seen, master = 0, {tenant.id}, tenant.attrs.get("master")
    while master and master not in seen and ("tenant", master) in snapshot.resources:
        seen.add(master)
        depth += 1
        master = snapshot.resources[("tenant", master)].attrs.get("master")
    return depth

