"""Plain or coloured text, like `terraform plan`."""

from __future__ import annotations

import click

from ..diagnostics import plural
from ..plan import Plan
from ..risk import plan_risks
from . import SYMBOLS, WRITE_ONLY_NOTE, change_text, problems, summary_line
from .costs import cost_text, scheduled_text
from .escape import plain

COLORS = {"create": "green", "update": "yellow", "delete": "red"}
LABELS = {"Forbidden change": "Forbidden", "Refused": "Refused", "Error": "Error"}


def render_text(plan: Plan, color: bool = False) -> str:
    def style(text: str, **kw) -> str:
        return click.style(text, **kw) if color else text

    scope = plain(", ".join(plan.scope) or "none")
    lines = [style(f"Plan for {plain(plan.env)}", bold=True)
             + f" (state serial {plan.state_serial}, accounts in scope: {scope})", ""]
    for action, risks in zip(plan.actions, plan_risks(plan.actions)):
        where = f"  ({plain(action.source)})" if action.source else ""
        marks = style(f"  [{', '.join(risks)}]", fg="red", bold=True) if risks else ""
        lines.append(style(f"  {SYMBOLS[action.action]} {action.kind} {plain(action.id)}",
                           fg=COLORS[action.action]) + where + marks)
        for name, change in action.changes.items():
            lines.append(plain(f"      {name}: {change_text(action.action, change)}"))
    if plan.actions:
        lines.append("")
    if plan.scheduled:
        lines += scheduled_text(plan.scheduled) + [""]
    for problem in problems(plan):
        where = f"{problem.source}: " if problem.source else ""
        if problem.title == "Forbidden change":
            where = f"{problem.source or '-'}: "  # always a position column: easy to scan
        lines.append(style(f"{LABELS[problem.title]}: ", fg="red", bold=True)
                     + plain(where + problem.message))
        if problem.follow_ons:
            lines.append(f"  {plural(len(problem.follow_ons), 'error')} follow from it:")
            lines += [f"    ↳ {plain(item)}" for item in problem.follow_ons]
    for item in plan.warnings:
        lines.append(style("Warning: ", fg="yellow") + plain(item).replace("warning: ", "", 1))
    if plan.left_alone:
        counts: dict[str, int] = {}
        for orphan in plan.left_alone:
            counts[orphan.kind] = counts.get(orphan.kind, 0) + 1
        kept = ", ".join(plural(n, kind) for kind, n in sorted(counts.items()))
        lines.append(f"Not in the manifests, left alone: {kept} (pass --allow-delete to delete):")
        lines += [style(f"  = {o.kind} {plain(o.id)}", fg="cyan") + f"  (account {plain(o.scope)}"
                  + (f"; unmanaged on target '{plain(o.target)}')" if o.target else ")")
                  for o in plan.left_alone]
    if plan.cost is not None:
        lines += cost_text(plan.cost)
    if plan.secrets_mode == "write-only":
        lines.append(WRITE_ONLY_NOTE)
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"
