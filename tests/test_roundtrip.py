"""plan → apply → plan is empty, for every example environment, on both backends."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, run_cli

ENVIRONMENTS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
# An environment with a Target needs its platform running: tests/test_kamailio.py covers it.
STATE_ONLY = [name for name in ENVIRONMENTS
              if not any("kind: Target" in f.read_text() for f in (EXAMPLES / name).glob("*.yaml"))]


@pytest.mark.parametrize("name", STATE_ONLY)
def test_plan_apply_plan_is_empty(name, state_url, tmp_path):
    env = EXAMPLES / name
    plan_file = tmp_path / "plan.json"
    first = run_cli("plan", env, "--state", state_url, "--out", plan_file, "--detailed-exitcode")
    assert first.returncode == 2, first.output
    assert "to create" in first.stdout
    applied = run_cli("apply", plan_file, "--state", state_url)
    assert applied.returncode == 0, applied.output
    assert "Apply complete" in applied.stdout
    again = run_cli("plan", env, "--state", state_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output
    assert "No changes." in again.stdout


def test_validate_all_examples():
    result = run_cli("validate", *sorted(EXAMPLES.iterdir()))
    assert result.returncode == 0, result.output
    assert result.output.count(": valid") == len(ENVIRONMENTS)


@pytest.mark.parametrize("name", STATE_ONLY)
def test_export_round_trip_shows_no_change(name, state_url, tmp_path):
    env = EXAMPLES / name
    assert run_cli("apply", env, "--state", state_url, "--auto-approve").returncode == 0
    plan = run_cli("plan", env, "--state", state_url, "--format", "json")
    account = __import__("json").loads(plan.stdout)["scope"][0]
    target = tmp_path / "exported"
    exported = run_cli("export", "--state", state_url, "--account", account, "--to", target)
    assert exported.returncode == 0, exported.output
    if (env / "assets").exists():  # the state keeps the logo path, not the image
        __import__("shutil").copytree(env / "assets", target / "assets")
    again = run_cli("plan", target, "--state", state_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output
    assert "No changes." in again.stdout
    assert "password" not in "".join(p.read_text() for p in target.glob("*.yaml"))
    assert "pin:" not in "".join(p.read_text() for p in target.glob("*.yaml"))


def test_export_of_one_tenant(sqlite_url, tmp_path):
    env = EXAMPLES / "comuniq-one-4digit"
    assert run_cli("apply", env, "--state", sqlite_url, "--auto-approve").returncode == 0
    target = tmp_path / "one"
    result = run_cli("export", "--state", sqlite_url, "--tenant", "lindner-immobilien", "--to", target)
    assert result.returncode == 0, result.output
    assert (target / "tenant-lindner-immobilien.yaml").exists()
    again = run_cli("plan", target, "--state", sqlite_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output


def test_export_unknown_account_is_a_clean_error(sqlite_url, tmp_path):
    result = run_cli("export", "--state", sqlite_url, "--account", "9999999", "--to", tmp_path / "x")
    assert result.returncode == 1
    assert "account 9999999 is not in the state" in result.stderr
    assert "Traceback" not in result.output
