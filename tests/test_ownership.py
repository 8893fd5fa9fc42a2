"""Two environments on one state, through the CLI on SQLite and PostgreSQL (issue 11):
ownership and takeover (`--adopt`), read-only references (`ref: true`), deletes that
never cross environments or leave dangling references, numbers unique across the
state, and a saved plan raced by another environment (main → sub → sub)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import run_cli
from test_state_integrity import small_env

PASSWORD = "Vq7#tLm2!zRx9pK-ownership"


def cli(*args, cwd: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return run_cli(*args, cwd=cwd, env={**env, "INTEGRITY_PW": PASSWORD,
                                        "PARTNER_PW": PASSWORD + "-p"})


def ok(result):
    assert result.returncode == 0, result.output
    return result


PARTNER_ACCOUNT = """\
kind: Account
customer_number: "7400000"
name: Partner AG
contact: Pia Partner
address: Partnerweg 1, Berlin
"""

PARTNER_TENANT = """\
kind: Tenant
name: partner-root
account: "7400000"
type: STANDARD
version: BASIC
dial_plan: 3
sites: [partner-site]
users:
  - email: admin@partner.example
    name: Partner Admin
    role: admin
    password: {env: PARTNER_PW}
"""

PARTNER_SITE = """\
kind: BasePackage
id: cf-partner
account: "7400000"
product: CompanyFlex
parallel_calls: 10
---
kind: Site
id: partner-site
base_package: cf-partner
usage: cloud_pbx
ip_lines: 1
number_blocks:
  - {prefix: "+49305559000", from: "0", to: "99"}
"""


def partner_env(root: Path) -> Path:
    env = root / "partner"
    env.mkdir(parents=True)
    (env / "partner.yaml").write_text(
        PARTNER_ACCOUNT + "---\n" + PARTNER_SITE + "---\n" + PARTNER_TENANT, encoding="utf-8")
    return env


def customer_env(root: Path, ref: bool = True) -> Path:
    """A customer whose account is a sub-account of the partner's, and whose tenant has the
    partner's tenant as master: it declares the partner's account, package, site and tenant
    as references."""
    env = small_env(root, "kunde", "7400001", "+49305559100")
    marker = "ref: true\n" if ref else ""
    (env / "partner.yaml").write_text(
        PARTNER_ACCOUNT + marker + "---\n"
        + PARTNER_SITE.replace("id: cf-partner\n", "id: cf-partner\n" + marker)
        .replace("id: partner-site\n", "id: partner-site\n" + marker)
        + "---\n" + PARTNER_TENANT.replace("name: partner-root\n", "name: partner-root\n" + marker),
        encoding="utf-8")
    account = env / "account.yaml"
    account.write_text(account.read_text().replace(
        'customer_number: "7400001"\n', 'customer_number: "7400001"\nparent: "7400000"\n', 1))
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("version: BASIC\n",
                                                 "version: BASIC\nmaster: partner-root\n"))
    return env


def rows(url: str) -> dict[tuple[str, str], str | None]:
    """(kind, id) → owner, read from the state tables."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return {(k, i): o for k, i, o in conn.execute(text(
                "SELECT kind, id, owner FROM reconciler_resources"))}
    finally:
        engine.dispose()


def test_objects_are_owned_by_the_environment_that_created_them(state_url, tmp_path):
    env = small_env(tmp_path)
    ok(cli("apply", "acme", "--auto-approve", "--state", state_url, cwd=tmp_path))
    owners = rows(state_url)
    assert {owners[k] for k in owners if k[0] in ("account", "base_package", "site", "tenant")} \
        == {"acme"}
    assert {owners[k] for k in owners if k[0] in ("user", "extension")} == {None}  # the tenant's
    planned = json.loads(cli("plan", "acme", "--format", "json", "--state", state_url,
                             cwd=tmp_path).stdout)
    assert planned["owner"] == "acme"
    assert env.exists()


def test_another_environment_gets_an_error_naming_the_owner_and_adopts_explicitly(state_url,
                                                                                 tmp_path):
    small_env(tmp_path / "one")
    ok(cli("apply", "acme", "--auto-approve", "--state", state_url, cwd=tmp_path / "one"))
    rival = small_env(tmp_path / "two", name="acme")  # the same objects, another directory
    (tmp_path / "two" / "acme").rename(tmp_path / "two" / "acme-copy")
    refused = cli("plan", "acme-copy", "--state", state_url, cwd=tmp_path / "two")
    assert refused.returncode == 1
    assert ("acme-copy/account.yaml:1:1: Account '7300001' already exists, owned by "
            "environment 'acme' (account 7300001)") in refused.output
    assert "declare it with 'ref: true'" in refused.output and "--adopt" in refused.output
    adopted = ok(cli("plan", "acme-copy", "--adopt", "--format", "json", "--state", state_url,
                     cwd=tmp_path / "two"))
    plan = json.loads(adopted.stdout)
    owners = {(a["kind"], a["id"]): a["changes"]["owner"] for a in plan["actions"]}
    assert owners == {(kind, ident): {"before": "acme", "after": "acme-copy"} for kind, ident in
                      [("account", "7300001"), ("base_package", "cf-acme"), ("site", "site-acme"),
                       ("tenant", "acme")]}
    ok(cli("apply", "acme-copy", "--adopt", "--auto-approve", "--state", state_url,
           cwd=tmp_path / "two"))
    back = cli("plan", "acme", "--state", state_url, cwd=tmp_path / "one")
    assert "owned by environment 'acme-copy'" in back.output and back.returncode == 1
    assert rival is not None


