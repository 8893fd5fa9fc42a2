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
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from .diagnostics import ReconcilerError
from .diff import Action
from .loader import paused_gc
from .plan import Plan
from .state.base import ChangeRecord, StateStore, Write
from .state.sql import short_reason

log = logging.getLogger(__name__)

# Fault injection for the crash-safety tests: fail (or die) before action k.
FAULT_FAIL_ENV = "RECONCILER_FAULT_FAIL_AT"
FAULT_KILL_ENV = "RECONCILER_FAULT_KILL_AT"


class StalePlan(ReconcilerError):
    pass


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


def check_not_stale(plan: Plan, store: StateStore) -> None:
    """Refuse a plan when a resource in its scope, or one it writes, changed after it was made.

    Identities are global: another environment may have created what this plan
    creates, under an account this plan does not declare.
    """
    scope = set(plan.scope)
    keys = {action.key for action in plan.actions}
    moved = [c for c in store.changes_since(plan.state_serial)
             if c.scope in scope or (c.kind, c.id) in keys]
    if moved:
        raise StalePlan(
            f"the plan is stale: the state changed since it was made (serial "
            f"{plan.state_serial} → {moved[-1].serial}); changed since: {_describe(moved)} — "
            "make a new plan and review it again"
        )


def _describe(changes: list[ChangeRecord], limit: int = 10) -> str:
    shown = ", ".join(f"{c.action} {c.kind} {c.id}" for c in changes[:limit])
    more = len(changes) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def batch_size(total: int) -> int:
    """Actions per transaction: one each for small plans, grouped for bulk loads."""
    configured = os.environ.get("RECONCILER_APPLY_BATCH")
    if configured:
        return max(1, int(configured))
    return 1 if total <= 1000 else 500


def to_write(action: Action) -> Write:
    return Write(action.action, action.kind, action.id, action.scope, action.attrs,
                 action.secret_hashes)


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
                if number == fail_at:
                    raise InjectedFault(f"injected failure before action {number}")
            offset = 0
            result.serial = store.write([to_write(a) for a in batch])
        except (SQLAlchemyError, InjectedFault, OSError) as exc:
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

