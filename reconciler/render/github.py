"""GitHub Actions workflow commands, so problems show inline on the pull-request diff.

See "Workflow commands for GitHub Actions": `::error file=F,line=L,col=C,title=T::message`.
GitHub shows at most 10 error (and 10 warning) annotations per step, so root causes
come first, and when there are more than 10 a summary annotation leads.
"""

from __future__ import annotations

import re

from ..plan import Plan
from . import diagnostic_text, problems
from .escape import github_data, github_property

ANNOTATIONS_SHOWN = 10  # per step and level, by GitHub

# `file[:line[:column]][ (values use.yaml:N)]`, as `Source.short` and `str(Source)` write it.
_SOURCE = re.compile(r"^(?P<file>.+?)(?::(?P<line>\d+))?(?::(?P<column>\d+))?"
                     r"(?: \(values (?P<values>.+?)(?::(?P<values_line>\d+))?\))?$")


def render_github(plans: list[Plan]) -> str:
    """The annotations of all plans of one step, errors first, each level summarised past 10."""
    errors, warnings = [], []
    for plan in plans:
        for problem in problems(plan):
            title = "reconciler" if problem.title == "Error" else problem.title
            errors.append(_command("error", problem.source, title, problem.message))
            errors += [_command("error", str(d.source) if d.source else None,
                                "Follows from the forbidden change above", diagnostic_text(d))
                       for d in problem.follow_ons]
        warnings += [_command("warning", str(d.source) if d.source else None, "reconciler",
                              diagnostic_text(d)) for d in plan.warnings]
        warnings += [_command("warning", None, "Delete",
                              f"{plan.env}: {a.kind} {a.id} will be deleted")
                     for a in plan.actions if a.action == "delete"]
    lines = _summarised("error", errors, plans) + _summarised("warning", warnings, plans)
    return "".join(line + "\n" for line in lines)


def _summarised(level: str, commands: list[str], plans: list[Plan]) -> list[str]:
    if len(commands) <= ANNOTATIONS_SHOWN:
        return commands
    forbidden = sum(len(plan.forbidden) for plan in plans)
    first = (f"; the {forbidden} forbidden changes (root causes) come first"
             if level == "error" and forbidden else "")
    summary = _command(level, None, f"reconciler: {len(commands)} {level}s",
                       f"{len(commands)} {level}s in all{first}. GitHub shows only "
                       f"{ANNOTATIONS_SHOWN} per step: see the plan comment, the job summary "
                       "or the log for every one")
    return [summary, *commands]


def _command(level: str, source: str | None, title: str, message: str) -> str:
    properties = []
    match = _SOURCE.match(source) if source else None
    if match and match["values"]:
        # A line rendered from a template: the customer edits the values file (the
        # `kind: Use` document), not the template, so the annotation goes there.
        properties.append(f"file={github_property(match['values'])}")
        if match["values_line"]:
            properties.append(f"line={match['values_line']}")
        template = match["file"] + (f":{match['line']}" if match["line"] else "")
        message = f"{message} (rendered from template {template})"
    elif match:
        properties.append(f"file={github_property(match['file'])}")
        if match["line"]:
            properties.append(f"line={match['line']}")
            if match["column"]:
                properties.append(f"col={match['column']}")
    properties.append(f"title={github_property(title)}")
    return f"::{level} {','.join(properties)}::{github_data(message)}"
