"""plan and apply through the real CLI, on SQLite and PostgreSQL: forbidden changes,
stale and altered saved plans, fault injection, output formats, drift, confirmation."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import ROOT
from helpers import Env, applied_templates, make_env, regex_edit  # noqa: F401 - fixtures

MWS = "main-with-subaccounts"
MWS_ACTIONS = 34  # resources of the example; checked in test_json_format
SCHEMA = ROOT / "schemas" / "plan.schema.json"


# ---------------------------------------------------------------------------
# Forbidden changes: each its own case, on an applied example
# ---------------------------------------------------------------------------

def _dial_plan(env: Env) -> None:
    env.edit("tenant-mustermensch.yaml", "dial_plan: 3", "dial_plan: 4  # changed")
    # keep the manifest valid: the extensions follow the new dial plan
    regex_edit(env.file("tenant-mustermensch.yaml"), r'number: "(\d{3})"', r'number: "\g<1>0"')


def _type(env: Env) -> None:
    env.edit("tenant-mustermensch.yaml", "type: STANDARD", "type: CUSTOM  # changed")


def _master(env: Env) -> None:
    env.edit("tenant-mustermensch-filiale.yaml", "master: mustermensch",
             "master: mustermensch-hamburg  # changed")


def _account(env: Env) -> None:
    env.edit("tenant-mustermensch-hamburg.yaml", 'account: "1298374"', 'account: "1234567"  # changed')


def _base_package(env: Env) -> None:
    env.edit("sites.yaml", "base_package: cf-mm-filiale", "base_package: cf-mm-zentrale  # changed")


EXTRA_ACCOUNTS = """---
kind: Account                    # a second main account with a sub-account
customer_number: "8000001"
name: Zweite Holding
contact: Ute Zwei
address: Zweistraße 2, Berlin
---
kind: Account
customer_number: "8000002"
parent: "8000001"
name: Zweite Holding Filiale
contact: Udo Zwei
address: Zweistraße 3, Berlin
"""


def _add_main_with_sub(env: Env) -> None:
    with env.file("accounts.yaml").open("a", encoding="utf-8") as handle:
        handle.write(EXTRA_ACCOUNTS)


def _main_to_sub(env: Env) -> None:
    # 8000001 becomes a sub-account of 1111111; its sub-account moves along (else invalid)
    env.edit("accounts.yaml", 'customer_number: "8000001"\n',
             'customer_number: "8000001"\nparent: "1111111"  # changed\n')
    env.edit("accounts.yaml", 'parent: "8000001"', 'parent: "1111111"')


def _last_admin(env: Env) -> None:
    env.edit("tenant-mustermensch.yaml", "role: admin", "role: user  # changed")


# name → (setup before apply, change, file, kind, id, field, before, after)
FORBIDDEN = {
    "tenant-dial_plan": (None, _dial_plan, "tenant-mustermensch.yaml",
                         "tenant", "mustermensch", "dial_plan", 3, 4),
    "tenant-type": (None, _type, "tenant-mustermensch.yaml",
                    "tenant", "mustermensch", "type", "STANDARD", "CUSTOM"),
    "tenant-master": (None, _master, "tenant-mustermensch-filiale.yaml",
                      "tenant", "mustermensch-filiale", "master", "mustermensch",
                      "mustermensch-hamburg"),
    "tenant-account": (None, _account, "tenant-mustermensch-hamburg.yaml",
                       "tenant", "mustermensch-hamburg", "account", "1298374", "1234567"),
    "site-base_package": (None, _base_package, "sites.yaml",
                          "site", "mm-berlin-brueckenstrasse", "base_package", "cf-mm-filiale",
                          "cf-mm-zentrale"),
    "main-account-to-sub-account": (_add_main_with_sub, _main_to_sub, "accounts.yaml",
                                    "account", "8000001", "parent", None, "1111111"),
    "last-admin": (None, _last_admin, "tenant-mustermensch.yaml",
                   "tenant", "mustermensch", "admins", ["it@mustermensch.example"], []),
}


def _shown(value) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def assert_rejected_plan_is_not_saved(env: Env, tmp_path: Path):
    """`plan --out` of a rejected plan: exit 1, the plan shown, no file written."""
    out = tmp_path / "rejected-plan.json"
    result = env.plan("--out", out)
    assert result.returncode == 1, result.output
    assert not out.exists()
    assert "Nothing can be applied" in result.stdout
    return result


def assert_apply_refused(env: Env) -> None:
    """`apply ENV --auto-approve` of a rejected plan: exit 1, nothing applied.

    (The caller checks the state serial afterwards, with the plan JSON it needs anyway.)
    """
    applied = env.apply("--auto-approve")
    assert applied.returncode == 1, applied.output
    assert "Apply complete" not in applied.output and "Nothing can be applied" in applied.stdout


def _forbidden_setup(make_env, setup) -> tuple[Env, int]:
    if setup is None:
        return make_env(MWS, applied=True), MWS_ACTIONS
    env = make_env(MWS)
    setup(env)
    applied = env.apply("--auto-approve")
    assert applied.returncode == 0, applied.output
    return env, int(re.search(r"State serial (\d+)", applied.stdout)[1])


@pytest.mark.parametrize("case", list(FORBIDDEN))
def test_forbidden_change_is_rejected(case, make_env, tmp_path):
    setup, change, file, kind, ident, field, before, after = FORBIDDEN[case]
    env, serial = _forbidden_setup(make_env, setup)
    change(env)
    source = env.source_of(file, "# changed")

    result = assert_rejected_plan_is_not_saved(env, tmp_path)
    lines = [line for line in result.stdout.splitlines() if line.startswith("Forbidden: ")]
    assert len(lines) == 1, result.stdout
    line = lines[0]
    assert line.startswith(f"Forbidden: {source}: {kind} {ident}: {field} "), line
    assert f"{_shown(before)} → {_shown(after)}" in line
    assert " — " in line and "; instead: " in line
    reason, instead = line.split(" — ", 1)[1].split("; instead: ")
    assert reason.strip() and instead.strip()

    assert_apply_refused(env)
    data = env.plan_json(expect=(1,))
    assert data["state_serial"] == serial, "the refused apply changed the state"
    assert data["rejected"] is True
    assert data["forbidden"] == [{
        "kind": kind, "id": ident, "field": field, "before": before, "after": after,
        "reason": reason, "instead": instead, "source": source}]


def test_rejected_plan_leaves_no_earlier_plan_file_behind(make_env, tmp_path):
    env = make_env(MWS, applied=True)
    out = tmp_path / "plan.json"
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    assert env.plan("--out", out).returncode == 0 and out.exists()
    _type(env)
    assert env.plan("--out", out).returncode == 1
    assert not out.exists(), "an applicable plan file survives the rejected plan"


def test_dial_plan_change_is_named_even_when_extensions_no_longer_fit(make_env):
    """Changing only `dial_plan` makes every extension invalid; the root cause is still named."""
    env = make_env(MWS, applied=True)
    env.edit("tenant-mustermensch.yaml", "dial_plan: 3", "dial_plan: 4")
    result = env.plan()
    assert result.returncode == 1
    source = env.source_of("tenant-mustermensch.yaml", "dial_plan: 4")
    lines = result.stdout.splitlines()
    root = lines.index(next(line for line in lines if line.startswith("Forbidden: ")))
    assert lines[root].startswith(f"Forbidden: {source}: tenant mustermensch: dial_plan 3 → 4 — ")
    follow_ons = [line for line in lines if line.startswith("    ↳ ")]
    assert follow_ons and all("has 3 digits" in line for line in follow_ons), result.stdout
    assert lines[root + 1] == f"  {len(follow_ons)} errors follow from it:"
    assert not any(line.startswith("Error: ") for line in lines), "grouped, not repeated"
    assert "Plan rejected: 1 forbidden or refused change (and " in result.stdout
    data = env.plan_json(expect=(1,))
    assert data["errors"] == [] and len(data["forbidden"]) == 1
    assert len(data["forbidden"][0]["follow_ons"]) == len(follow_ons)
    github = env.plan("--format", "github")
    errors = [line for line in github.stdout.splitlines() if line.startswith("::error")]
    if len(errors) > 10:  # a summary leads, then the root cause
        assert "title=reconciler%3A " in errors[0] and "forbidden changes (root causes)" in errors[0]
        errors = errors[1:]
    assert "title=Forbidden change::tenant mustermensch: dial_plan 3 → 4" in errors[0]
    assert all("title=Follows from the forbidden change above::" in e for e in errors[1:])


def test_main_account_with_sub_account_left_out_of_the_manifests(make_env, tmp_path):
    """The sub-account still exists on the platform although no manifest declares it any more."""
    env = make_env(MWS)
    _add_main_with_sub(env)
    assert env.apply("--auto-approve").returncode == 0
    env.edit("accounts.yaml", 'customer_number: "8000002"\nparent: "8000001"',
             'customer_number: "8000003"')  # the sub-account is gone, a main account instead
    env.edit("accounts.yaml", 'customer_number: "8000001"\n',
             'customer_number: "8000001"\nparent: "1111111"  # changed\n')
    result = assert_rejected_plan_is_not_saved(env, tmp_path)
    source = env.source_of("accounts.yaml", "# changed")
    assert f"Forbidden: {source}: account 8000001: parent null → \"1111111\"" in result.stdout
    assert "(8000002)" in result.stdout
    assert_apply_refused(env)
    assert env.serial() == 36


def test_several_forbidden_changes_are_listed_in_one_run(make_env, tmp_path):
    env = make_env(MWS)
    _add_main_with_sub(env)
    assert env.apply("--auto-approve").returncode == 0
    for case in ("tenant-type", "tenant-master", "tenant-account", "site-base_package",
                 "main-account-to-sub-account"):
        FORBIDDEN[case][1](env)
    # the last admin of the branch tenant; type of the head office is already changed
    env.edit("tenant-mustermensch-hamburg.yaml", "role: admin", "role: user", count=2)

    result = assert_rejected_plan_is_not_saved(env, tmp_path)
    forbidden = [line for line in result.stdout.splitlines() if line.startswith("Forbidden: ")]
    expected = {("tenant", "mustermensch", "type"), ("tenant", "mustermensch-filiale", "master"),
                ("tenant", "mustermensch-hamburg", "account"),
                ("site", "mm-berlin-brueckenstrasse", "base_package"),
                ("account", "8000001", "parent"), ("tenant", "mustermensch-hamburg", "admins")}
    assert len(forbidden) == len(expected), result.stdout
    # a CUSTOM tenant needs a master: the type change also leaves the manifest invalid
    assert "CUSTOM tenant 'mustermensch' has no master tenant" in result.stdout
    assert "Plan failed: 1 error, 6 forbidden changes" in result.stdout
    assert_apply_refused(env)
    data = env.plan_json(expect=(1,))
    assert data["state_serial"] == 36
    assert {(f["kind"], f["id"], f["field"]) for f in data["forbidden"]} == expected
    for item in data["forbidden"]:
        assert item["source"] and item["reason"] and item["instead"], item
        assert item["source"] in result.stdout


# ---------------------------------------------------------------------------
# Saved plans: stale, applied twice, altered
# ---------------------------------------------------------------------------

def test_stale_plan_is_refused_and_names_what_changed(make_env, tmp_path):
    env = make_env(MWS, applied=True)
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    plan_file = tmp_path / "plan.json"
    assert env.plan("--out", plan_file).returncode == 0
    # meanwhile someone applies another change in the same scope
    env.edit("tenant-mustermensch-filiale.yaml", "name: Kasse 1\n", "name: Kasse Eins\n")
    assert env.apply("--auto-approve").returncode == 0

    result = env.apply_file(plan_file)
    assert result.returncode == 1, result.output
    # The other apply already did this plan's change: nothing is left of it.
    assert "no longer matches" in result.stderr
    assert "update extension mustermensch/130 is no longer planned" in result.stderr
    assert "mustermensch-filiale/210" not in result.stderr  # not this plan's business
    assert "Apply complete" not in result.output
    assert env.serial() == 36


def test_plan_is_not_stale_after_changes_in_another_scope(make_env, tmp_path):
    env = make_env(MWS, applied=True)
    other = make_env("comuniq-one-4digit")
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    plan_file = tmp_path / "plan.json"
    assert env.plan("--out", plan_file).returncode == 0
    assert other.apply("--auto-approve").returncode == 0
    result = env.apply_file(plan_file)
    assert result.returncode == 0, result.output
    assert "0 created, 1 updated, 0 deleted" in result.stdout


def test_plan_is_stale_when_another_environment_took_its_identity(make_env, tmp_path):
    """Identities are global: a base package created meanwhile under a foreign account."""
    env = make_env("comuniq-one-4digit")
    plan_file = tmp_path / "plan.json"
    assert env.plan("--out", plan_file).returncode == 0
    rival = Env(tmp_path / "rival", env.state)
    rival.path.mkdir()
    rival.file("rival.yaml").write_text(
        'kind: Account\ncustomer_number: "9100001"\nname: Rival\ncontact: R\naddress: R\n'
        '---\nkind: BasePackage\nid: cf-lindner\naccount: "9100001"\nproduct: CompanyFlex\n'
        'parallel_calls: 2\n', encoding="utf-8")
    assert rival.apply("--auto-approve").returncode == 0
    result = env.apply_file(plan_file)
    assert result.returncode == 1, result.output
    assert ("BasePackage 'cf-lindner' already exists, owned by environment 'rival' "
            "(account 9100001)") in result.stderr
    assert env.serial() == 2  # nothing of the plan was written


def test_saved_plan_applied_twice_is_stale_the_second_time(make_env, tmp_path):
    env = make_env(MWS, applied=True)
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    plan_file = tmp_path / "plan.json"
    assert env.plan("--out", plan_file).returncode == 0
    first = env.apply_file(plan_file)
    assert first.returncode == 0, first.output
    second = env.apply_file(plan_file)
    assert second.returncode == 1, second.output
    assert "update extension mustermensch/130 is no longer planned" in second.stderr
    assert env.serial() == 35


def test_altered_plan_file_is_refused_naming_the_difference(make_env, tmp_path):
    env = make_env(MWS, applied=True)
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    plan_file = tmp_path / "plan.json"
    assert env.plan("--out", plan_file).returncode == 0
    saved = plan_file.read_text(encoding="utf-8")
    assert saved.count('"Lager Nord"') == 2  # in the changes and in the record
    plan_file.write_text(saved.replace('"Lager Nord"', '"Lager Süd"'), encoding="utf-8")
    result = env.apply_file(plan_file)
    assert result.returncode == 1, result.output
    assert "update extension mustermensch/130 differs in name" in result.stderr
    # one byte is enough: the record only
    data = json.loads(saved)
    data["actions"][0]["record"]["name"] = "Lager Nore"
    plan_file.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    result = env.apply_file(plan_file)
    assert result.returncode == 1, result.output
    assert "update extension mustermensch/130 differs in name" in result.stderr
    assert env.serial() == 34
    # The untouched file still applies: a saved plan is a claim that is checked, not trusted.
    plan_file.write_text(saved, encoding="utf-8")
    assert env.apply_file(plan_file).returncode == 0
    assert env.serial() == 35


# ---------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------

def test_failure_mid_apply_reports_and_leaves_exactly_the_rest(make_env):
    env = make_env(MWS)
    total = MWS_ACTIONS
    k = total // 2
    result = env.apply("--auto-approve", env={"RECONCILER_FAULT_FAIL_AT": str(k)})
    assert result.returncode == 1, result.output
    assert f"injected failure before action {k}" in result.stderr
    assert f"done: {k - 1} ({k - 1} created, 0 updated, 0 deleted); failed: 1; " \
           f"not started: {total - k}" in result.stderr

    left = env.plan_json(expect=(0,))
    assert left["state_serial"] == k - 1
    assert len(left["actions"]) == total - (k - 1)
    assert left["summary"] == {"create": total - (k - 1), "update": 0, "delete": 0,
                               "unchanged": k - 1, "left_alone": 0}
    again = env.apply("--auto-approve")
    assert again.returncode == 0, again.output
    assert f"{total - (k - 1)} created" in again.stdout
    final = env.plan("--detailed-exitcode")
    assert final.returncode == 0 and "No changes." in final.stdout, final.output


def test_failure_inside_a_batch_rolls_back_the_whole_batch(make_env):
    env = make_env(MWS)
    total = MWS_ACTIONS
    batch, k = 5, 13  # actions 11–15 are one transaction; it fails before action 13
    result = env.apply("--auto-approve", env={"RECONCILER_FAULT_FAIL_AT": str(k),
                                              "RECONCILER_APPLY_BATCH": str(batch)})
    assert result.returncode == 1, result.output
    done = (k - 1) // batch * batch
    assert f"done: {done} (" in result.stderr and f"not started: {total - done - 1}" in result.stderr
    left = env.plan_json(expect=(0,))
    assert left["state_serial"] == done and len(left["actions"]) == total - done
    assert env.apply("--auto-approve").returncode == 0
    assert "No changes." in env.plan().stdout


def test_killed_apply_keeps_what_was_committed(make_env):
    env = make_env(MWS)
    total = MWS_ACTIONS
    k = 10
    killed = env.apply("--auto-approve", env={"RECONCILER_FAULT_KILL_AT": str(k)})
    assert killed.returncode == -9, killed.output
    left = env.plan_json(expect=(0,))
    assert left["state_serial"] == k - 1 and len(left["actions"]) == total - (k - 1)
    # the lock died with the process
    assert env.apply("--auto-approve").returncode == 0
    assert "No changes." in env.plan().stdout


# ---------------------------------------------------------------------------
# Output formats
# ---------------------------------------------------------------------------

def test_json_format(make_env):
    env = make_env(MWS)
    data = env.plan_json(expect=(0,))
    assert data["format_version"] == 1
    assert data["state_serial"] == 0
    assert data["summary"] == {"create": MWS_ACTIONS, "update": 0, "delete": 0, "unchanged": 0,
                               "left_alone": 0}
    assert data["rejected"] is False and "forbidden" not in data
    assert isinstance(data["warnings"], list)
    for action in data["actions"]:
        assert {"action", "kind", "id", "source", "changes"} <= set(action), action
        assert action["action"] == "create"
        assert ":" in action["source"] and action["source"].startswith(f"{MWS}/")
        for change in action["changes"].values():
            assert set(change) >= {"before", "after"} and change["before"] is None
        assert "record" not in action and "secret_hashes" not in action
    kinds = [a["kind"] for a in data["actions"]]
    order = ["account", "base_package", "site", "tenant", "user", "extension"]
    assert kinds == sorted(kinds, key=order.index), "actions are in execution order"
    tenants = [a["id"] for a in data["actions"] if a["kind"] == "tenant"]
    assert tenants.index("mustermensch") < tenants.index("mustermensch-filiale"), "masters first"

    assert env.apply("--auto-approve").returncode == 0
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    data = env.plan_json(expect=(0,))
    assert data["state_serial"] == 34
    assert data["summary"] == {"create": 0, "update": 1, "delete": 0, "unchanged": 33,
                               "left_alone": 0}
    [action] = data["actions"]
    assert action["action"] == "update" and action["kind"] == "extension"
    assert action["id"] == "mustermensch/130"
    assert action["source"] == env.source_of("tenant-mustermensch.yaml", '- number: "130"')
    assert action["changes"] == {"name": {"before": "Lager", "after": "Lager Nord"}}


def _plan_documents(env: Env, tmp_path: Path) -> list[tuple[str, dict]]:
    """Plan JSON of several kinds: create, update, rejected, with deletes, a saved plan file."""
    docs = [("create", env.plan_json(expect=(0,)))]
    assert env.apply("--auto-approve").returncode == 0
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    env.edit("tenant-mustermensch-hamburg.yaml", 'number: "320"', 'number: "321"')
    docs.append(("update+delete", env.plan_json("--allow-delete", expect=(0,))))
    docs.append(("refused", env.plan_json("--allow-delete", "--max-delete-percent", "1",
                                          expect=(1,))))
    saved = tmp_path / "saved.json"
    assert env.plan("--allow-delete", "--out", saved).returncode == 0
    docs.append(("saved", json.loads(saved.read_text(encoding="utf-8"))))
    _type(env)
    docs.append(("forbidden", env.plan_json(expect=(1,))))
    env.edit("tenant-mustermensch.yaml", "area_code: \"030\"", "area_code: \"30\"")
    docs.append(("invalid", env.plan_json(expect=(1,))))
    return docs


def test_json_validates_against_the_schema(make_env, tmp_path):
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA.relative_to(ROOT)} is not written yet")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for label, doc in _plan_documents(make_env(MWS), tmp_path):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_markdown_format(make_env):
    env = make_env(MWS)
    result = env.plan("--format", "markdown")
    assert result.returncode == 0, result.output
    md = result.stdout
    lines = md.splitlines()
    assert lines[0] == "<!-- reconciler-plan -->"  # the sticky comment's marker
    table = lines.index("| Create | Update | Delete | Unchanged | Left alone |")
    assert table < 8 and not any("<details" in line for line in lines[:table])
    assert lines[table + 2] == "| 34 | 0 | 0 | 0 | 0 |"
    # one section per customer (account), folded: the plan is not small
    summaries = [line for line in lines if line.startswith("<details><summary>Customer ")]
    assert [re.search(r"<code>(\d+)</code>", line)[1] for line in summaries] == [
        "1111111", "1234567", "1298374"], summaries
    assert "<details open>" not in md
    assert md.count("<details") == md.count("</details>")

    assert env.apply("--auto-approve").returncode == 0
    _type(env)
    rejected = env.plan("--format", "markdown")
    assert rejected.returncode == 1
    assert "Forbidden or refused changes — fix these first" in rejected.stdout
    assert ("1. **Forbidden change:** `main-with-subaccounts/tenant-mustermensch.yaml:"
            in rejected.stdout)
    assert 'tenant mustermensch: type "STANDARD" → "CUSTOM"' in rejected.stdout


def test_detailed_exitcode(make_env):
    env = make_env(MWS)
    changes = env.plan("--detailed-exitcode")
    assert changes.returncode == 2, changes.output
    assert env.plan().returncode == 0  # without the flag, changes are success
    assert env.apply("--auto-approve").returncode == 0
    none = env.plan("--detailed-exitcode")
    assert none.returncode == 0 and "No changes." in none.stdout
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    assert env.plan("--detailed-exitcode").returncode == 2
    env.edit("tenant-mustermensch.yaml", 'area_code: "030"', 'area_code: "30"')
    error = env.plan("--detailed-exitcode")
    assert error.returncode == 1 and "Plan failed" in error.stdout
    _type(env)
    env.edit("tenant-mustermensch.yaml", 'area_code: "30"', 'area_code: "030"')
    assert env.plan("--detailed-exitcode").returncode == 1  # rejected


def _set_attr_outside(state_url: str, kind: str, ident: str, field: str, value) -> None:
    """What someone clicking in the platform's portal does: change a record behind our back."""
    if state_url.startswith("sqlite:///"):
        conn = sqlite3.connect(state_url.removeprefix("sqlite:///"))
        try:
            with conn:
                where = "WHERE kind = ? AND id = ?"
                raw = conn.execute(f"SELECT attrs FROM reconciler_resources {where}",
                                   (kind, ident)).fetchone()[0]
                attrs = {**json.loads(raw), field: value}
                conn.execute(f"UPDATE reconciler_resources SET attrs = ? {where}",
                             (json.dumps(attrs), kind, ident))
        finally:
            conn.close()
        return
    engine = create_engine("postgresql+psycopg://" + state_url.split("://", 1)[1])
    where = "WHERE kind = :k AND id = :i"
    with engine.begin() as conn:
        raw = conn.execute(text(f"SELECT attrs FROM reconciler_resources {where}"),
                           {"k": kind, "i": ident}).scalar_one()
        attrs = {**json.loads(raw), field: value}
        conn.execute(text(f"UPDATE reconciler_resources SET attrs = :a {where}"),
                     {"a": json.dumps(attrs), "k": kind, "i": ident})
    engine.dispose()


