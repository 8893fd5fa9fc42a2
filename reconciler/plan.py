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
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, Diagnostics, ReconcilerError, display_path
from .diff import Action, Diff, delete_action, diff
from .gcpause import paused_gc
from .cost import CostReport, Prices, cost_report
from .lifecycle import split_scheduled, today
from .ownership import (adoption_actions, check_ownership, dangling, deletable,
                        effective_owners, environment_name, references, without_references)
from .resources import KIND_SPECS, ExistingExtensions, Key, Resource, desired_resources, user_id
from .secrets import FingerprintKey, SecretError, fingerprint_key
from .state.base import Snapshot, StateResource, StateStore
from .uniqueness import check_uniqueness

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
    adopt: bool = False


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
    owner: str = ""  # the environment's name, which owns what it creates (ownership.py)
    # The open providers of the targets this plan read, by target name; apply writes
    # through them. Runtime only: never in a plan file or the cache.
    providers: dict = field(default_factory=dict, repr=False, compare=False)
    # Cache writes to do once the plan is shown (the plan memo). Runtime only.
    later: list = field(default_factory=list, repr=False, compare=False)

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


def build_plan(env: Path, store: StateStore, options: PlanOptions, memo: bool = False
               ) -> Plan:
    """The plan of `env`; with `memo`, tenants whose extensions the plan memo (memo.py)
    stands for are sealed, and the memo of this plan is among `plan.later`."""
    with paused_gc(freeze=True):
        return _build_plan(env, store, options, memo)


@dataclass
class _Inputs:
    """What every step of a plan reads: the validated manifests, the state, the platform."""

    manifests: Manifests
    diagnostics: Diagnostics
    refs: dict  # read-only references (ownership.references)
    snapshot: Snapshot  # the state in scope
    platform: dict  # every top-level object of the state, and numbered extensions
    desired: dict[Key, Resource]  # what the environment writes
    key: FingerprintKey | None  # compares secrets with the state's fingerprints
    owners: dict  # the owning environment of every resource of the snapshot
    sealed: dict  # tenant → memo.TenantSummary: extensions in neither desired nor snapshot


def _build_plan(env: Path, store: StateStore, options: PlanOptions, use_memo: bool) -> Plan:
    key = _fingerprint_key()
    memo = _open_memo(env, store, options, key) if use_memo else None
    manifests, diagnostics = _validate(env, memo)
    refs = references(manifests)
    scope = {number for number in manifests.accounts if ("account", number) not in refs}
    log.info("%s: %d errors, %d warnings; accounts in scope: %s", display_path(env),
             len(diagnostics.errors), len(diagnostics.warnings), ", ".join(sorted(scope)) or "none")
    sealed = {name: entry.sealed for name, entry in manifests.tenants.items() if entry.sealed}
    if memo is not None:
        log.info("plan memo: the extensions of %d of %d tenants sealed", len(sealed),
                 len(manifests.tenants))
    snapshot, platform = _read_state(store, manifests, _read_scope(manifests, refs, scope),
                                     frozenset(sealed))
    if sealed and snapshot.serial != memo.serial:  # written to since the memo was opened
        return _build_plan(env, store, options, use_memo=False)
    plan = Plan(display_path(env), snapshot.serial, sorted(scope), state_id=store.identity(),
                state_mark=store.history_mark(snapshot.serial), owner=environment_name(env))
    desired = without_references(
        desired_resources(manifests, existing_extensions(snapshot, manifests)), refs)
    inputs = _Inputs(manifests, diagnostics, refs, snapshot, platform, desired, key,
                     effective_owners(snapshot.resources), sealed)
    ownership = _check(plan, inputs, options)
    if plan.errors:
        _name_forbidden_changes(plan, inputs)
        return plan
    result, totals = _diff(plan, inputs)
    plan.actions, adopted_unchanged = adoption_actions(ownership, result.actions, desired)
    plan.unchanged = result.unchanged - adopted_unchanged
    _check_forbidden(plan, plan.actions, desired, platform)
    _plan_deletes(plan, result, snapshot, options, totals, refs)
    plan.refusals.extend(dangling([a for a in plan.actions if a.action == "delete"], platform))
    plan.actions.sort(key=Action.sort_key)
    plan.actions, plan.scheduled = split_scheduled(plan.actions, today())
    plan.cost = _cost(manifests, _costed(snapshot, inputs.owners, plan.owner), plan.actions,
                      sealed)
    log.info("planned %d actions, %d scheduled, %d unchanged", len(plan.actions),
             len(plan.scheduled), plan.unchanged)
    if memo is not None:
        write = memo.record(plan, manifests, desired, inputs.owners, refs)
        if write is not None:
            plan.later.append(write)
    return plan


