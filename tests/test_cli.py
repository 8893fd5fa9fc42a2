"""The command line as a newcomer meets it: help, verbosity, wording, wrong directories."""

from __future__ import annotations

import os
import pty
import shutil
import sys

import pytest

from conftest import EXAMPLES, run_cli

COMMANDS = ("validate", "plan", "apply", "render", "export")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_commands_and_exit_codes(flag):
    result = run_cli(flag)
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("Usage: reconciler ")
    for command in COMMANDS:
        assert f"\n  {command} " in result.stdout
    assert "...\n" not in result.stdout.split("Commands:")[1]  # no short help cut off
    assert "Exit codes:" in result.stdout and "  2  changes to apply" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_exit_codes(command):
    result = run_cli(command, "-h")
    assert result.returncode == 0, result.output
    assert f"Usage: reconciler {command} " in result.stdout
    assert "Exit codes:" in result.stdout


def test_max_delete_percent_is_documented():
    for command in ("plan", "apply"):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert "--max-delete-percent FLOAT RANGE With --allow-delete: refuse a plan" in text


def test_verbose_logs_each_step_on_stderr(sqlite_url):
    result = run_cli("-v", "plan", EXAMPLES / "partner-hosted", "--state", sqlite_url)
    assert result.returncode == 0, result.output
    logged = [line for line in result.stderr.splitlines() if line.startswith("reconciler: ")]
    assert any("read 13 documents from 9 files" in line for line in logged), result.stderr
    assert any("planned 42 actions" in line for line in logged), result.stderr
    assert "reconciler: " not in run_cli("plan", EXAMPLES / "partner-hosted", "--state",
                                         sqlite_url).stderr


def test_counts_are_pluralised(tmp_path):
    env = tmp_path / "env"
    shutil.copytree(EXAMPLES / "partner-hosted", env)
    tenant = env / "tenant-weber-steuerberatung.yaml"
    tenant.write_text(tenant.read_text().replace("reference:", "referenz:", 1))
    result = run_cli("validate", env)
    assert result.returncode == 1
    assert "invalid (1 error, 0 warnings)" in result.stdout, result.output


def test_empty_directory_is_not_an_environment(tmp_path, sqlite_url):
    empty = tmp_path / "acme"
    empty.mkdir()
    (empty / "README.md").write_text("no manifests yet\n")
    for args in (("validate", empty), ("plan", empty, "--state", sqlite_url)):
        result = run_cli(*args)
        assert result.returncode == 1, result.output
        assert f"{empty}: no manifests here" in result.output
        assert "No changes" not in result.output


def test_directory_of_environments_is_named_as_such(tmp_path, sqlite_url):
    root = tmp_path / "environments"
    for name in ("partner-hosted", "main-with-subaccounts"):
        shutil.copytree(EXAMPLES / name, root / name)
    result = run_cli("plan", "environments", "--state", sqlite_url, cwd=tmp_path)
    assert result.returncode == 1, result.output
    assert ("environments: this directory holds 2 environments: "
            "environments/main-with-subaccounts, environments/partner-hosted") in result.output
    assert "'reconciler plan environments/*'" in result.output
    assert "declared twice" not in result.output  # the merge is not attempted
    each = run_cli("plan", root / "partner-hosted", root / "main-with-subaccounts",
                   "--state", sqlite_url, "--detailed-exitcode")
    assert each.returncode == 2, each.output


def test_environment_with_manifests_in_subdirectories_is_one_environment(tmp_path):
    env = tmp_path / "partner"
    shutil.copytree(EXAMPLES / "partner-hosted", env)  # has sites/ below its top level
    assert run_cli("validate", env).returncode == 0


def test_cancelled_apply_exits_1_and_changes_nothing(sqlite_url):
    """Answering 'no' on a terminal is not a success: CI scripts must not go on."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal
        os.execv(sys.executable, [sys.executable, "-m", "reconciler", "apply",
                                  str(EXAMPLES / "partner-hosted"), "--state", sqlite_url])
    output, answered = b"", False
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child has closed the terminal
            break
        if not data:
            break
        output += data
        if not answered and b"Apply these changes? [y/N]" in output:
            os.write(fd, b"n\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    assert answered, output.decode(errors="replace")[-500:]
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"apply cancelled; nothing was changed" in output
    check = run_cli("plan", EXAMPLES / "partner-hosted", "--state", sqlite_url,
                    "--detailed-exitcode")
    assert check.returncode == 2 and "42 to create" in check.stdout
