"""The Kamailio target: apply provisions Kamailio's own tables, plan reads them back.

Kamailio's database is created by Debian's schema scripts (scripts/kamailio.sh
init); the CLI runs in a subprocess. The end-to-end tests start Kamailio with
examples/kamailio/kamailio.cfg and register phones with SIPp.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import jsonschema
import pytest

from conftest import ROOT
from kamailio import (DOMAIN, Platform, ha1, init_db, kamailio_env, make_db, passwords,
                      require_kamailio, running)
from sip import register

EXTRA = ("insert into subscriber (username, domain, password, ha1, ha1b) "
         "values ('999', :d, '', 'x', 'y')")

@pytest.fixture(params=["sqlite", "postgresql"])
def kamailio_db(request, tmp_path) -> str:
    return make_db(request.param, tmp_path, request)

@pytest.fixture
def sqlite_kamailio(tmp_path, request) -> str:
    return make_db("sqlite", tmp_path, request)

def test_apply_writes_kamailio_rows_with_ha1_only(sqlite_kamailio, sqlite_url, tmp_path):
    env, variables = kamailio_env(tmp_path, sqlite_url, sqlite_kamailio)
    result = env.apply("--auto-approve", env=variables)
    assert result.returncode == 0, result.output
    assert "15 created" in result.stdout
    platform = Platform(sqlite_kamailio)
    secret = passwords(env)
    for number, (password, row_ha1, row_ha1b) in platform.subscribers().items():
        assert password == ""  # never plain text on the target
        assert row_ha1 == ha1(number, DOMAIN, secret[number])
        assert row_ha1b == ha1(f"{number}@{DOMAIN}", DOMAIN, secret[number])
    assert platform.aliases() == [("493044001700", DOMAIN, "100", DOMAIN),
                                  ("49304400170100", DOMAIN, "100", DOMAIN),
                                  ("49304400170201", DOMAIN, "101", DOMAIN)]
    assert platform.sql("select domain from domain") == [(DOMAIN,)]
    again = env.plan("--detailed-exitcode", env=variables)
    assert again.returncode == 0, again.output
    assert "No changes. 15 resources up to date." in again.stdout

def test_changes_on_the_target_show_in_every_format_and_apply_repairs(
        sqlite_kamailio, sqlite_url, tmp_path):
    env, variables = kamailio_env(tmp_path, sqlite_url, sqlite_kamailio)
    assert env.apply("--auto-approve", env=variables).returncode == 0
    platform = Platform(sqlite_kamailio)
    before = platform.subscribers()
    platform.sql("delete from subscriber where username = '101'")
    platform.sql("update subscriber set ha1 = 'broken' where username = '100'")
    platform.sql(EXTRA, d=DOMAIN)
    platform.sql("update dbaliases set username = '102' where alias_username = '49304400170201'")

    text = env.plan("--detailed-exitcode", env=variables)
    assert text.returncode == 2, text.output
    assert "~ sip_subscriber 100@sonnenschein.pbx.example" in text.stdout
    assert ("sip_password: (sensitive value) → (sensitive value changed)  (changed on target "
            "'sip-berlin'; last applied (sensitive value))") in text.stdout
    assert "+ sip_subscriber 101@" in text.stdout
    assert "exists: true  (changed on target 'sip-berlin'; last applied true)" in text.stdout
    assert ('username: "102" → "101"  (changed on target \'sip-berlin\'; last applied "101")'
            in text.stdout)
    assert ("= sip_subscriber 999@sonnenschein.pbx.example  (account 4455660; unmanaged on "
            "target 'sip-berlin')") in text.stdout
    assert "Plan: 1 to create, 2 to update, 0 to delete, 12 unchanged, 1 left alone." in text.stdout

    data = env.plan_json(expect=(0,), env=variables)
    jsonschema.validate(data, json.loads((ROOT / "schemas" / "plan.schema.json").read_text()))
    by_id = {a["id"]: a for a in data["actions"]}
    broken = by_id[f"100@{DOMAIN}"]
    assert broken["target"] == "sip-berlin" and "drift-revert" in broken["risks"]
    assert broken["changes"]["sip_password"] == {
        "before": "(sensitive value)", "after": "(sensitive value changed)", "drift": True,
        "last_applied": "(sensitive value)", "on_target": "sip-berlin"}
    assert by_id[f"101@{DOMAIN}"]["changes"]["exists"]["on_target"] == "sip-berlin"
    assert {"kind": "sip_subscriber", "id": f"999@{DOMAIN}", "scope": "4455660",
            "target": "sip-berlin"} in data["left_alone"]
    markdown = env.plan("--format", "markdown", env=variables).stdout
    assert "changed on target 'sip-berlin'" in markdown
    assert "unmanaged on target `sip-berlin`" in markdown
    github = env.plan("--format", "github", env=variables).stdout
    assert "changed on target 'sip-berlin'" in github

    repaired = env.apply("--auto-approve", env=variables)
    assert repaired.returncode == 0, repaired.output
    after = platform.subscribers()
    assert {n: after[n] for n in before} == before and "999" in after  # left alone
    deleted = env.apply("--auto-approve", "--allow-delete", env=variables)
    assert deleted.returncode == 0, deleted.output
    assert platform.subscribers() == before
    assert platform.counts() == (1, 3, 3)
    assert env.plan("--detailed-exitcode", env=variables).returncode == 0

def test_a_saved_plan_is_applied_against_the_target_as_it_is_then(
        sqlite_kamailio, sqlite_url, tmp_path):
    env, variables = kamailio_env(tmp_path, sqlite_url, sqlite_kamailio)
    saved = tmp_path / "plan.json"
    made = env.plan("--out", saved, env=variables)
    assert made.returncode == 0, made.output
    text = saved.read_text()
    assert all(value not in text for value in passwords(env).values())
    applied = env.apply_file(saved, env=variables)
    assert applied.returncode == 0, applied.output
    assert len(Platform(sqlite_kamailio).subscribers()) == 3  # secrets resolved at apply time

    platform = Platform(sqlite_kamailio)
    platform.sql("update subscriber set ha1 = 'broken' where username = '102'")
    assert env.plan("--out", saved, env=variables).returncode == 0
    platform.sql("delete from subscriber where username = '100'")  # after the review
    refused = env.apply_file(saved, env=variables)
    assert refused.returncode == 1
    assert "create sip_subscriber 100@sonnenschein.pbx.example is planned now" in refused.stderr
    assert "100" not in platform.subscribers() and platform.subscribers()["102"][1] == "broken"

def test_the_plan_cache_never_hides_a_change_on_the_target(sqlite_kamailio, sqlite_url, tmp_path):
    env, variables = kamailio_env(tmp_path, sqlite_url, sqlite_kamailio)
    variables["RECONCILER_CACHE_DIR"] = str(tmp_path / "cache")
    assert env.apply("--auto-approve", env=variables).returncode == 0
    assert env.plan("--detailed-exitcode", env=variables).returncode == 0
    Platform(sqlite_kamailio).sql("delete from dbaliases")
    second = env.plan("--detailed-exitcode", env=variables)
    assert second.returncode == 2, second.output
    assert "Plan: 3 to create" in second.stdout

@pytest.mark.parametrize("where", ["target", "state"])
def test_killed_apply_leaves_exactly_what_is_left(sqlite_kamailio, sqlite_url, tmp_path, where):
    """kill -9 after the target took a write but before the state recorded it, or before
    the write: the next plan shows what is left, a re-apply converges, nothing doubles."""
    env, variables = kamailio_env(tmp_path, sqlite_url, sqlite_kamailio)
    fault = {"target": "RECONCILER_FAULT_KILL_AFTER_TARGET_AT", "state": "RECONCILER_FAULT_KILL_AT"}
    killed = env.apply("--auto-approve", env={**variables, fault[where]: "10"})
    assert killed.returncode == -9, killed.output
    platform = Platform(sqlite_kamailio)
    left = env.plan_json(env=variables)
    if where == "target":  # action 10 reached Kamailio: it is only to be recorded
        recorded = [a for a in left["actions"] if "recorded" in a["changes"]]
        assert len(recorded) == 1 and recorded[0]["action"] == "update", left["actions"]
    assert len(left["actions"]) == 15 - 9
    again = env.apply("--auto-approve", env=variables)
    assert again.returncode == 0, again.output
    assert platform.counts() == (1, 3, 3)
    assert env.plan("--detailed-exitcode", env=variables).returncode == 0

@pytest.mark.parametrize("case", ["missing", "not-kamailio", "old-schema", "unreachable"])
def test_an_unusable_target_database_is_an_error_and_nothing_is_written(
        sqlite_url, tmp_path, case):
    path = tmp_path / "kamailio.sqlite"
    url = f"sqlite:///{path}"
    if case == "not-kamailio":
        path.write_bytes(b"")
    elif case == "old-schema":
        init_db(url)
        Platform(url).sql("update version set table_version = 6 where table_name = 'subscriber'")
    elif case == "unreachable":
        url = "postgresql://kamailio:pw-canary-4711@127.0.0.1:9/kamailio"
    env, variables = kamailio_env(tmp_path, sqlite_url, url)
    for command in (env.plan, lambda **kw: env.apply("--auto-approve", **kw)):
        result = command(env=variables)
        assert result.returncode == 1, result.output
        assert "Traceback" not in result.output and "pw-canary-4711" not in result.output
        assert "sip-kamailio/target.yaml:8:1: target 'sip-berlin' (" in result.stderr
    expected = {"missing": f"the database file {path} does not exist — create Kamailio's "
                           "database first",
                "not-kamailio": "not a Kamailio database (it has no 'version' table)",
                "old-schema": "table 'subscriber' has schema version 6, this provider writes "
                              "version 7",
                "unreachable": "cannot read the database"}[case]
    assert expected in result.stderr, result.stderr
    assert path.exists() == (case in ("not-kamailio", "old-schema"))  # never created
    if case == "old-schema":
        assert Platform(url).counts() == (0, 0, 0)
    assert Platform(sqlite_url).sql(
        "select value from reconciler_meta where key = 'serial'") == [("0",)]

@pytest.mark.slow  # about 15 s a combination
def test_phones_register_with_what_apply_wrote(kamailio_db, state_url, tmp_path):
    """Both state back ends × both Kamailio databases, with Kamailio running."""
    require_kamailio()
    env, variables = kamailio_env(tmp_path, state_url, kamailio_db)
    secret = passwords(env)
    platform = Platform(kamailio_db)
    sip = tmp_path / "sip"
    sip.mkdir()

    def registers(number: str, password: str, expect: int) -> bool:
        return register(port, number, DOMAIN, password, expect, sip).returncode == 0

    with running(kamailio_db, tmp_path / "run") as port:
        assert env.apply("--auto-approve", env=variables).returncode == 0
        for number, password in secret.items():
            assert registers(number, password, 200), number
        assert registers("100", secret["101"], 401)  # a wrong password
        platform.sql("delete from subscriber where username = '101'")
        platform.sql("update subscriber set ha1 = 'broken', ha1b = 'broken' where username = '100'")
        platform.sql(EXTRA, d=DOMAIN)
        assert registers("100", secret["100"], 401) and registers("101", secret["101"], 401)
        drift = env.plan("--detailed-exitcode", env=variables)
        assert drift.returncode == 2 and "changed on target 'sip-berlin'" in drift.stdout
        assert "unmanaged on target 'sip-berlin'" in drift.stdout
        assert env.apply("--auto-approve", "--allow-delete", env=variables).returncode == 0
        assert registers("100", secret["100"], 200) and registers("101", secret["101"], 200)
        env.edit("tenant-sonnenschein.yaml", '    did: "+49304400170-201"\n', "")
        removed = env.file("tenant-sonnenschein.yaml").read_text().split('  - number: "102"')[0]
        env.file("tenant-sonnenschein.yaml").write_text(removed)
        deleted = env.apply("--auto-approve", "--allow-delete", env=variables)
        assert deleted.returncode == 0, deleted.output
        assert registers("102", secret["102"], 401)  # a deleted extension cannot register
        assert registers("101", secret["101"], 200)
    assert platform.counts() == (1, 2, 2)
    assert env.plan("--detailed-exitcode", env=variables).returncode == 0
    platform.close()


def _bulk_tenant(env, count: int) -> None:
    """The example tenant with `count` extensions (4-digit numbers) sharing one SIP password."""
    env.edit("account.yaml", "parallel_calls: 6", f"parallel_calls: {count // 10 + 10}")
    tenant = env.file("tenant-sonnenschein.yaml")
    head = tenant.read_text().split("extensions:\n")[0]
    head = head.replace("dial_plan: 3", "dial_plan: 4").replace('main_extension: "100"',
                                                                 'main_extension: "1000"')
    rows = "".join(f'  - number: "{1000 + i}"\n    name: Platz {i}\n    area_code: "030"\n'
                   "    sip_password: {env: SIP_BULK}\n" for i in range(count))
    tenant.write_text(head + "extensions:\n" + rows)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["between target and state", "kill -9 from outside"])
def test_a_killed_apply_of_2000_extensions_converges(sqlite_kamailio, state_url, tmp_path, how):
    env, variables = kamailio_env(tmp_path, state_url, sqlite_kamailio)
    _bulk_tenant(env, 2000)
    variables["SIP_BULK"] = "Zq8-Tn4#Wp6_Lr2!"
    platform = Platform(sqlite_kamailio)
    total = len(env.plan_json(env=variables)["actions"])
    if how == "between target and state":
        killed = env.apply("--auto-approve", env={**variables,
                                                  "RECONCILER_FAULT_KILL_AFTER_TARGET_AT": "2600"})
        assert killed.returncode == -9, killed.output
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", env.name, "--auto-approve",
             "--state", state_url], cwd=env.path.parent, env={**os.environ, **variables},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while platform.counts()[1] < 700 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -9
    written = platform.counts()
    assert 0 < written[1] < 2000, written
    left = env.plan_json(env=variables)["actions"]
    assert 0 < len(left) < total
    if how == "between target and state":  # the batch Kamailio took is only to be recorded
        assert sum("recorded" in a["changes"] for a in left) == 500
    again = env.apply("--auto-approve", env=variables)
    assert again.returncode == 0, again.output
    done = sum(int(n) for n in re.findall(r"(\d+) (?:created|updated|deleted)", again.stdout))
    assert done == len(left)  # exactly what the plan said was left
    assert platform.counts() == (1, 2000, 1)
    assert platform.sql("select count(*) from (select username from subscriber "
                        "group by username, domain having count(*) > 1) d") == [(0,)]
    assert env.plan("--detailed-exitcode", env=variables).returncode == 0


def test_a_target_is_removed_only_after_its_objects(sqlite_kamailio, sqlite_url, tmp_path):
    env, variables = kamailio_env(tmp_path, sqlite_url, sqlite_kamailio)
    assert env.apply("--auto-approve", env=variables).returncode == 0
    target = env.path / "target.yaml"
    declared = target.read_text()
    target.unlink()
    refused = env.plan("--allow-delete", env=variables)
    assert refused.returncode == 1, refused.output
    assert "target 'sip-berlin' is not declared, but it holds 7 objects" in refused.output
    assert "remove the Target after that" in refused.output
    assert "tenant-sonnenschein.yaml:" in refused.output.split("target 'sip-berlin'")[0]
    assert env.apply("--auto-approve", "--allow-delete", env=variables).returncode == 1
    assert Platform(sqlite_kamailio).counts() != (0, 0, 0)  # nothing was written
    target.write_text(declared)  # declared again: nothing to do
    again = env.plan("--detailed-exitcode", env=variables)
    assert again.returncode == 0, again.output
