"""plan → apply → plan is empty, for every example environment, on both backends."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, run_cli

ENVIRONMENTS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", ENVIRONMENTS)
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
