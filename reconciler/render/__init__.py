"""Render stage: plans → text, markdown, JSON or GitHub annotations.

Renderers only read `Plan` objects; they never decide anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..diagnostics import Diagnostic, plural
from ..diff import SENSITIVE_MARKERS, Action, FieldChange
from ..plan import ForbiddenChange, Plan


def show(value: Any) -> str:
    """A value as plans print it: strings quoted, lists and mappings as JSON."""
    if isinstance(value, str):
        if value in SENSITIVE_MARKERS:
            return value
        if value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'  # what json.dumps writes: nothing to escape
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def change_text(action: str, change: FieldChange) -> str:
    if action == "create":
        return show(change.after) + drift_note(change)
    if action == "delete":
        return show(change.before)
    return f"{show(change.before)} → {show(change.after)}" + drift_note(change)


def drift_note(change: FieldChange) -> str:
    """Where a value changed behind reconciler's back, and what it had applied."""
    if not change.drift:
        return ""
    if change.on_target is None:
        return f"  (changed outside reconciler; last applied {show(change.applied)})"
    return f"  (changed on target '{change.on_target}'; last applied {show(change.applied)})"


SYMBOLS = {"create": "+", "update": "~", "delete": "-"}


def group_of(action: Action) -> str:
    """The tenant an action belongs to, or '' for accounts, packages and sites."""
    if action.kind == "tenant":
        return action.id
    if action.kind in ("user", "extension"):
        return action.id.split("/", 1)[0]
    return ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that stops a plan, as every renderer lists it: root causes first."""

    title: str  # "Forbidden change", "Refused" or "Error"
    source: str | None
    message: str
    follow_ons: tuple[Diagnostic, ...] = ()


def problems(plan: Plan) -> list[Problem]:
    """Forbidden changes (with the errors that follow from them), refusals, then other errors."""
    found = [Problem("Forbidden change", f.source, forbidden_text(f), f.follow_ons)
             for f in plan.forbidden]
    found += [Problem("Refused", None, message) for message in plan.refusals]
    found += [Problem("Error", str(d.source) if d.source else None, diagnostic_text(d))
              for d in plan.errors]
    return found


def forbidden_text(f: ForbiddenChange) -> str:
    change = change_text("update", FieldChange(f.before, f.after))
    return f"{f.kind} {f.id}: {f.field} {change} — {f.reason}; instead: {f.instead}"


def diagnostic_text(d: Diagnostic) -> str:
    return f"{d.message} — {d.hint}" if d.hint else d.message


WRITE_ONLY_NOTE = ("Secrets are write-only (no RECONCILER_SECRET_KEY): written on create and when "
                   "their reference or version changes; a new value behind the same reference is "
                   "not noticed.")


def summary_line(plan: Plan) -> str:
    """One sentence a reviewer reads first; never "No changes" while something is left alone."""
    if plan.errors:
        forbidden = f", {plural(len(plan.forbidden), 'forbidden change')}" if plan.forbidden else ""
        return f"Plan failed: {plural(len(plan.errors), 'error')}{forbidden}. Nothing can be applied."
    if plan.rejected:
        n = len(plan.forbidden) + len(plan.refusals)
        follow = sum(len(f.follow_ons) for f in plan.forbidden)
        follow_text = f" (and {plural(follow, 'error')} that follow from them)" if follow else ""
        return (f"Plan rejected: {plural(n, 'forbidden or refused change')}{follow_text}. "
                "Nothing can be applied.")
    s = plan.summary
    kept = len(plan.left_alone)
    if not plan.actions and kept:
        return (f"Nothing to apply, but {plural(kept, 'resource')} "
                f"{'is' if kept == 1 else 'are'} no longer in the manifests and left alone "
                f"(pass --allow-delete to delete). {plural(s['unchanged'], 'resource')} up to date.")
    later = f" {len(plan.scheduled)} scheduled for a later start date." if plan.scheduled else ""
    if not plan.actions:
        return f"No changes. {plural(s['unchanged'], 'resource')} up to date.{later}"
    left = f", {kept} left alone" if kept else ""
    return (f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
            f"{s['unchanged']} unchanged{left}.{later}")
