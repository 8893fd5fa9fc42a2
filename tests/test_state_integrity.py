"""The state is never mixed up: URLs that do not exist, copies and restored backups,
rows that vanished, symlinks, lock files and full disks (issue 11, "State mix-ups").

Everything runs the real CLI in a subprocess; SQLite and PostgreSQL where both apply.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import new_sqlite_state, run_cli
from reconciler.diagnostics import ReconcilerError
from reconciler.state.base import StateConflict, Write
from reconciler.state.sql import open_store

PASSWORD = "Vq7#tLm2!zRx9pK-integrity"


def small_env(root: Path, name: str = "acme", number: str = "7300001",
              prefix: str = "+49305550100", extensions: int = 3) -> Path:
    """A customer environment with one account, package, site and tenant."""
    env = root / name
    env.mkdir(parents=True)
    (env / "account.yaml").write_text(f"""\
kind: Account
customer_number: "{number}"
name: {name} GmbH
contact: Tester
address: Teststraße 1, Berlin
---
kind: BasePackage
id: cf-{name}
account: "{number}"
product: CompanyFlex
parallel_calls: 10
---
kind: Site
id: site-{name}
base_package: cf-{name}
usage: cloud_pbx
ip_lines: 1
number_blocks:
  - {{prefix: "{prefix}", from: "0", to: "99"}}
""", encoding="utf-8")
    lines = "".join(f'  - number: "{100 + n}"\n    name: Nebenstelle {n}\n    pin: "0000"\n'
                    for n in range(extensions))
    (env / "tenant.yaml").write_text(f"""\
kind: Tenant
name: {name}
account: "{number}"
type: STANDARD
version: BASIC
dial_plan: 3
sites: [site-{name}]
main_number: "{prefix}-0"
users:
  - email: admin@{name}.example
    name: Admin
    role: admin
    password: {{env: INTEGRITY_PW}}