def _open_memo(env: Path, store: StateStore, options: PlanOptions, key):
    from .memo import PlanMemo

    return PlanMemo.open(env, store.url_for_display, store.cache_version(), options.adopt,
                         key.ident if key else None)


def _validate(env: Path, memo):
    """The validated manifests; with tenants sealed where the memo stands for them."""
    # Imported here, not at the top: a plan served from the cache needs none of it.
    from .resources import prebuild_extensions
    from .validate import validate_environment

    def load():
        return validate_environment(env, need_secrets=True, memo=memo,
                                    each_tenant=prebuild_extensions)

    manifests, diagnostics = load()
    if memo is not None and memo.reused and not memo.consistent():
        log.info("plan memo: a file changed outside its extension lists; loading everything")
        memo.forget()
        manifests, diagnostics = load()
    return manifests, diagnostics


def _read_state(store: StateStore, manifests: Manifests, accounts: set[str],
                sealed: frozenset[str]) -> tuple[Snapshot, dict]:
    """The state of `accounts` (without the extensions of `sealed` tenants), with the
    declared objects that it keeps under other accounts; and the platform (every
    top-level object of the state)."""
    snapshot = store.snapshot(accounts, sealed)
    platform = store.platform(sealed)
    _merge_declared(snapshot, platform, manifests)
    log.info("state: %d resources in scope, serial %d", len(snapshot.resources), snapshot.serial)
    return snapshot, platform


def _check(plan: Plan, inputs: _Inputs, options: PlanOptions):
    """The manifests' diagnostics, ownership, and the rules that span the whole state; the
    ownership check's result (for adoption)."""
    from .targetplan import stranded_on_targets

    if any(resource.secrets for resource in inputs.desired.values()) \
            or any(summary.secrets for summary in inputs.sealed.values()):
        plan.secrets_mode = "fingerprinted" if inputs.key else "write-only"
    _forbid_admin_removal(plan, inputs.manifests, inputs.diagnostics, inputs.snapshot,
                          inputs.desired)
    _keep_existing_admin_passwords(inputs.diagnostics, inputs.snapshot, inputs.refs)
    _collect_diagnostics(plan, inputs.diagnostics, options.strict)
    ownership = check_ownership(plan.owner, inputs.desired, inputs.refs, inputs.platform,
                                options.adopt)
    plan.errors.extend(ownership.errors)
    plan.errors.extend(stranded_on_targets(plan.owner, inputs.manifests, inputs.snapshot,
                                           inputs.owners))
    if not inputs.diagnostics.has_errors():
        plan.errors.extend(check_uniqueness(inputs.desired, inputs.platform, inputs.sealed))
        plan.errors.extend(_check_parents(inputs.desired, inputs.platform))
    return ownership


def _name_forbidden_changes(plan: Plan, inputs: _Inputs) -> None:
    """For a plan with errors: still name the forbidden changes, since an invalid manifest
    is often the consequence of one (a new dial plan makes every extension too short)."""
    guarded = {key: r for key, r in inputs.desired.items()
               if KIND_SPECS[key[0]].forbidden or key[0] == "account"}
    actions = diff(guarded, inputs.snapshot.resources, inputs.key).actions
    _check_forbidden(plan, actions, inputs.desired, inputs.platform)
    _group_follow_ons(plan)


