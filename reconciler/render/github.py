"""GitHub Actions workflow commands, so problems show inline on the pull-request diff.

See "Workflow commands for GitHub Actions": `::error file=F,line=L,col=C,title=T::message`.
"""

from __future__ import annotations

import re

from ..diagnostics import Diagnostic
from ..plan import Plan
from . import show
from .escape import github_data, github_property

# `file[:line[:column]][ (values use.yaml:N)]`, as `Source.short` and `str(Source)` write it.
_SOURCE = re.compile(r"^(?P<file>.+?)(?::(?P<line>\d+))?(?::(?P<column>\d+))?"
                     r"(?: \((?P<via>values .*)\))?$")


def render_github(plan: Plan) -> str:
    lines = [_diagnostic("error", d) for d in plan.errors]
    lines += [_diagnostic("warning", d) for d in plan.warnings]
    for f in plan.forbidden:
        lines.append(_command("error", f.source, "Forbidden change",
                              f"{f.kind} {f.id}: {f.field} {show(f.before)} → {show(f.after)} — "
                              f"{f.reason}; instead: {f.instead}"))
    for message in plan.refusals:
        lines.append(_command("error", None, "Refused", message))
    for action in plan.actions:
        if action.action == "delete":
            lines.append(_command("warning", None, "Delete",
                                  f"{plan.env}: {action.kind} {action.id} will be deleted"))
    return "".join(line + "\n" for line in lines)


def _diagnostic(level: str, d: Diagnostic) -> str:
    message = f"{d.message} — {d.hint}" if d.hint else d.message
    return _command(level, str(d.source) if d.source else None, "reconciler", message)


def _command(level: str, source: str | None, title: str, message: str) -> str:
    properties = []
    match = _SOURCE.match(source) if source else None
    if match:
        properties.append(f"file={github_property(match['file'])}")
        if match["line"]:
            properties.append(f"line={match['line']}")
            if match["column"]:
                properties.append(f"col={match['column']}")
        if match["via"]:  # a rendered template line: say which values produced it
            message = f"{message} ({match['via']})"
    properties.append(f"title={github_property(title)}")
    return f"::{level} {','.join(properties)}::{github_data(message)}"
