"""Lifecycle: a create with a future start_date is scheduled, and applied once the date comes."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import ROOT
from helpers import Env, applied_templates, make_env  # noqa: F401 - fixtures

MWS = "main-with-subaccounts"
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
ORDER = """  - number: "140"
    name: Neue Kollegin
    pin: "0000"
    area_code: "030"
    product: standard_user
    start_date: 2031-03-01
    reference: PO-2031-7
"""


def _order_for_later(env: Env) -> None:
    env.edit("tenant-mustermensch.yaml", "extensions:\n", "extensions:\n" + ORDER)


@pytest.mark.slow  # ~45 s: plans and applies on several days
def test_future_start_is_scheduled_then_applied_on_the_day(make_env, state_url):
    env: Env = make_env(MWS, applied=True)
    serial = env.serial()
    _order_for_later(env)
    before = {"RECONCILER_TODAY": "2031-02-28"}
    data = env.plan_json(env=before)
    jsonschema.validate(data, PLAN_SCHEMA)
    assert data["actions"] == [] and data["summary"]["create"] == 0
    assert [(s["id"], s["start_date"]) for s in data["scheduled"]] == [
        ("mustermensch/140", "2031-03-01")]
    text = env.plan(env=before).stdout
    assert "> extension mustermensch/140 from 2031-03-01" in text
    assert "1 scheduled for a later start date" in text
    assert "Scheduled: 1 creates wait" in env.plan("--format", "markdown", env=before).stdout

    assert env.apply("--auto-approve", env=before).returncode == 0
    assert env.serial(env=before) == serial, "a scheduled create was applied before its date"

    on_the_day = {"RECONCILER_TODAY": "2031-03-01"}
    data = env.plan_json(env=on_the_day)
    assert [(a["action"], a["id"]) for a in data["actions"]] == [("create", "mustermensch/140")]
    assert "scheduled" not in data
    assert env.apply("--auto-approve", env=on_the_day).returncode == 0
    assert env.serial(env=on_the_day) == serial + 1
    assert env.plan_json(env=on_the_day)["actions"] == []


def test_a_batch_file_can_be_ordered_for_later(make_env, sqlite_url):
    env: Env = make_env("comuniq-one-4digit")
    env.edit("tenant-lindner-immobilien.yaml", "start_date: 2026-10-01", "start_date: 2031-01-01")
    data = env.plan_json(env={"RECONCILER_TODAY": "2030-12-31"})
    assert len(data["scheduled"]) == 50
    assert all(s["id"].startswith("lindner-immobilien/") for s in data["scheduled"])


def test_a_bad_today_is_a_clean_error(make_env):
    env: Env = make_env(MWS)
    result = env.plan(env={"RECONCILER_TODAY": "tomorrow"})
    assert result.returncode == 1
    assert "RECONCILER_TODAY='tomorrow' is not a date" in result.output
    assert "Traceback" not in result.output
