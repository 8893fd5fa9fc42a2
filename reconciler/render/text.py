"""Plain or coloured text, like `terraform plan`."""

from __future__ import annotations

import click

from ..diagnostics import plural
from ..diff import FieldChange
from ..plan import Plan
from . import SYMBOLS, change_text
from .escape import plain

COLORS = {"create": "green", "update": "yellow", "delete": "red"}


def render_text(plan: Plan, color: bool = False) -> str:
    lines: list[str] = []

    def style(text: str, **kw) -> str:
        return click.style(text, **kw) if color else text

    scope = plain(", ".join(plan.scope) or "none")
    lines.append(style(f"Plan for {plain(plan.env)}", bold=True)
                 + f" (state serial {plan.state_serial}, accounts in scope: {scope})")
    lines.append("")
    for action in plan.actions:
        symbol = SYMBOLS[action.action]
        where = f"  ({plain(action.source)})" if action.source else ""
        lines.append(style(f"  {symbol} {action.kind} {plain(action.id)}", fg=COLORS[action.action])
                     + where)
        for name, change in action.changes.items():
            lines.append(plain(f"      {name}: {change_text(action.action, change)}"))
    if plan.actions:
        lines.append("")
    for item in plan.errors:
        lines.append(style("Error: ", fg="red", bold=True) + plain(item))
    for item in plan.forbidden:
        lines.append(style("Forbidden: ", fg="red", bold=True)
                     + plain(f"{item.source or '-'}: {item.kind} {item.id}: {item.field} "
                             f"{change_text('update', FieldChange(item.before, item.after))} — "
                             f"{item.reason}; instead: {item.instead}"))
    for message in plan.refusals:
        lines.append(style("Refused: ", fg="red", bold=True) + plain(message))
    for item in plan.warnings:
        lines.append(style("Warning: ", fg="yellow") + plain(item).replace("warning: ", "", 1))
    if plan.left_alone:
        kept = ", ".join(plural(n, kind) for kind, n in sorted(plan.left_alone.items()))
        lines.append(plain(f"Not in the manifests, left alone: {kept}")
                     + " (pass --allow-delete to delete)")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def summary_line(plan: Plan) -> str:
    if plan.errors:
        forbidden = f", {plural(len(plan.forbidden), 'forbidden change')}" if plan.forbidden else ""
        return f"Plan failed: {plural(len(plan.errors), 'error')}{forbidden}. Nothing can be applied."
    if plan.rejected:
        n = len(plan.forbidden) + len(plan.refusals)
        return (f"Plan rejected: {plural(n, 'forbidden or refused change')}. "
                "Nothing can be applied.")
    s = plan.summary
    if not plan.actions:
        return f"No changes. {plural(s['unchanged'], 'resource')} up to date."
    return (f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
            f"{s['unchanged']} unchanged.")
