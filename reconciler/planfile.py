"""The plan JSON contract (`--format json`) and saved plan files (`plan --out`).

A saved plan is the same JSON plus, per action, the full record apply would
write, and the plan options. It holds nothing derived from a secret and is
not trusted: `apply FILE` plans the named environment again and applies only
when the fresh actions equal the saved ones (see `apply.replan_saved`), so an
edited file can at most be refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from .diagnostics import Diagnostic, ReconcilerError, Severity, Source
from .cost import report_from_dict, report_to_dict
from .diff import Action, FieldChange
from .files import write_private
from .plan import FORMAT_VERSION, ForbiddenChange, LeftAlone, Plan, PlanOptions
from .risk import plan_risks


def plan_to_dict(plan: Plan, *, saved: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "environment": plan.env,
        "state_serial": plan.state_serial,
        "state_id": plan.state_id,
        "state_mark": plan.state_mark,
        "owner": plan.owner,
        "scope": plan.scope,
        "rejected": plan.rejected,
        "summary": plan.summary,
        "actions": [_action_to_dict(action, saved, risks)
                    for action, risks in zip(plan.actions, plan_risks(plan.actions))],
        "warnings": [_diagnostic_to_dict(d) for d in plan.warnings],
        "errors": [_diagnostic_to_dict(d) for d in plan.errors],
        "left_alone": [_left_alone_to_dict(o) for o in plan.left_alone],
    }
    if plan.secrets_mode:
        data["secrets"] = plan.secrets_mode
    if plan.forbidden:
        data["forbidden"] = [_forbidden_to_dict(f) for f in plan.forbidden]
    if plan.refusals:
        data["refusals"] = plan.refusals
    if plan.scheduled:
        data["scheduled"] = [_scheduled_to_dict(action) for action in plan.scheduled]
    if plan.cost is not None:
        data["cost"] = report_to_dict(plan.cost)
    return data


def _left_alone_to_dict(orphan: LeftAlone) -> dict[str, Any]:
    data = {"kind": orphan.kind, "id": orphan.id, "scope": orphan.scope}
    if orphan.target:
        data["target"] = orphan.target
    return data


def _scheduled_to_dict(action: Action) -> dict[str, Any]:
    return {**_action_to_dict(action, False, ()), "start_date": action.attrs["start_date"]}


def _action_to_dict(action: Action, saved: bool, risks: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "action": action.action, "kind": action.kind, "id": action.id, "scope": action.scope,
        "source": action.source,
        "changes": {name: _change_to_dict(change) for name, change in action.changes.items()},
    }
    if action.target is not None:
        data["target"] = action.target
    if risks:
        data["risks"] = list(risks)
    if saved:
        data["record"] = action.attrs
        data["rank"] = action.rank
    return data


def _change_to_dict(change: FieldChange) -> dict[str, Any]:
    data = {"before": change.before, "after": change.after}
    if change.drift:
        data["drift"] = True
        data["last_applied"] = change.applied
        if change.on_target is not None:
            data["on_target"] = change.on_target
    return data


def _diagnostic_to_dict(d: Diagnostic) -> dict[str, Any]:
    return {"source": str(d.source) if d.source else None, "message": d.message, "hint": d.hint}


def _forbidden_to_dict(f: ForbiddenChange) -> dict[str, Any]:
    data = {"kind": f.kind, "id": f.id, "field": f.field, "before": f.before, "after": f.after,
            "reason": f.reason, "instead": f.instead, "source": f.source}
    if f.follow_ons:
        data["follow_ons"] = [_diagnostic_to_dict(d) for d in f.follow_ons]
    return data


def dumps(data: Any) -> str:
    """JSON as `json.dumps(data, indent=2, ensure_ascii=False)` writes it, 20x faster.

    orjson writes the same bytes, except a float that Python shows with an
    exponent (1e-05, 1e+16; only --max-delete-percent could be one) keeps its
    value but is written as 0.00001 or 1e16. What orjson refuses (a lone
    surrogate, an integer beyond 64 bits, a key that is not a string) falls
    back to the standard library.
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_saved_plan(plan: Plan, path: Path, options: PlanOptions) -> None:
    if plan.rejected:
        raise ReconcilerError("a rejected plan cannot be saved — fix the problems listed above")
    data = plan_to_dict(plan, saved=True)
    data["options"] = asdict(options)
    write_private(path, dumps(data))


def read_saved_plan(path: Path) -> tuple[Plan, dict]:
    """The plan in a saved file and the options it was made with (both to be checked)."""
    where = Source(str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReconcilerError(Diagnostic(where, f"not a readable plan file ({exc.__class__.__name__})",
                                         "create it with 'reconciler plan ENV --out FILE'")) from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ReconcilerError(Diagnostic(where, "not a plan file of this reconciler version",
                                         "create it again with 'reconciler plan --out'"))
    try:
        return plan_from_dict(data), dict(data.get("options") or {})
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ReconcilerError(Diagnostic(where, "the plan file is damaged (a required part is "
                                         "missing or malformed)",
                                         "make a new plan with 'reconciler plan --out'")) from None


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The Plan of a plan JSON document (the inverse of `plan_to_dict`)."""
    plan = Plan(data["environment"], data["state_serial"], data["scope"],
                state_id=data.get("state_id", ""), state_mark=data.get("state_mark", ""),
                owner=data.get("owner", ""))
    plan.secrets_mode = data.get("secrets", "")
    plan.unchanged = data["summary"]["unchanged"]
    plan.left_alone = [LeftAlone(**o) for o in data.get("left_alone", [])]
    plan.warnings = [_diagnostic_from_dict(d, Severity.WARNING) for d in data.get("warnings", [])]
    plan.errors = [_diagnostic_from_dict(d, Severity.ERROR) for d in data.get("errors", [])]
    plan.forbidden = [_forbidden_from_dict(f) for f in data.get("forbidden", [])]
    plan.refusals = list(data.get("refusals", []))
    plan.actions = [_action_from_dict(item) for item in data["actions"]]
    plan.scheduled = [_action_from_dict(item, {"start_date": item["start_date"]})
                      for item in data.get("scheduled", [])]
    if "cost" in data:
        plan.cost = report_from_dict(data["cost"])
    return plan


def _action_from_dict(item: dict[str, Any], attrs: dict | None = None) -> Action:
    changes = {name: FieldChange(c["before"], c["after"], c.get("drift", False),
                                 c.get("last_applied"), c.get("on_target"))
               for name, c in item["changes"].items()}
    return Action(item["action"], item["kind"], item["id"], item["scope"], item["source"],
                  changes, item.get("record", attrs), {}, item.get("rank", 0),
                  target=item.get("target"))


def _forbidden_from_dict(data: dict[str, Any]) -> ForbiddenChange:
    follow_ons = tuple(_diagnostic_from_dict(d, Severity.ERROR) for d in data.get("follow_ons", []))
    return ForbiddenChange(**{k: v for k, v in data.items() if k != "follow_ons"},
                           follow_ons=follow_ons)


_SOURCE = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<column>\d+))?(?: \((?P<via>.*)\))?$")


def _diagnostic_from_dict(data: dict[str, Any], severity: Severity) -> Diagnostic:
    source = None
    if data.get("source"):
        match = _SOURCE.match(data["source"])
        source = (Source(match["file"], int(match["line"]), int(match["column"] or 0),
                         match["via"] or "") if match else Source(data["source"]))
    return Diagnostic(source, data["message"], data.get("hint", ""), severity)