def test_an_account_declared_in_two_environments_no_longer_flips(state_url, tmp_path):
    small_env(tmp_path / "one")
    ok(cli("apply", "acme", "--auto-approve", "--state", state_url, cwd=tmp_path / "one"))
    other = small_env(tmp_path / "two", name="other", number="7300001", prefix="+49305550700")
    account = other / "account.yaml"
    account.write_text(account.read_text().replace("name: other GmbH", "name: Flip GmbH"))
    result = cli("apply", "other", "--auto-approve", "--state", state_url, cwd=tmp_path / "two")
    assert result.returncode == 1
    assert "Account '7300001' already exists, owned by environment 'acme'" in result.output


def test_references_are_read_never_written_or_deleted(state_url, tmp_path):
    partner_env(tmp_path)
    ok(cli("apply", "partner", "--auto-approve", "--state", state_url, cwd=tmp_path))
    before = rows(state_url)
    customer_env(tmp_path)
    applied = ok(cli("apply", "kunde", "--auto-approve", "--allow-delete", "--force",
                     "--state", state_url, cwd=tmp_path))
    for label in ("account 7400000", "base_package cf-partner", "site partner-site",
                  "tenant partner-root", "user partner-root/"):
        assert label not in applied.stdout, applied.stdout
    after = rows(state_url)
    assert {k: v for k, v in after.items() if k in before} == before
    assert after[("account", "7400001")] == "kunde"
    again = ok(cli("plan", "kunde", "--allow-delete", "--force", "--detailed-exitcode",
                   "--state", state_url, cwd=tmp_path))
    assert "No changes." in again.stdout


def test_a_reference_must_exist(state_url, tmp_path):
    customer_env(tmp_path)
    result = cli("plan", "kunde", "--state", state_url, cwd=tmp_path)
    assert result.returncode == 1
    assert "Tenant 'partner-root' is declared with 'ref: true' but is not in the state" \
        in result.output


def test_following_the_hint_cannot_take_over_the_partner(state_url, tmp_path):
    """The issue's case: the partner's account declared (without ref) in a customer's
    environment, then --allow-delete --force: an error naming the owner, nothing deleted."""
    partner_env(tmp_path)
    ok(cli("apply", "partner", "--auto-approve", "--state", state_url, cwd=tmp_path))
    customer_env(tmp_path, ref=False)
    result = cli("apply", "kunde", "--auto-approve", "--allow-delete", "--force", "--state",
                 state_url, cwd=tmp_path)
    assert result.returncode == 1
    for label in ("Account '7400000'", "Tenant 'partner-root'", "Site 'partner-site'"):
        assert f"{label} already exists, owned by environment 'partner'" in result.output
    assert ("tenant", "partner-root") in rows(state_url)


def test_a_delete_that_leaves_a_dangling_reference_is_refused(state_url, tmp_path):
    partner = partner_env(tmp_path)
    ok(cli("apply", "partner", "--auto-approve", "--state", state_url, cwd=tmp_path))
    customer_env(tmp_path)
    ok(cli("apply", "kunde", "--auto-approve", "--state", state_url, cwd=tmp_path))
    (partner / "partner.yaml").write_text(PARTNER_ACCOUNT + "---\n" + PARTNER_SITE,
                                          encoding="utf-8")
    result = cli("plan", "partner", "--allow-delete", "--force", "--state", state_url,
                 cwd=tmp_path)
    assert result.returncode == 1
    assert ("deleting Tenant 'partner-root' would leave Tenant 'kunde' (owned by environment "
            "'kunde') pointing at nothing through 'master'") in result.output
    assert ("tenant", "partner-root") in rows(state_url)


def test_every_kind_of_pointer_counts_for_a_dangling_delete():
    from reconciler.diff import Action
    from reconciler.ownership import dangling
    from reconciler.state.base import StateResource

    platform = {r.key: r for r in [
        StateResource("account", "1", "1", {}, owner="a"),
        StateResource("account", "2", "2", {"parent": "1"}, owner="b"),
        StateResource("base_package", "p", "1", {"account": "1"}, owner="a"),
        StateResource("site", "s", "1", {"base_package": "p"}, owner="a"),
        StateResource("tenant", "t", "2", {"account": "2", "sites": ["s"]}, owner="b"),
    ]}
    going = [Action("delete", kind, ident, "1", None, {}, None)
             for kind, ident in [("account", "1"), ("base_package", "p"), ("site", "s")]]
    assert dangling(going, platform) == [
        "deleting Account '1' would leave Account '2' (owned by environment 'b') pointing at "
        "nothing through 'parent' — change or delete that one first",
        "deleting Site 's' would leave Tenant 't' (owned by environment 'b') pointing at "
        "nothing through 'sites' — change or delete that one first",
    ]


