"""The plan JSON contract (`--format json`) and saved plan files (`plan --out`).

A saved plan is the same JSON plus, per action, the full record and new
secret hashes that apply writes, and a `checksum`: an HMAC-SHA256 over the
rest with a key kept in the state, so an edited file is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic, ReconcilerError, Severity, Source
from .cost import report_from_dict, report_to_dict
from .diff import Action, FieldChange
from .plan import FORMAT_VERSION, ForbiddenChange, LeftAlone, Plan
from .risk import plan_risks


def plan_to_dict(plan: Plan, *, saved: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "environment": plan.env,
        "state_serial": plan.state_serial,
        "scope": plan.scope,
        "rejected": plan.rejected,
        "summary": plan.summary,
        "actions": [_action_to_dict(action, saved, risks)
                    for action, risks in zip(plan.actions, plan_risks(plan.actions))],
        "warnings": [_diagnostic_to_dict(d) for d in plan.warnings],
        "errors": [_diagnostic_to_dict(d) for d in plan.errors],
        "left_alone": [{"kind": o.kind, "id": o.id, "scope": o.scope} for o in plan.left_alone],
    }
    if plan.forbidden:
        data["forbidden"] = [_forbidden_to_dict(f) for f in plan.forbidden]
    if plan.refusals:
        data["refusals"] = plan.refusals
    if plan.scheduled:
        data["scheduled"] = [_scheduled_to_dict(action) for action in plan.scheduled]
    if plan.cost is not None:
        data["cost"] = report_to_dict(plan.cost)
    return data


def _scheduled_to_dict(action: Action) -> dict[str, Any]:
    return {**_action_to_dict(action, False, ()), "start_date": action.attrs["start_date"]}


def _action_to_dict(action: Action, saved: bool, risks: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "action": action.action, "kind": action.kind, "id": action.id, "scope": action.scope,
        "source": action.source,
        "changes": {name: _change_to_dict(change) for name, change in action.changes.items()},
    }
    if risks:
        data["risks"] = list(risks)
    if saved:
        data["record"] = action.attrs
        data["secret_hashes"] = action.secret_hashes
        data["rank"] = action.rank
    return data


def _change_to_dict(change: FieldChange) -> dict[str, Any]:
    data = {"before": change.before, "after": change.after}
    if change.drift:
        data["drift"] = True
        data["last_applied"] = change.applied
    return data


def _diagnostic_to_dict(d: Diagnostic) -> dict[str, Any]:
    return {"source": str(d.source) if d.source else None, "message": d.message, "hint": d.hint}


def _forbidden_to_dict(f: ForbiddenChange) -> dict[str, Any]:
    data = {"kind": f.kind, "id": f.id, "field": f.field, "before": f.before, "after": f.after,
            "reason": f.reason, "instead": f.instead, "source": f.source}
    if f.follow_ons:
        data["follow_ons"] = [_diagnostic_to_dict(d) for d in f.follow_ons]
    return data


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _canonical(data: dict[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign(data: dict[str, Any], key: bytes) -> dict[str, Any]:
    signed = dict(data)
    signed["checksum"] = "hmac-sha256:" + hmac.new(key, _canonical(data), hashlib.sha256).hexdigest()
    return signed


def write_saved_plan(plan: Plan, path: Path, key: bytes) -> None:
    if plan.rejected:
        raise ReconcilerError("a rejected plan cannot be saved — fix the problems listed above")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(sign(plan_to_dict(plan, saved=True), key)), encoding="utf-8")


def read_saved_plan(path: Path, key: bytes) -> Plan:
    """The plan in a saved file, after checking its checksum against the state's key."""
    where = Source(str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReconcilerError(Diagnostic(where, f"not a readable plan file ({exc.__class__.__name__})",
                                         "create it with 'reconciler plan ENV --out FILE'")) from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ReconcilerError(Diagnostic(where, "not a plan file of this reconciler version",
                                         "create it again with 'reconciler plan --out'"))
    expected = sign(data, key)["checksum"]
    if not hmac.compare_digest(str(data.get("checksum", "")), expected):
        raise ReconcilerError(Diagnostic(
            where, "the plan file was altered after it was made (checksum mismatch), "
            "or it was made against another state",
            "make a new plan with 'reconciler plan --out' and review it again"))
    return plan_from_dict(data)


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The Plan of a plan JSON document (the inverse of `plan_to_dict`)."""
    plan = Plan(data["environment"], data["state_serial"], data["scope"])
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
                                 c.get("last_applied"))
               for name, c in item["changes"].items()}
    return Action(item["action"], item["kind"], item["id"], item["scope"], item["source"],
                  changes, item.get("record", attrs), item.get("secret_hashes", {}),
                  item.get("rank", 0))


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