def _diff(plan: Plan, inputs: _Inputs) -> tuple[Diff, dict[str, int]]:
    """The differences to the state and to the targets' platforms; the number of this
    environment's resources per kind (for the delete limits)."""
    from .targetplan import desired_target_objects, diff_targets, open_providers, split_recorded

    own, recorded = split_recorded(inputs.snapshot.resources)
    plan.providers = open_providers(inputs.manifests)
    wanted = desired_target_objects(inputs.manifests, inputs.desired, plan.providers)
    result = diff(inputs.desired, own, inputs.key)
    _injected_bug(inputs.desired)
    totals = _totals(r for key, r in own.items() if inputs.owners[key] == plan.owner)
    for summary in inputs.sealed.values():  # unchanged, not compared
        result.unchanged += summary.count
        if summary.owned:
            totals["extension"] = totals.get("extension", 0) + summary.owned
    if plan.providers:
        on_targets = diff_targets(wanted, recorded, plan.providers, inputs.key)
        log.info("targets: %d actions, %d unchanged, %d not declared",
                 len(on_targets.actions), on_targets.unchanged, len(on_targets.orphans))
        result.actions += on_targets.actions
        result.unchanged += on_targets.unchanged
        result.orphans += on_targets.orphans
        totals.update(on_targets.totals)
    return result, totals


def _read_scope(manifests: Manifests, refs: dict, scope: set[str]) -> set[str]:
    """The accounts whose objects the plan reads: those declared (not as references) and
    those that the declared packages and tenants belong to (a tenant under a partner's
    account)."""
    accounts = set(scope)
    for kind, entries in (("base_package", manifests.packages), ("tenant", manifests.tenants)):
        accounts.update(entry.model.account for ident, entry in entries.items()
                        if (kind, ident) not in refs)
    return accounts


def _merge_declared(snapshot: Snapshot, platform: dict, manifests: Manifests) -> None:
    """Declared top-level objects that the state keeps under another account are compared
    too (a tenant moved to another account is a forbidden change, never a second create)."""
    for kind, entries in (("account", manifests.accounts), ("base_package", manifests.packages),
                          ("site", manifests.sites), ("tenant", manifests.tenants)):
        for ident in entries:
            found = platform.get((kind, ident))
            if found is not None and found.key not in snapshot.resources:
                snapshot.resources[found.key] = found


def _check_parents(desired: dict[Key, Resource], platform: dict) -> list[Diagnostic]:
    """Main → sub only, across the whole state: a parent that is a sub-account in the state,
    or a new sub-account that has sub-accounts there, is an error (checked again under the
    apply lock, so two environments cannot make main → sub → sub between them)."""
    errors = []
    subs: dict[str, list[str]] = {}
    for resource in platform.values():
        if resource.kind == "account" and resource.attrs.get("parent") \
                and resource.key not in desired:
            subs.setdefault(resource.attrs["parent"], []).append(resource.id)
    for key, resource in desired.items():
        parent = resource.attrs.get("parent") if key[0] == "account" else None
        if not parent:
            continue
        held = platform.get(("account", parent))
        if ("account", parent) not in desired and held is not None and held.attrs.get("parent"):
            errors.append(Diagnostic(
                resource.source("parent"), f"parent account {parent} of account {key[1]} is a "
                f"sub-account of {held.attrs['parent']} in the state",
                f"only a main account can have sub-accounts: use parent '{held.attrs['parent']}'"))
        if key[1] in subs and platform.get(key) is None:
            errors.append(Diagnostic(
                resource.source("parent"), f"account {key[1]} has sub-accounts in the state "
                f"({', '.join(sorted(subs[key[1]]))}) and cannot become a sub-account",
                "move its sub-accounts to another main account first"))
    return errors


def _costed(snapshot: Snapshot, owners: dict, owner: str) -> dict:
    """What the environment pays for: its own objects and unowned ones it reads, not those
    of other environments under the same accounts (a partner's tenants)."""
    return {key: r for key, r in snapshot.resources.items() if owners[key] in (owner, None)}