def test_numbers_are_unique_across_the_state(state_url, tmp_path):
    small_env(tmp_path, "alpha", "7300021", "+49305550400")
    ok(cli("apply", "alpha", "--auto-approve", "--state", state_url, cwd=tmp_path))
    beta = small_env(tmp_path, "beta", "7300022", "+49305550400")
    result = cli("plan", "beta", "--state", state_url, cwd=tmp_path)
    assert result.returncode == 1
    assert ("beta/account.yaml:19:5: number block +49305550400-0…99 of site 'site-beta' "
            "(block 1) overlaps block +49305550400-0…99 of site 'site-alpha' of environment "
            "'alpha', account 7300021") in result.output
    assert "the main number +49305550400-0 of tenant 'beta' is already the main number of " \
        "tenant 'alpha' of environment 'alpha'" in result.output
    sites = beta / "account.yaml"  # overlaps in part: +49305550400-50…99
    sites.write_text(sites.read_text().replace('{prefix: "+49305550400", from: "0", to: "99"}',
                                               '{prefix: "+49305550400", from: "50", to: "149"}'))
    tenant = beta / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace('main_number: "+49305550400-0"',
                                                 'main_number: "+49305550400-120"'))
    partial = cli("plan", "beta", "--state", state_url, cwd=tmp_path)
    assert "overlaps block +49305550400-0…99 of site 'site-alpha'" in partial.output


def test_a_saved_plan_raced_by_another_environment_cannot_make_sub_sub(state_url, tmp_path):
    """holding owns 7500000; filiale saves a plan for sub-account 7500001 under it; then
    holding makes 7500000 a sub-account of 7500009. Applying filiale's plan would give
    7500009 → 7500000 → 7500001: refused, and the state is unchanged."""
    holding = tmp_path / "holding"
    holding.mkdir()
    main = """kind: Account\ncustomer_number: "7500000"\nname: Holding\n"""
    (holding / "a.yaml").write_text(main, encoding="utf-8")
    ok(cli("apply", "holding", "--auto-approve", "--state", state_url, cwd=tmp_path))
    filiale = tmp_path / "filiale"
    filiale.mkdir()
    (filiale / "a.yaml").write_text(main + "ref: true\n---\nkind: Account\n"
                                    'customer_number: "7500001"\nparent: "7500000"\n'
                                    "name: Filiale\n", encoding="utf-8")
    ok(cli("plan", "filiale", "--out", "filiale.json", "--state", state_url, cwd=tmp_path))
    (holding / "a.yaml").write_text(main + 'parent: "7500009"\n---\nkind: Account\n'
                                    'customer_number: "7500009"\nname: Konzern\n', encoding="utf-8")
    ok(cli("apply", "holding", "--auto-approve", "--state", state_url, cwd=tmp_path))
    before = rows(state_url)
    result = cli("apply", "filiale.json", "--state", state_url, cwd=tmp_path)
    assert result.returncode == 1
    assert "parent account 7500000 of account 7500001 is a sub-account of 7500009 in the " \
        "state" in result.output
    assert rows(state_url) == before


def _as_v2(url: str) -> None:
    """Turn a v3 state into a v2 one: no owner column, no state id."""
    statements = ["ALTER TABLE reconciler_resources DROP COLUMN owner",
                  "DELETE FROM reconciler_meta WHERE key = 'state_id'",
                  "UPDATE reconciler_meta SET value = '2' WHERE key = 'schema_version'"]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_a_v2_state_is_migrated_and_its_objects_are_adopted_explicitly(state_url, tmp_path):
    small_env(tmp_path)
    ok(cli("apply", "acme", "--auto-approve", "--state", state_url, cwd=tmp_path))
    _as_v2(state_url)
    refused = cli("plan", "acme", "--state", state_url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "Account '7300001' already exists in the state, and no environment owns it yet" \
        in refused.output
    assert set(rows(state_url).values()) == {None}
    ok(cli("apply", "acme", "--adopt", "--auto-approve", "--state", state_url, cwd=tmp_path))
    clean = ok(cli("plan", "acme", "--detailed-exitcode", "--state", state_url, cwd=tmp_path))
    assert "No changes." in clean.stdout


@pytest.mark.parametrize("where", ["root", "subfolder"])
def test_the_environment_name_is_relative_to_the_repository_root(tmp_path, where):
    import subprocess

    repo = tmp_path / "repo"
    small_env(repo / "customers")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    cwd = repo if where == "root" else repo / "customers"
    env = "customers/acme" if where == "root" else "acme"
    planned = ok(cli("plan", env, "--format", "json", cwd=cwd))
    assert json.loads(planned.stdout)["owner"] == "customers/acme"
