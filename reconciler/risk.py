"""Risk marks: which actions a reviewer should look at twice.

Read from the typed actions, never from rendered text. Every renderer shows
the same marks; the plan JSON lists them per action (`risks`).
"""

from __future__ import annotations

from .diff import SENSITIVE, SENSITIVE_MARKERS, Action

# Mark → what it means, as the renderers explain it.
RISKS = {
    "delete": "deleted from the platform",
    "admin": "gets administrator rights",
    "drift-revert": "undoes a change made outside reconciler",
    "secret": "a PIN or password changes",
}


def plan_risks(actions: list[Action]) -> list[tuple[str, ...]]:
    """The risk marks of each action (parallel to `actions`)."""
    new_tenants = {a.id for a in actions if a.kind == "tenant" and a.action == "create"}
    return [action_risks(a, new_tenants) for a in actions]


def action_risks(action: Action, new_tenants: set[str] | frozenset = frozenset()) -> tuple[str, ...]:
    """The risk marks of one action, in the order of RISKS.

    An admin created together with its tenant is the tenant's first admin, not a
    risk; an admin added to an existing tenant, or a user promoted, is.
    """
    marks = []
    if action.action == "delete":
        marks.append("delete")
    role = action.changes.get("role")
    if action.kind == "user" and action.action != "delete" and role and role.after == "admin" \
            and action.id.split("/", 1)[0] not in new_tenants:
        marks.append("admin")
    if any(change.drift for change in action.changes.values()):
        marks.append("drift-revert")
    if action.action == "update" and any(
            isinstance(change.after, str) and change.after in SENSITIVE_MARKERS - {SENSITIVE}
            for change in action.changes.values()):
        marks.append("secret")
    return tuple(marks)