def _cost(manifests: Manifests, resources: dict, actions: list[Action], sealed: dict
          ) -> CostReport | None:
    """The monthly cost of the state in scope, before and after the plan's actions (and
    the extensions of `sealed` tenants, in neither)."""
    if not manifests.price_lists:
        return None
    prices = Prices.from_model(next(iter(manifests.price_lists.values())).model)
    before = {key: resource.attrs for key, resource in resources.items()}
    after = dict(before)
    for action in actions:
        if action.action == "delete":
            after.pop(action.key, None)
        else:
            after[action.key] = action.attrs
    lines = Counter({(tenant, *line): count for tenant, summary in sealed.items()
                     for line, count in summary.order_lines})
    return cost_report(prices, before, after, lines)


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


def existing_extensions(snapshot: Snapshot, manifests: Manifests | None = None
                        ) -> dict[str, ExistingExtensions]:
    """What the state knows of each tenant's extensions, for `assign_numbers`: every applied
    `auto` extension, and every number of the tenants that declare an `auto` one (only
    those look for free numbers; with `manifests` None, of all tenants)."""
    numbering = None if manifests is None else {
        name for name, entry in manifests.tenants.items()
        if any(ext.model.number == "auto" for ext in entry.extensions)}
    by_tenant: dict[str, ExistingExtensions] = {}
    for resource in snapshot.resources.values():
        if resource.kind != "extension":
            continue
        attrs = resource.attrs
        if attrs.get("auto") or numbering is None or attrs["tenant"] in numbering:
            by_tenant.setdefault(attrs["tenant"], ExistingExtensions()).add(attrs)
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


def _keep_existing_admin_passwords(diagnostics: Diagnostics, snapshot: Snapshot,
                                   refs: dict) -> None:
    """An admin already on the platform without a password in the manifest keeps its own;
    so do the admins of a referenced tenant (never written)."""
    ref_tenants = {ident for kind, ident in refs if kind == "tenant"}
    diagnostics.items = [
        item for item in diagnostics.items
        if not (item.rule == "user.admin-password-required"
                and (item.subject in snapshot.resources
                     or (item.subject and item.subject[1].split("/", 1)[0] in ref_tenants)))
    ]


def _check_forbidden(plan: Plan, actions: list[Action], desired: dict[Key, Resource],
                     platform: dict) -> None:
    sub_accounts: dict[str, list[str]] = {}
    # Sub-accounts need not be in scope (one left out of the manifests still exists):
    # every account of the state counts.
    for resource in platform.values():
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
                  totals: dict[str, int], refs: dict) -> None:
    """Orphans are left alone, or deleted within the limits; `totals`: resources in scope
    this environment owns, per kind (for target objects: declared or on the platform).

    Deletes never cross environments: only orphans this environment owns are deleted
    (and the objects of its own targets); unowned ones are left alone, those of other
    environments are none of its business."""
    from .providers import TARGET_KINDS

    orphans = [o for o in result.orphans if o.key not in refs]
    mine, unowned = deletable([o for o in orphans if o.kind not in TARGET_KINDS],
                              snapshot.resources, plan.owner)
    mine += [o for o in orphans if o.kind in TARGET_KINDS]
    kept = unowned if options.allow_delete else mine + unowned
    plan.left_alone = sorted((LeftAlone(o.kind, o.id, o.scope, _target_of(o)) for o in kept),
                             key=lambda o: (o.scope, KIND_SPECS[o.kind].order, o.id))
    if not options.allow_delete or not mine:
        return
    plan.actions.extend(_delete_action(orphan, snapshot) for orphan in mine)
    if options.force:
        return
    deletes: dict[str, int] = {}
    for orphan in mine:
        deletes[orphan.kind] = deletes.get(orphan.kind, 0) + 1
    for kind in KIND_SPECS:
        if kind not in deletes or totals.get(kind, 0) < DELETE_LIMIT_FROM:
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