def test_drift_is_reported_as_changed_outside_reconciler(make_env, state_url):
    env = make_env(MWS, applied=True)
    _set_attr_outside(state_url, "extension", "mustermensch/130", "name", "Lager (Portal)")
    result = env.plan("--detailed-exitcode")
    assert result.returncode == 2, result.output
    assert ('name: "Lager (Portal)" → "Lager"  (changed outside reconciler; '
            'last applied "Lager")') in result.stdout
    [action] = env.plan_json()["actions"]
    assert action["changes"] == {"name": {"before": "Lager (Portal)", "after": "Lager",
                                          "drift": True, "last_applied": "Lager"}}
    markdown = env.plan("--format", "markdown").stdout
    assert "changed outside reconciler" in markdown
    assert env.apply("--auto-approve").returncode == 0
    assert "No changes." in env.plan().stdout


# ---------------------------------------------------------------------------
# Confirmation
# ---------------------------------------------------------------------------

def test_apply_env_without_terminal_needs_auto_approve(make_env):
    env = make_env(MWS)
    result = env.apply(input="")  # stdin is a pipe, not a terminal
    assert result.returncode == 1, result.output
    assert "--auto-approve" in result.stderr
    assert "Apply complete" not in result.output
    # nothing was applied: all of it is still to do
    approved = env.apply("--auto-approve")
    assert f"{MWS_ACTIONS} created" in approved.stdout, approved.output
    # same for a change on an applied environment; 'y' on a pipe is not a confirmation
    env.edit("tenant-mustermensch.yaml", "name: Lager\n", "name: Lager Nord\n")
    result = env.apply(input="y\n")
    assert result.returncode == 1 and "--auto-approve" in result.stderr, result.output
    assert env.serial() == 34
