"""Markdown for a pull-request comment, kept under GitHub's 65,536-character limit."""

from __future__ import annotations

from ..diff import FieldChange
from ..plan import Plan
from . import SYMBOLS, change_text, group_of
from .escape import markdown_code, markdown_fence, markdown_html, markdown_text
from .text import summary_line

COMMENT_LIMIT = 65_536
_RESERVE = 2_000  # room for the folding note and closing lines


def render_markdown(plan: Plan) -> str:
    head = _head(plan)
    sections = _sections(plan)
    budget = COMMENT_LIMIT - _RESERVE - len(head)
    folded = _fold_largest(sections, budget)
    body = "".join(text for _, text in sections)
    note = ""
    if folded:
        names = ", ".join(folded[:10]) + (f" and {len(folded) - 10} more" if len(folded) > 10 else "")
        note = (f"\n> **Note:** {len(folded)} largest sections were folded to stay under "
                f"GitHub's comment limit: {names}. Run `reconciler plan` locally "
                "or see the saved plan for every change.\n")
    return head + body + note


def _head(plan: Plan) -> str:
    s = plan.summary
    out = [f"## reconciler plan: {markdown_code(plan.env)}\n",
           f"State serial {plan.state_serial}; accounts in scope: "
           f"{markdown_text(', '.join(plan.scope) or 'none')}\n",
           "| Create | Update | Delete | Unchanged |", "|---:|---:|---:|---:|",
           f"| {s['create']} | {s['update']} | {s['delete']} | {s['unchanged']} |", "",
           f"**{markdown_text(summary_line(plan))}**", ""]
    if plan.errors:
        out += ["### :x: Errors", ""] + [f"- {_code(d.source)} {_escape(d.message)} — {_escape(d.hint)}"
                                          for d in plan.errors] + [""]
    if plan.forbidden:
        out += ["### :no_entry: Forbidden changes", "",
                "| Resource | Field | Before → after | Why | Instead | Source |",
                "|---|---|---|---|---|---|"]
        for f in plan.forbidden:
            change = change_text("update", FieldChange(f.before, f.after))
            out.append(f"| {f.kind} {_cell(f.id)} | {_cell(f.field)} | {_escape(change)} | "
                       f"{_escape(f.reason)} | {_escape(f.instead)} | {_cell(f.source)} |")
        out.append("")
    if plan.refusals:
        out += ["### :no_entry: Refused", ""] + [f"- {_escape(m)}" for m in plan.refusals] + [""]
    deletes = [a for a in plan.actions if a.action == "delete"]
    if deletes:
        out += [f"### :warning: {len(deletes)} deletes", ""]
        out += [f"- {_code(f'{a.kind} {a.id}')}" for a in deletes[:50]]
        if len(deletes) > 50:
            out.append(f"- … and {len(deletes) - 50} more (see the sections below)")
        out.append("")
    if plan.warnings:
        out += ["<details><summary>Warnings ({})</summary>\n".format(len(plan.warnings))]
        out += [f"- {_code(d.source)} {_escape(d.message)}" for d in plan.warnings]
        out += ["", "</details>", ""]
    return "\n".join(out) + "\n"


def _sections(plan: Plan) -> list[tuple[str, str]]:
    groups: dict[str, list] = {}
    for action in plan.actions:
        groups.setdefault(group_of(action), []).append(action)
    sections = []
    for name in sorted(groups):
        actions = groups[name]
        title = f"Tenant `{markdown_html(name)}`" if name else "Accounts, base packages and sites"
        counts = ", ".join(f"{SYMBOLS[k]}{sum(a.action == k for a in actions)}"
                           for k in ("create", "update", "delete")
                           if any(a.action == k for a in actions))
        body = []
        for action in actions:
            where = f"  # {action.source}" if action.source else ""
            body.append(f"{SYMBOLS[action.action]} {action.kind} {action.id}{where}")
            for field_name, change in action.changes.items():
                body.append(f"{SYMBOLS[action.action] if action.action != 'update' else '!'}"
                            f"     {field_name}: {change_text(action.action, change)}")
        lines = [f"<details><summary>{title} ({counts})</summary>\n", *markdown_fence(body, "diff"),
                 "", "</details>", ""]
        sections.append((title, "\n".join(lines) + "\n"))
    return sections


def _fold_largest(sections: list[tuple[str, str]], budget: int) -> list[str]:
    """Replace the largest sections by a one-line summary until the rest fits."""
    folded = []
    while sum(len(text) for _, text in sections) > budget and sections:
        index = max(range(len(sections)), key=lambda i: len(sections[i][1]))
        title, text = sections[index]
        if text.startswith("<details><summary>") and "(folded)" in text:
            break
        changes = text.count("\n") - 6
        sections[index] = (title, f"<details><summary>{title} (folded): {changes} lines "
                                  "left out</summary>\n\n</details>\n\n")
        folded.append(title)
    return folded


def _escape(text: object) -> str:
    return markdown_text(text)


def _code(text: object) -> str:
    return markdown_code(text if text is not None else "-")


def _cell(text: object) -> str:
    return markdown_code(text if text is not None else "-", table=True)
