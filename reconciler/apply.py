"""Apply stage: execute a plan's actions against the state store, in order.

Actions are written in small transactions, each action with its own serial
step; a failure rolls back only the transaction in flight, stops the run and
reports what was done, what failed and what was not started. Because every
committed action is in the state, a new plan shows exactly what is left.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from .diagnostics import ReconcilerError
from .diff import Action
from .loader import paused_gc
from .plan import Plan, PlanOptions, build_plan
from .providers import TargetWrite
from .state.base import StateConflict, StateStore, Write
from .state.sql import short_reason

log = logging.getLogger(__name__)

# Fault injection for the crash-safety tests: fail (or die) before action k.
FAULT_FAIL_ENV = "RECONCILER_FAULT_FAIL_AT"
FAULT_KILL_ENV = "RECONCILER_FAULT_KILL_AT"
# … or die after the target platform took the batch holding action k, before the state did.
FAULT_KILL_TARGET_ENV = "RECONCILER_FAULT_KILL_AFTER_TARGET_AT"
FAULT_PAUSE_ENV = "RECONCILER_FAULT_PAUSE_AT"  # "K:SECONDS": sleep before action K (lock loss)


class PlanMismatch(ReconcilerError):
    """A saved plan whose actions the manifests and the state no longer give."""


class InjectedFault(RuntimeError):
    pass


@dataclass
class ApplyResult:
    done: list[Action] = field(default_factory=list)
    failed: Action | None = None
    error: str | None = None
    not_started: list[Action] = field(default_factory=list)
    serial: int = 0

    @property
    def ok(self) -> bool:
        return self.failed is None


def replan_saved(saved: Plan, env: Path, store: StateStore, options: PlanOptions,
                 saved_options: dict | None = None, build=build_plan) -> Plan:
    """The fresh plan of `env`, when its actions equal `saved`'s; else PlanMismatch.

    A saved plan file is not trusted: it only says what the reviewer saw. What
    apply writes (records, secrets) always comes from planning the manifests
    again against the current state (and, with providers, the target), so an
    edited or forged file can at most be refused, and a plan is never stale
    because of changes to objects it does not touch. `build` lets callers
    that plan against more than the state (targets) plan the same way.
    """
    check_same_state(saved, store)
    fresh = build(env, store, options)
    if fresh.rejected:
        raise PlanMismatch(fresh.errors or [
            f"the plan of {saved.env} is rejected now: "
            + "; ".join([f"{f.kind} {f.id}: {f.reason}" for f in fresh.forbidden] + fresh.refusals)
            + " — fix the manifests, make a new plan and review it again"])
    differences = action_differences(saved.actions, fresh.actions)
    if differences:
        hint = _options_hint(saved_options, options)
        raise PlanMismatch(
            f"the saved plan no longer matches what the manifests and the current state give "
            f"({len(differences)} differences): {_first(differences)} — make a new plan and "
            f"review it again{hint}")
    return fresh


def check_same_state(saved: Plan, store: StateStore) -> None:
    """Refuse a saved plan made against another copy of the state, or a newer one.

    A plan made against a copy (another id) or against a state whose history
    then went another way (a backup restored and written to: the entry at the
    plan's serial differs, or the serial went backwards) would be compared with
    the wrong "before" values and could undo newer changes.
    """
    shown = store.url_for_display
    if not saved.state_id:
        raise PlanMismatch("the saved plan names no state — make a new plan with this "
                           "reconciler version and review it again")
    if saved.state_id != store.identity():
        raise PlanMismatch(
            f"the saved plan was made against another state (id {saved.state_id}), not the state "
            f"at {shown} (id {store.identity()}) — a copy or a restored backup? Make the plan "
            "against the state you apply to, and review it again")
    serial = store.version()[0]
    if saved.state_serial > serial:
        raise PlanMismatch(
            f"the saved plan was made at state serial {saved.state_serial}, but the state at "
            f"{shown} is at serial {serial}: it is older than the plan (restored from a "
            "backup?) — make a new plan and review it again")
    if store.history_mark(saved.state_serial) != saved.state_mark:
        raise PlanMismatch(
            f"the state at {shown} has another history than the one the plan was made against "
            f"(its change {saved.state_serial} differs: restored from a backup and written to "
            "since?) — make a new plan and review it again")


def action_differences(saved: list[Action], fresh: list[Action]) -> list[str]:
    """What differs between two action lists, one sentence per resource."""
    before = {a.key: a for a in saved}
    after = {a.key: a for a in fresh}
    out = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if new is None:
            out.append(f"{old.action} {old.kind} {old.id} is no longer planned")
        elif old is None:
            out.append(f"{new.action} {new.kind} {new.id} is planned now, not in the saved plan")
        elif old.action != new.action:
            out.append(f"{new.kind} {new.id} is a {new.action} now, a {old.action} in the saved plan")
        else:
            fields = _differing_fields(old, new)
            if fields:
                out.append(f"{new.action} {new.kind} {new.id} differs in {', '.join(fields)}")
    return out


def _differing_fields(old: Action, new: Action) -> list[str]:
    names = sorted(old.changes.keys() | new.changes.keys() | (old.attrs or {}).keys()
                   | (new.attrs or {}).keys())
    fields = [name for name in names
              if old.changes.get(name) != new.changes.get(name)
              or (old.attrs or {}).get(name) != (new.attrs or {}).get(name)]
    if old.scope != new.scope:
        fields.append("scope")
    return fields


def _first(differences: list[str], limit: int = 10) -> str:
    more = len(differences) - limit
    return "; ".join(differences[:limit]) + (f"; and {more} more" if more > 0 else "")


def _options_hint(saved_options: dict | None, options: PlanOptions) -> str:
    if not saved_options:
        return ""
    changed = [name for name, value in asdict(options).items()
               if name in saved_options and saved_options[name] != value]
    if not changed:
        return ""
    flags = ", ".join("--" + name.replace("_", "-") for name in changed)
    return f" (the plan was made with other options: {flags}; apply takes them from its own command line)"


def batch_size(total: int) -> int:
    """Actions per transaction: one each for small plans, grouped for bulk loads."""
    configured = os.environ.get("RECONCILER_APPLY_BATCH")
    if configured:
        return max(1, int(configured))
    return 1 if total <= 1000 else 500


def to_write(action: Action) -> Write:
    kind_of_write = action.action
    if action.in_state is not None and action.action != "delete":
        kind_of_write = "update" if action.in_state else "create"
    return Write(kind_of_write, action.kind, action.id, action.scope, action.attrs,
                 action.secret_records, action.owner)


def write_targets(plan: Plan, batch: list[Action]) -> None:
    """The batch's actions on target platforms, one transaction per target."""
    by_target: dict[str, list[TargetWrite]] = {}
    for action in batch:
        if action.target is not None:
            by_target.setdefault(action.target, []).append(TargetWrite(
                action.action, action.kind, action.id, action.attrs, action.secret_values))
    for name, writes in by_target.items():
        plan.providers[name].apply(writes)


def apply_plan(plan: Plan, store: StateStore, progress=None) -> ApplyResult:
    """Write the plan's actions; the caller holds the state lock."""
    log.info("applying %d actions of %s", len(plan.actions), plan.env)
    with paused_gc():
        return _apply_actions(plan, store, progress)


def _apply_actions(plan: Plan, store: StateStore, progress) -> ApplyResult:
    result = ApplyResult(serial=plan.state_serial)
    actions = plan.actions
    fail_at = int(os.environ.get(FAULT_FAIL_ENV, "0"))
    kill_at = int(os.environ.get(FAULT_KILL_ENV, "0"))
    kill_after_target = int(os.environ.get(FAULT_KILL_TARGET_ENV, "0"))
    pause_at, _, pause = os.environ.get(FAULT_PAUSE_ENV, "0:0").partition(":")
    size = batch_size(len(actions))
    position = 0
    while position < len(actions):
        batch = actions[position:position + size]
        offset = 0
        try:
            for offset in range(len(batch)):
                number = position + offset + 1
                if number == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                if number == int(pause_at):
                    time.sleep(float(pause))
                if number == fail_at:
                    raise InjectedFault(f"injected failure before action {number}")
            offset = 0
            store.assert_locked()  # no target write either once the lock is lost
            write_targets(plan, batch)  # the platform first: the state records what is there
            if position < kill_after_target <= position + len(batch):
                os.kill(os.getpid(), signal.SIGKILL)
            # A target object deleted on the platform that the state never recorded has no
            # row to delete (a delete of a missing row fails: it vanished meanwhile).
            writes = [to_write(a) for a in batch if not (a.action == "delete" and
                                                          a.in_state is False)]
            if writes:
                result.serial = store.write(writes)
        except (SQLAlchemyError, InjectedFault, OSError, StateConflict) as exc:
            # The transaction in flight rolled back: its other actions did not happen.
            failed_at = position + offset
            result.failed = actions[failed_at]
            result.error = short_reason(exc)
            result.not_started = actions[position:failed_at] + actions[failed_at + 1:]
            log.debug("apply stopped", exc_info=True)
            return result
        result.done.extend(batch)
        position += len(batch)
        if progress is not None:
            progress(len(batch))
    return result