extensions:
{lines}""", encoding="utf-8")
    return env


def cli(*args, cwd: Path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return run_cli(*args, cwd=cwd, env={**env, "INTEGRITY_PW": PASSWORD, **extra})


def apply(env: Path, state: str, *args):
    result = cli("apply", env.name, "--auto-approve", "--state", state, *args, cwd=env.parent)
    assert result.returncode == 0, result.output
    return result


# -- state URLs ---------------------------------------------------------------

@pytest.mark.parametrize("where", ["missing.db", "no-such-dir/state.db"])
def test_a_missing_sqlite_path_is_an_error(tmp_path, where):
    env = small_env(tmp_path)
    url = f"sqlite:///{tmp_path / where}"
    result = cli("plan", env.name, "--state", url, cwd=tmp_path)
    assert result.returncode == 1
    assert f"no state at {tmp_path / where}" in result.stderr
    assert f"reconciler init --state {url}" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / where).exists() and not (tmp_path / "no-such-dir").exists()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///"])
def test_an_in_memory_state_is_refused(tmp_path, url):
    env = small_env(tmp_path)
    result = cli("plan", env.name, "--state", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "is not a file — an in-memory state would be lost" in result.stderr


def test_init_creates_a_state_once_and_announces_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    made = cli("init", "--state", url, cwd=tmp_path)
    assert made.returncode == 0, made.output
    assert f"Created a new empty state at sqlite:///{tmp_path / 'state.db'}" in made.stderr
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600
    again = cli("init", "--state", url, cwd=tmp_path)
    assert again.returncode == 0 and "A state already exists" in again.stdout
    assert "Created" not in again.stderr
    missing_dir = cli("init", "--state", f"sqlite:///{tmp_path / 'nope' / 's.db'}", cwd=tmp_path)
    assert missing_dir.returncode == 1 and "does not exist — create it first" in missing_dir.stderr
    assert not (tmp_path / "nope").exists()


def test_the_default_state_is_found_from_the_repository_root(tmp_path):
    repo = tmp_path / "repo"
    env = small_env(repo / "customers")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "docs").mkdir()
    first = cli("plan", "../customers/acme", cwd=repo / "docs")
    assert first.returncode == 0, first.output
    state = repo / ".reconciler" / "state.db"
    assert f"Created a new empty state at sqlite:///{state}" in first.stderr
    assert not (repo / "docs" / ".reconciler").exists()
    applied = cli("apply", "acme", "--auto-approve", cwd=env.parent)
    assert applied.returncode == 0 and "Created" not in applied.stderr, applied.output
    again = cli("plan", "customers/acme", "--detailed-exitcode", cwd=repo)
    assert again.returncode == 0, again.output  # the same state: nothing to do


def test_a_state_through_a_symlink_shares_the_lock_of_the_real_file(tmp_path):
    env = small_env(tmp_path)
    real = tmp_path / "real" / "state.db"
    real.parent.mkdir()
    new_sqlite_state(real)
    (tmp_path / "link.db").symlink_to(real)
    fd = os.open(str(real) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b'{"host": "h", "pid": 1, "since": "now"}', 0)
        result = cli("apply", env.name, "--auto-approve", "--state",
                     f"sqlite:///{tmp_path / 'link.db'}", cwd=tmp_path)
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert "the state is locked by another apply (host h, pid 1" in result.stderr
    assert not (tmp_path / "link.db.lock").exists()


def test_a_symlinked_lock_file_is_refused_and_not_truncated(tmp_path):
    env = small_env(tmp_path)
    url = new_sqlite_state(tmp_path / "state.db")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (tmp_path / "state.db.lock").symlink_to(victim)
    result = cli("apply", env.name, "--auto-approve", "--state", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "state.db.lock: it is a symbolic link — remove it" in result.stderr
    assert victim.read_text() == "keep me\n"


# -- atomic writes --------------------------------------------------------------

def _limited_file_size(limit: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_disk_leaves_no_truncated_plan(tmp_path, pg_cluster):
    """A write that fails part-way (here: a file size limit, as a full disk would) leaves
    neither a truncated plan nor the earlier plan nor a temporary file."""
    env = small_env(tmp_path, extensions=40)
    url = pg_cluster.create_database(f"fulldisk_{os.getpid()}")
    out = tmp_path / "plans" / "acme.json"
    made = cli("plan", env.name, "--state", url, "--out", out, cwd=tmp_path)
    assert made.returncode == 0 and out.exists(), made.output
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env_vars["INTEGRITY_PW"] = PASSWORD
    (env / "tenant.yaml").write_text((env / "tenant.yaml").read_text().replace(
        "name: Nebenstelle 1\n", "name: Nebenstelle eins\n"))
    proc = subprocess.run([sys.executable, "-m", "reconciler", "plan", env.name, "--state", url,
                           "--out", str(out)], cwd=tmp_path, env=env_vars, capture_output=True,
                          text=True, preexec_fn=_limited_file_size(4096), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot save the plan to {out}: File too large — no plan file was written" \
        in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []


# -- rows that vanished --------------------------------------------------------------

def test_an_update_of_a_vanished_row_fails_loudly(tmp_path):
    store = open_store(new_sqlite_state(tmp_path / "state.db"))
    try:
        store.write([Write("create", "account", "1", "1", {"name": "a"})])
        for action in ("update", "delete"):
            with pytest.raises(StateConflict, match=f"cannot {action} account 2: it is no longer"):
                store.write([Write(action, "account", "2", "2",
                                   {"name": "b"} if action == "update" else None)])
        assert store.version()[0] == 1  # the failed transactions wrote nothing
    finally:
        store.close()


# -- the JSON text of rows ------------------------------------------------------------

def test_rows_in_the_earlier_json_text_are_read_alike(state_url):
    """Rows written before the compact encoding (blanks after ':' and ',') still give their
    DIDs to the platform's uniqueness check, and the last-applied text equal to attrs
    is recognised on both backends, whichever way it was written."""
    from sqlalchemy import update

    from reconciler.state.sql import resources_table

    store = open_store(state_url)
    try:
        attrs = {"tenant": "t", "number": "100", "did": "+4930123-10", "name": "A"}
        store.write([Write("create", "extension", "t/100", "1", attrs),
                     Write("create", "extension", "t/101", "1", dict(attrs, did=None,
                                                                     number="101"))])
        old_text = json.dumps(attrs, sort_keys=True, ensure_ascii=False)
        with store.engine.begin() as conn:
            conn.execute(update(resources_table).where(resources_table.c.id == "t/100")
                         .values(attrs=old_text, last_applied=old_text))
        platform = store.platform()
        assert ("extension", "t/100") in platform and ("extension", "t/101") not in platform
        read = store.snapshot({"1"}).resources[("extension", "t/100")]
        assert read.attrs == attrs and read.last_applied is read.attrs
    finally:
        store.close()


def test_a_version_3_state_is_read_as_it_is_and_marked_4_by_its_first_write(tmp_path):
    """Rows of version 4 are written compactly: the first write marks the state so that a
    reconciler that knows only version 3 refuses it instead of misreading its DIDs."""
    import sqlite3

    url = new_sqlite_state(tmp_path / "state.db")

    def version() -> str:
        with sqlite3.connect(tmp_path / "state.db") as conn:
            return conn.execute("SELECT value FROM reconciler_meta "
                                "WHERE key = 'schema_version'").fetchone()[0]

    def set_version(value: str) -> None:
        with sqlite3.connect(tmp_path / "state.db") as conn:
            conn.execute("UPDATE reconciler_meta SET value = ? WHERE key = 'schema_version'",
                         (value,))

    set_version("3")
    store = open_store(url)
    try:
        assert version() == "3"  # opening (and planning) writes nothing
        store.write([Write("create", "account", "1", "1", {"name": "a"})])
        assert version() == "4"
    finally:
        store.close()
    set_version("5")
    with pytest.raises(ReconcilerError, match="has schema version 5, this reconciler "
                                              "understands 4 — upgrade reconciler"):
        open_store(url)


# -- state identity: copies and restored backups ----------------------------------------

def _copy_sqlite(source: str, target: Path) -> str:
    src = Path(source.removeprefix("sqlite:///"))
    for suffix in ("", "-wal"):
        if src.with_name(src.name + suffix).exists():
            shutil.copyfile(src.with_name(src.name + suffix), target.with_name(target.name + suffix))
    return f"sqlite:///{target}"


def test_a_plan_for_another_state_is_refused(tmp_path):
    env = small_env(tmp_path)
    live = new_sqlite_state(tmp_path / "live.db")
    other = new_sqlite_state(tmp_path / "other.db")
    planned = cli("plan", env.name, "--state", other, "--out", "p.json", cwd=tmp_path)
    assert planned.returncode == 0, planned.output
    ids = json.loads((tmp_path / "p.json").read_text())["state_id"]
    result = cli("apply", "p.json", "--state", live, cwd=tmp_path)
    assert result.returncode == 1
    assert f"the saved plan was made against another state (id {ids})" in result.stderr
    assert open_store(live).version()[0] == 0


def test_a_plan_for_a_newer_state_is_refused_after_a_restore(tmp_path):
    """A backup restored over the live state: a plan made before the restore would compare
    with values that are no longer there — refused, first as older, then (written to again)
    as another history."""
    env = small_env(tmp_path)
    live = new_sqlite_state(tmp_path / "live.db")
    apply(env, live)
    _copy_sqlite(live, tmp_path / "backup.db")
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("Nebenstelle 0", "Empfang"))
    apply(env, live)
    tenant.write_text(tenant.read_text().replace("Nebenstelle 1", "Lager"))
    assert cli("plan", env.name, "--state", live, "--out", "p.json", cwd=tmp_path).returncode == 0
    os.remove(tmp_path / "live.db")
    _copy_sqlite(f"sqlite:///{tmp_path / 'backup.db'}", tmp_path / "live.db")  # the restore
    older = cli("apply", "p.json", "--state", live, cwd=tmp_path)
    assert older.returncode == 1
    assert "it is older than the plan (restored from a backup?)" in older.stderr
    tenant.write_text(tenant.read_text().replace("Nebenstelle 2", "Keller"))
    apply(env, live)  # the restored state is written to: its serial passes the plan's
    diverged = cli("apply", "p.json", "--state", live, cwd=tmp_path)
    assert diverged.returncode == 1
    assert "has another history than the one the plan was made against" in diverged.stderr


# -- apply ENV1 ENV2 ---------------------------------------------------------------------

def test_apply_of_several_environments_plans_each_after_the_previous_applied(state_url,
                                                                               tmp_path):
    first = small_env(tmp_path, "alpha", "7300011", "+49305550200")
    second = small_env(tmp_path, "beta", "7300012", "+49305550300")
    result = cli("apply", "alpha", "beta", "--auto-approve", "--state", state_url, cwd=tmp_path)
    assert result.returncode == 0, result.output
    out = result.stdout
    assert out.index("Apply complete for alpha") < out.index("(state serial ") + len(out) and \
        out.index("Apply complete for alpha") < out.rindex("Plan:")
    serials = [int(line.split("state serial ")[1].split(",")[0])
               for line in out.splitlines() if "(state serial " in line]
    assert serials[0] == 0 and serials[1] > 0, out  # beta was planned after alpha's apply
    assert first.exists() and second.exists()


# -- the lock is held for the whole apply, or apply stops ---------------------------------

def test_apply_stops_when_the_server_ends_the_locking_session(tmp_path, pg_cluster):
    """idle_session_timeout ends the session that holds the advisory lock while apply
    pauses between two actions: the next write fails instead of writing unlocked."""
    env = small_env(tmp_path)
    url = pg_cluster.create_database(f"lockloss_{os.getpid()}")
    database = url.rsplit("/", 1)[1]
    pg_cluster.sql(f"ALTER DATABASE \"{database}\" SET idle_session_timeout = '2s'")
    result = cli("apply", env.name, "--auto-approve", "--state", url, cwd=tmp_path,
                 RECONCILER_FAULT_PAUSE_AT="2:5")
    assert result.returncode == 1, result.output
    assert "failed at create base_package cf-acme: the state lock was lost" in result.stderr
    assert "done: 1 (1 created, 0 updated, 0 deleted); failed: 1; not started: 6" in result.stderr
    pg_cluster.sql(f"ALTER DATABASE \"{database}\" RESET idle_session_timeout")
    store = open_store(url)
    try:
        assert store.version()[0] == 1  # only the action before the pause
    finally:
        store.close()


def test_a_restored_postgresql_backup_refuses_a_plan_made_before_the_restore(tmp_path,
                                                                             pg_cluster):
    env = small_env(tmp_path)
    url = pg_cluster.create_database(f"restore_{os.getpid()}")
    live = url.rsplit("/", 1)[1]
    apply(env, url)
    pg_cluster.sql(f'CREATE DATABASE "{live}_backup" TEMPLATE "{live}"')
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("Nebenstelle 0", "Empfang"))
    apply(env, url)
    tenant.write_text(tenant.read_text().replace("Nebenstelle 1", "Lager"))
    assert cli("plan", env.name, "--state", url, "--out", "p.json", cwd=tmp_path).returncode == 0
    pg_cluster.sql(f'DROP DATABASE "{live}"')
    pg_cluster.sql(f'CREATE DATABASE "{live}" TEMPLATE "{live}_backup" OWNER reconciler')
    older = cli("apply", "p.json", "--state", url, cwd=tmp_path)
    assert older.returncode == 1
    assert "it is older than the plan (restored from a backup?)" in older.stderr
    other = pg_cluster.create_database(f"other_{os.getpid()}")
    elsewhere = cli("apply", "p.json", "--state", other, cwd=tmp_path)
    assert elsewhere.returncode == 1 and "made against another state" in elsewhere.stderr
