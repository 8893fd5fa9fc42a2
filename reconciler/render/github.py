"""GitHub Actions workflow commands, so problems show inline on the pull-request diff.

See "Workflow commands for GitHub Actions": `::error file=F,line=L,col=C,title=T::message`.
"""

from __future__ import annotations

import re

from ..diagnostics import Diagnostic
from ..plan import Plan
from . import show

_FILE_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+)")


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
    where = f"{d.source.file}:{d.source.line}" if d.source and d.source.line else (
        d.source.file if d.source else None)
    column = d.source.column if d.source else 0
    message = f"{d.message} — {d.hint}" if d.hint else d.message
    return _command(level, where, "reconciler", message, column)


def _command(level: str, source: str | None, title: str, message: str, column: int = 0) -> str:
    properties = []
    if source:
        match = _FILE_LINE.match(source)
        if match:
            properties += [f"file={_property(match['file'])}", f"line={match['line']}"]
            if column:
                properties.append(f"col={column}")
        else:
            properties.append(f"file={_property(source)}")
    properties.append(f"title={_property(title)}")
    return f"::{level} {','.join(properties)}::{_data(message)}"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
