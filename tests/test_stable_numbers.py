"""An applied number never changes (issue 11, "Numbers move"): an explicit number that an
applied auto extension holds is an error, and an auto extension with a `key` keeps its
number when renamed. Through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import run_cli
from test_state_integrity import PASSWORD, small_env


def cli(*args, cwd: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return run_cli(*args, cwd=cwd, env={**env, "INTEGRITY_PW": PASSWORD})


def add_extension(env: Path, text: str) -> None:
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text() + text, encoding="utf-8")


def numbers(env: Path, state: str) -> dict[str, str]:
    """Extension name → number, from the plan JSON (creates and updates)."""
    plan = json.loads(cli("plan", env.name, "--format", "json", "--state", state,
                          cwd=env.parent).stdout)
    return {a["id"]: a["changes"] for a in plan["actions"] if a["kind"] == "extension"}


def apply(env: Path, state: str) -> str:
    result = cli("apply", env.name, "--auto-approve", "--state", state, cwd=env.parent)
    assert result.returncode == 0, result.output
    return result.stdout


def test_an_explicit_number_held_by_an_applied_auto_extension_is_an_error(state_url, tmp_path):
    env = small_env(tmp_path)
    add_extension(env, '  - number: auto\n    name: Azubi\n    pin: "0000"\n')
    assert "extension acme/103" in apply(env, state_url)
    add_extension(env, '  - number: "103"\n    name: Neu\n    pin: "0000"\n')
    result = cli("plan", env.name, "--state", state_url, cwd=tmp_path)
    assert result.returncode == 1
    assert ("extension number 103 of tenant 'acme' belongs to auto extension 'Azubi' since it "
            "was applied; an applied number never changes") in result.output
    assert "remove the auto extension and apply with --allow-delete first" in result.output


def test_an_auto_extension_with_a_key_keeps_its_number_when_renamed(state_url, tmp_path):
    env = small_env(tmp_path)
    add_extension(env, '  - number: auto\n    key: azubi-1\n    name: Azubi\n    pin: "0000"\n'
                       '  - number: auto\n    name: Lager\n    pin: "0000"\n')
    apply(env, state_url)
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("name: Azubi", "name: Auszubildende")
                      .replace("name: Lager\n", "name: Lagerhalle\n"))
    planned = numbers(env, state_url)
    assert planned["acme/103"] == {"name": {"before": "Azubi", "after": "Auszubildende"}}
    # without a key, the name is the identity: a renamed one is a new extension
    assert "acme/105" in planned and "name" in planned["acme/105"]


def test_a_key_added_to_an_applied_auto_extension_is_kept_from_then_on(state_url, tmp_path):
    env = small_env(tmp_path)
    add_extension(env, '  - number: auto\n    name: Azubi\n    pin: "0000"\n')
    apply(env, state_url)
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("    name: Azubi\n",
                                                 "    key: azubi-1\n    name: Azubi\n"))
    assert numbers(env, state_url) == {"acme/103": {"key": {"before": None, "after": "azubi-1"}}}
    apply(env, state_url)
    tenant.write_text(tenant.read_text().replace("name: Azubi", "name: Azubine"))
    assert numbers(env, state_url) == {"acme/103": {"name": {"before": "Azubi",
                                                             "after": "Azubine"}}}
