"""Render stage: plans → text, markdown, JSON or GitHub annotations.

Renderers only read `Plan` objects; they never decide anything.
"""

from __future__ import annotations

import json
from typing import Any

from ..diff import SENSITIVE, SENSITIVE_CHANGED, Action, FieldChange


def show(value: Any) -> str:
    """A value as plans print it: strings quoted, lists and mappings as JSON."""
    if value in (SENSITIVE, SENSITIVE_CHANGED):
        return value
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def change_text(action: str, change: FieldChange) -> str:
    if action == "create":
        return show(change.after)
    if action == "delete":
        return show(change.before)
    text = f"{show(change.before)} → {show(change.after)}"
    if change.drift:
        text += f"  (changed outside reconciler; last applied {show(change.applied)})"
    return text


SYMBOLS = {"create": "+", "update": "~", "delete": "-"}


def group_of(action: Action) -> str:
    """The tenant an action belongs to, or '' for accounts, packages and sites."""
    if action.kind == "tenant":
        return action.id
    if action.kind in ("user", "extension"):
        return action.id.split("/", 1)[0]
    return ""
