"""plan → apply → plan is empty, and export → plan is empty, for every example environment,
on both backends."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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
    """export → plan shows no change, once the secret files the README names are in place;
    secrets come back as the references they were applied from, logos as the same images.
    The export goes into a directory of the environment's name: the same environment (a
    lost one written again), which owns what it exported."""
    env = tmp_path / "source" / name
    shutil.copytree(EXAMPLES / name, env)
    assert run_cli("apply", env, "--state", state_url, "--auto-approve").returncode == 0
    plan = run_cli("plan", env, "--state", state_url, "--format", "json")
    account = json.loads(plan.stdout)["scope"][0]
    target = tmp_path / "exported" / name
    exported = run_cli("export", "--state", state_url, "--account", account, "--to", target)
    assert exported.returncode == 0, exported.output
    readme = (target / "README.md").read_text(encoding="utf-8")
    for secret in sorted(set(re.findall(r"\{file: ([^}]+)\}", _manifests(target)))):
        assert f"`{secret}`" in readme, secret
        (target / secret).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(env / secret, target / secret)  # the user provides the values
    for logo in re.findall(r"^logo: (.+)$", _manifests(target), re.MULTILINE):
        assert (target / logo).read_bytes() == (env / logo).read_bytes()
        assert f"`{logo}" in readme
    again = run_cli("plan", target, "--state", state_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output
    assert "No changes." in again.stdout
    assert _secret_lines(env) == _secret_lines(target)


def _manifests(directory: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(directory.rglob("*.yaml")))


def _secret_lines(directory: Path) -> set[str]:
    """The secret references, as written: the export keeps the originals."""
    found = re.findall(r"(?:pin|password|sip_password): (\{[^}]+\}|\"0000\")",
                       _manifests(directory))
    return {value.replace('"', "") for value in found}


def test_export_refuses_to_overwrite_without_force(sqlite_url, tmp_path):
    env = EXAMPLES / "comuniq-one-4digit"
    assert run_cli("apply", env, "--state", sqlite_url, "--auto-approve").returncode == 0
    target = tmp_path / "out"
    first = run_cli("export", "--state", sqlite_url, "--account", "6400300", "--to", target)
    assert first.returncode == 0, first.output
    (target / "accounts.yaml").write_text("# my edits\n", encoding="utf-8")
    second = run_cli("export", "--state", sqlite_url, "--account", "6400300", "--to", target)
    assert second.returncode == 1
    assert "would be overwritten" in second.stderr and "--force" in second.stderr
    assert "Traceback" not in second.output
    assert (target / "accounts.yaml").read_text(encoding="utf-8") == "# my edits\n"
    forced = run_cli("export", "--state", sqlite_url, "--account", "6400300", "--to", target,
                     "--force")
    assert forced.returncode == 0, forced.output
    assert "kind: Account" in (target / "accounts.yaml").read_text(encoding="utf-8")


def test_export_leaves_plain_text_secrets_out_and_lists_them(example, sqlite_url, tmp_path):
    env = example("comuniq-one-4digit")
    tenant = env / "tenant-lindner-immobilien.yaml"
    text = tenant.read_text(encoding="utf-8")
    assert text.count('pin: "0000"') >= 2
    tenant.write_text(text.replace('pin: "0000"', 'pin: "4711"', 1), encoding="utf-8")
    assert run_cli("apply", env, "--state", sqlite_url, "--auto-approve").returncode == 0
    target = tmp_path / "out" / env.name  # the same environment: it owns what it exported
    result = run_cli("export", "--state", sqlite_url, "--account", "6400300", "--to", target)
    assert result.returncode == 0, result.output
    written = "".join(p.read_bytes().decode() for p in target.rglob("*") if p.is_file())
    assert "4711" not in written
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert "## Secrets left out" in readme and "pin of extension lindner-immobilien/" in readme
    shutil.copytree(env / "secrets", target / "secrets")
    again = run_cli("plan", target, "--state", sqlite_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output  # left out = unmanaged: no change


def test_export_of_one_tenant(sqlite_url, tmp_path):
    env = tmp_path / "source" / "comuniq-one-4digit"
    __import__("shutil").copytree(EXAMPLES / "comuniq-one-4digit", env)
    assert run_cli("apply", env, "--state", sqlite_url, "--auto-approve").returncode == 0
    target = tmp_path / "one" / "comuniq-one-4digit"  # the same environment name
    result = run_cli("export", "--state", sqlite_url, "--tenant", "lindner-immobilien", "--to", target)
    assert result.returncode == 0, result.output
    assert (target / "tenant-lindner-immobilien.yaml").exists()
    shutil.copytree(env / "secrets", target / "secrets")  # the files its README names
    again = run_cli("plan", target, "--state", sqlite_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output


def test_export_unknown_account_is_a_clean_error(sqlite_url, tmp_path):
    result = run_cli("export", "--state", sqlite_url, "--account", "9999999", "--to", tmp_path / "x")
    assert result.returncode == 1
    assert "account 9999999 is not in the state" in result.stderr
    assert "Traceback" not in result.output
