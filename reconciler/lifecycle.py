"""Lifecycle: an order with a future `start_date` is scheduled, not provisioned yet.

Seed 000's order form asks for the date from which the order is valid. A plan
keeps creates whose start date lies after today apart, as *scheduled*: they are
shown, never applied, and the first plan on or after the date creates them.
An object that already exists is not scheduled again when its date moves.
"""

from __future__ import annotations

import datetime
import os

from .diagnostics import ReconcilerError

TODAY_VARIABLE = "RECONCILER_TODAY"


def today() -> datetime.date:
    """Today, or the date in RECONCILER_TODAY (to rehearse a plan for a later day, and in tests)."""
    value = os.environ.get(TODAY_VARIABLE)
    if not value:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise ReconcilerError(f"{TODAY_VARIABLE}='{value}' is not a date — write it as "
                              "YYYY-MM-DD, or unset it to use today's date") from None


def split_scheduled(actions: list, day: datetime.date) -> tuple[list, list]:
    """(actions due now, creates scheduled for a later start date)."""
    cutoff = day.isoformat()  # ISO dates compare as strings
    due, scheduled = [], []
    for action in actions:
        start = action.attrs.get("start_date") if action.action == "create" else None
        (scheduled if start and start > cutoff else due).append(action)
    return due, scheduled
