"""The plan cache never serves a stale or forged plan (issue 11, "The cache served stale
plans"): a template behind a re-pointed symlink, a template error fixed outside the
environment, PostgreSQL TRUNCATE, dropped revision triggers, an edited cache entry."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import EXAMPLES, run_cli

SERVED = "plan served from the cache"
KEY = {"RECONCILER_SECRET_KEY": "0123456789abcdef" * 4}  # a plan that reads secrets needs it
TEMPLATES = EXAMPLES.parent / "templates"


@pytest.fixture
def workspace(tmp_path):
    """customers/baeckerei-schulz using templates/current, a link to templates/a."""
    shutil.copytree(TEMPLATES / "standard-office", tmp_path / "templates" / "a")
    shutil.copytree(TEMPLATES / "standard-office", tmp_path / "templates" / "b")
    b = tmp_path / "templates" / "b" / "account.yaml.j2"
    b.write_text(b.read_text().replace("contact: {{ contact | tojson }}", 'contact: "Filiale B"'))
    (tmp_path / "templates" / "current").symlink_to("a")
    env = tmp_path / "customers" / "baeckerei-schulz"
    shutil.copytree(EXAMPLES.parent / "customers" / "baeckerei-schulz", env)
    use = env / "use.yaml"
    use.write_text(use.read_text().replace("../../templates/standard-office",
                                           "../../templates/current"))
    return tmp_path


def plan(workspace: Path, state: str, *args, extra_env: dict | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(RECONCILER_CACHE_DIR=str(workspace / ".cache"),
               XDG_CONFIG_HOME=str(workspace / "config"), **KEY, **(extra_env or {}))
    result = run_cli("-v", "plan", "baeckerei-schulz", "--format", "json", "--state", state,
                     *args, cwd=workspace / "customers", env=env)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def contact(planned: dict) -> str | None:
    for action in planned["actions"]:
        if action["kind"] == "account":
            return action["changes"]["contact"]["after"]
    return None


def test_a_second_plan_is_served_and_a_re_pointed_template_link_is_seen(workspace, sqlite_url):
    first, planned = plan(workspace, sqlite_url)
    assert first.returncode == 0 and SERVED not in first.stderr, first.output
    second, again = plan(workspace, sqlite_url)
    assert SERVED in second.stderr and again == planned
    link = workspace / "templates" / "current"
    link.unlink()
    link.symlink_to("b")
    third, moved = plan(workspace, sqlite_url)
    assert SERVED not in third.stderr
    assert contact(moved) == "Filiale B" and contact(planned) != "Filiale B"


def test_a_template_error_fixed_outside_the_environment_is_seen(workspace, sqlite_url):
    schema = workspace / "templates" / "a" / "parameters.schema.json"
    schema.rename(schema.with_suffix(".bak"))
    broken, _ = plan(workspace, sqlite_url)
    assert broken.returncode == 1 and "is not a template directory" in broken.output
    schema.with_suffix(".bak").rename(schema)
    fixed, planned = plan(workspace, sqlite_url)
    assert fixed.returncode == 0 and SERVED not in fixed.stderr, fixed.output
    assert planned["summary"]["create"] > 0


def test_an_edited_cache_entry_is_ignored(workspace, sqlite_url):
    plan(workspace, sqlite_url)
    [entry] = list((workspace / ".cache").glob("*.json"))
    wrapper = json.loads(entry.read_text())
    body = json.loads(wrapper["body"])
    body["plan"]["summary"]["create"] = 0
    wrapper["body"] = json.dumps(body)
    entry.write_text(json.dumps(wrapper))
    result, planned = plan(workspace, sqlite_url)
    assert SERVED not in result.stderr and "failed its check (edited?): ignored" in result.stderr
    assert planned["summary"]["create"] > 0
    key = workspace / "config" / "reconciler" / "cache.key"
    assert key.stat().st_mode & 0o777 == 0o600 and key.read_bytes() not in entry.read_bytes()


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_truncate_and_missing_triggers_are_never_served(workspace, pg_cluster, tmp_path):
    url = pg_cluster.create_database(f"cache_{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")} | KEY
    applied = run_cli("apply", "baeckerei-schulz", "--auto-approve", "--state", url,
                      cwd=workspace / "customers", env=env)
    assert applied.returncode == 0, applied.output
    _, clean = plan(workspace, url)
    assert clean["summary"]["create"] == 0
    assert SERVED in plan(workspace, url)[0].stderr
    _sql(url, "TRUNCATE reconciler_resources")
    result, planned = plan(workspace, url)
    assert SERVED not in result.stderr and planned["summary"]["create"] > 0
    _sql(url, "ALTER TABLE reconciler_resources DISABLE TRIGGER reconciler_revision")
    plan(workspace, url)
    result, _ = plan(workspace, url)
    assert SERVED not in result.stderr
    assert "the state's revision triggers are missing or disabled" in result.stderr
    assert tmp_path.exists()


def imported(stderr: str) -> set[str]:
    """The modules that `-X importtime` (PYTHONPROFILEIMPORTTIME) lists on stderr."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _sqlite(url: str, statement: str) -> None:
    """An edit made outside reconciler, with the stdlib driver."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    with connection:
        connection.execute(statement)
    connection.close()


def _applied(workspace: Path, url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")} | KEY
    applied = run_cli("apply", "baeckerei-schulz", "--auto-approve", "--state", url,
                      cwd=workspace / "customers", env=env)
    assert applied.returncode == 0, applied.output


def test_a_warm_plan_on_sqlite_imports_no_sqlalchemy_and_sees_an_edit_of_the_state(
        workspace, sqlite_url):
    _applied(workspace, sqlite_url)
    _, clean = plan(workspace, sqlite_url)
    profiled = {"PYTHONPROFILEIMPORTTIME": "1"}
    warm, again = plan(workspace, sqlite_url, extra_env=profiled)
    assert SERVED in warm.stderr and again == clean and clean["summary"]["update"] == 0
    modules = imported(warm.stderr)
    assert "reconciler.cli" in modules
    assert not {m for m in modules if m.split(".")[0] in ("sqlalchemy", "pydantic", "ruamel")}
    _sqlite(sqlite_url, "UPDATE reconciler_resources SET attrs = replace(attrs, '\"contact\":"
                        "\"', '\"contact\":\"edited ') WHERE kind = 'account'")
    edited, planned = plan(workspace, sqlite_url, extra_env=profiled)
    assert SERVED not in edited.stderr and planned["summary"]["update"] == 1, edited.output
    assert "sqlalchemy" in imported(edited.stderr)


def test_a_sqlite_state_without_its_triggers_is_never_served(workspace, sqlite_url):
    _applied(workspace, sqlite_url)
    plan(workspace, sqlite_url)
    assert SERVED in plan(workspace, sqlite_url)[0].stderr
    _sqlite(sqlite_url, "DROP TRIGGER reconciler_revision_update")
    _sqlite(sqlite_url, "UPDATE reconciler_resources SET attrs = replace(attrs, '\"contact\":"
                        "\"', '\"contact\":\"edited ') WHERE kind = 'account'")
    result, planned = plan(workspace, sqlite_url)
    assert SERVED not in result.stderr and planned["summary"]["update"] == 1
    assert "the state's revision triggers are missing or disabled" in result.stderr


def test_a_failing_sqlite_state_behind_a_warm_start_is_one_line(workspace, sqlite_url):
    _sqlite(sqlite_url, "ALTER TABLE reconciler_resources RENAME COLUMN owner TO owned_by")
    result, _ = plan(workspace, sqlite_url)
    assert result.returncode == 1
    assert "error: state store failed: " in result.stderr and "no such column" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
