"""Teams: many runners on one state — locking, crash safety, secrets in URLs.

Everything here runs the real CLI in separate processes against the session's
real PostgreSQL server (and SQLite where the same behaviour applies) and then
reads the state tables directly:

- concurrent applies of different accounts end with exactly the union, one
  serial step per applied action;
- concurrent applies of one environment: one applies, the other fails on the
  lock naming its holder, or waits and finds nothing to do;
- SIGKILL right before every action k of an apply, and once from outside at a
  random moment of a 2,005-action apply: the state holds exactly what was
  committed, the lock is free, the rerun converges, no row lost or doubled;
- a saved plan is refused after another runner's apply changed what it touches;
- SIGTERM releases the lock;
- the PostgreSQL password never shows, whatever goes wrong.

The figures the issue asks for (concurrent applies, kills survived, rows lost)
are counted in FIGURES and printed at the end of the module.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import Result, new_sqlite_state
from pgcluster import wait_for

ADMIN_PASSWORD = "Vq7#tLm2!zRx9pK-{}"  # per environment: never reused across tenants
LOCK_MESSAGE = re.compile(
    r"error: the state is locked by another apply \(host (?P<host>\S+), pid (?P<pid>\d+), "
    r"since (?P<since>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00)\)")
APPLIED = re.compile(r"Apply complete for .*: (\d+) created, (\d+) updated, (\d+) deleted\. "
                     r"State serial (\d+)\.")
FIGURES = {"concurrent_applies": 0, "kills_survived": 0, "rows_lost": 0, "rows_duplicated": 0}
_names = iter(range(10**6))
_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """A failed test must not leave an apply running (or stopped) behind."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", autouse=True)
def report_figures(request):
    yield
    line = ("concurrency figures: {concurrent_applies} concurrent applies run, "
            "{kills_survived} kills survived, {rows_lost} rows lost, "
            "{rows_duplicated} rows duplicated").format(**FIGURES)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + line)


# -- environments -------------------------------------------------------------

def make_env(root: Path, i: int, extensions: int = 20) -> tuple[Path, int]:
    """A small customer environment with unique identities; returns (dir, actions)."""
    env = root / f"env{i}"
    env.mkdir(parents=True)
    number = str(7100000 + i)
    prefix = f"+4930{5550000 + i * 10}"
    dial = 3 if extensions <= 800 else 4
    (env / "account.yaml").write_text(f"""\
kind: Account
customer_number: "{number}"
name: Nebenläufig {i} GmbH
contact: Tester {i}
address: Teststraße {i}, Berlin
---
kind: BasePackage
id: cf-conc-{i}
account: "{number}"
product: CompanyFlex
parallel_calls: {max(10, -(-extensions // 10))}
---
kind: Site
id: site-conc-{i}
base_package: cf-conc-{i}
usage: cloud_pbx
ip_lines: 1
number_blocks:
  - {{prefix: "{prefix}", from: "0", to: "99"}}
""", encoding="utf-8")
    first = 10 ** (dial - 1)
    lines = "".join(f"""\
  - number: "{first + n}"
    name: Nebenstelle {n}
    pin: "0000"
    area_code: "030"
""" for n in range(extensions))
    (env / "tenant.yaml").write_text(f"""\
kind: Tenant
name: conc-tenant-{i}
account: "{number}"
type: STANDARD
version: BASIC
dial_plan: {dial}
sites: [site-conc-{i}]
main_number: "{prefix}-0"
users:
  - email: admin{i}@conc.example
    name: Admin {i}
    role: admin
    password: {{env: CONC_ADMIN_PW_{i}}}
extensions:
{lines}""", encoding="utf-8")
    return env, 5 + extensions


def scope_of(i: int) -> str:
    return str(7100000 + i)


def cli_env(**extra: str) -> dict[str, str]:
    """The subprocess environment: admin passwords, no stray state or fault settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECONCILER_", "PG"))}
    env.update({f"CONC_ADMIN_PW_{i}": ADMIN_PASSWORD.format(i) for i in range(100)})
    env.update(extra)
    return env


def start_apply(env_dir: Path, url: str, lock_timeout: float = 60, **extra: str):
    """`reconciler apply ENV` in the background; its output goes to files (a full pipe
    would stop it)."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(env_dir), "--auto-approve",
         "--state", url, "--lock-timeout", str(lock_timeout)],
        env=cli_env(**extra), stdout=out, stderr=err, text=True)
    proc.outputs = (out, err)
    _started.append(proc)
    return proc


def cli(*args, **extra: str) -> Result:
    """`reconciler ARGS…` in a subprocess, with `extra` environment variables."""
    proc = subprocess.run([sys.executable, "-m", "reconciler", *map(str, args)],
                          env=cli_env(**extra), capture_output=True, text=True, timeout=300)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def finish(proc, timeout: float = 120) -> tuple[int, str, str]:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    texts = []
    for handle in proc.outputs:
        handle.seek(0)
        texts.append(handle.read())
        handle.close()
    return proc.returncode, texts[0], texts[1]


# -- reading the state directly -----------------------------------------------

def engine_for(url: str):
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, poolclass=NullPool)


class State:
    """What the state tables hold, read outside reconciler."""

    def __init__(self, url: str):
        engine = engine_for(url)
        try:
            with engine.connect() as conn:
                self.serial = int(conn.execute(text(
                    "SELECT value FROM reconciler_meta WHERE key = 'serial'")).scalar_one())
                self.per_scope = dict(conn.execute(text(
                    "SELECT scope, COUNT(*) FROM reconciler_resources GROUP BY scope")).all())
                self.keys = [tuple(r) for r in conn.execute(text(
                    "SELECT kind, id FROM reconciler_resources"))]
                self.changes = [tuple(r) for r in conn.execute(text(
                    "SELECT serial, kind, id, action FROM reconciler_changes ORDER BY serial"))]
        finally:
            engine.dispose()

    @property
    def rows(self) -> int:
        return len(self.keys)

    def assert_consistent(self) -> None:
        """Every serial step is one logged action; no gap, no key written twice."""
        assert [c[0] for c in self.changes] == list(range(1, self.serial + 1))
        creates = [(c[1], c[2]) for c in self.changes if c[3] == "create"]
        assert len(creates) == len(set(creates)), "a resource was created twice"
        assert len(self.keys) == len(set(self.keys))


def serial_now(url: str) -> int:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(text(
                "SELECT value FROM reconciler_meta WHERE key = 'serial'")).scalar()
            return int(value or 0)
    except Exception:  # noqa: BLE001 - the tables may not exist yet
        return 0
    finally:
        engine.dispose()


def lock_holder_pid(url: str) -> int | None:
    """The pid the lock record names (PostgreSQL table or SQLite lock file)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///") + ".lock")
        try:
            return int(json.loads(path.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT pid FROM reconciler_lock_holder")).scalar()
    except Exception:  # noqa: BLE001 - not created yet
        return None
    finally:
        engine.dispose()


def waiting_for_lock(url: str, proc: subprocess.Popen) -> bool:
    """True once `proc` is in the lock's wait loop (it has the lock file open, or its
    PostgreSQL session last tried the advisory lock)."""
    if url.startswith("sqlite:///"):
        lock_file = os.path.realpath(url.removeprefix("sqlite:///") + ".lock")
        try:
            fds = os.listdir(f"/proc/{proc.pid}/fd")
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == lock_file:
                    return True
            except OSError:
                pass
        return False
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND datname = current_database() AND query LIKE '%pg_try_advisory_lock%'"
            )).scalar())
    finally:
        engine.dispose()


def new_url(backend: str, pg_cluster, tmp_path: Path) -> str:
    n = next(_names)
    if backend == "sqlite":
        return new_sqlite_state(tmp_path / f'state{n}.db')
    return pg_cluster.create_database(f"conc{os.getpid()}_{n}")


def applied_counts(output: str) -> tuple[int, int]:
    """(actions applied, serial reported) from an apply's output."""
    match = APPLIED.search(output)
    assert match, output
    created, updated, deleted, serial = map(int, match.groups())
    return created + updated + deleted, serial


# -- 1. concurrent applies of different accounts ------------------------------

@pytest.mark.slow
def test_eight_concurrent_applies_of_different_accounts(state_url, tmp_path):
    envs = [make_env(tmp_path, i) for i in range(1, 9)]
    procs = [start_apply(env, state_url, lock_timeout=60) for env, _ in envs]
    results = [finish(p) for p in procs]
    FIGURES["concurrent_applies"] += len(procs)
    for code, out, err in results:
        assert code == 0, out + err
        assert "Traceback" not in err
    applied = [applied_counts(out) for _, out, _ in results]
    total = sum(n for _, n in envs)
    assert sum(count for count, _ in applied) == total
    # The applies ran one after the other: the serials they ended at are distinct
    # and the last one is the total.
    assert len({serial for _, serial in applied}) == 8
    assert max(serial for _, serial in applied) == total

    state = State(state_url)
    assert state.per_scope == {scope_of(i): n for i, (_, n) in enumerate(envs, 1)}
    assert state.serial == total == state.rows
    state.assert_consistent()
    FIGURES["rows_lost"] += total - state.rows

    again = cli("plan", *(env for env, _ in envs), "--state", state_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output
    assert again.stdout.count("No changes.") == 8


@pytest.mark.slow
def test_eight_concurrent_applies_without_waiting(state_url, tmp_path):
    """--lock-timeout 0: each applies or fails cleanly on the lock, naming the holder."""
    envs = [make_env(tmp_path, i) for i in range(11, 19)]
    cli("plan", envs[0][0], "--state", state_url)  # the tables exist: the race is the lock
    procs = [start_apply(env, state_url, lock_timeout=0) for env, _ in envs]
    results = [finish(p) for p in procs]
    FIGURES["concurrent_applies"] += len(procs)
    winners = {proc.pid for proc, (code, _, _) in zip(procs, results) if code == 0}
    assert winners, "no apply got the lock"
    losers = []
    for (env, n), proc, (code, out, err) in zip(envs, procs, results):
        assert "Traceback" not in err
        if code == 0:
            assert applied_counts(out)[0] == n
            continue
        assert code == 1, out + err
        match = LOCK_MESSAGE.search(err)
        assert match, err
        assert int(match["pid"]) in winners, f"named a process that did not hold it: {err}"
        assert "Apply complete" not in out
        losers.append((env, n))

    state = State(state_url)
    winner_rows = sum(n for _, n in envs) - sum(n for _, n in losers)
    assert state.rows == state.serial == winner_rows, "a refused apply wrote something"

    # The refused ones left nothing to clean up: one apply of them all finishes the job.
    rerun = cli("apply", *(env for env, _ in losers), "--auto-approve", "--state", state_url)
    assert rerun.returncode == 0, rerun.output
    assert rerun.stdout.count("Apply complete") == len(losers)
    state = State(state_url)
    total = sum(n for _, n in envs)
    assert state.per_scope == {scope_of(i): n for i, (_, n) in enumerate(envs, 11)}
    assert state.serial == total == state.rows
    state.assert_consistent()
    again = cli("plan", *(env for env, _ in envs), "--state", state_url, "--detailed-exitcode")
    assert again.returncode == 0, again.output


# -- 2. the same environment twice --------------------------------------------

@pytest.mark.parametrize("lock_timeout", [0, 60])
def test_two_applies_of_the_same_environment(state_url, tmp_path, lock_timeout):
    env, n = make_env(tmp_path, 21, extensions=150)
    first = start_apply(env, state_url, lock_timeout=60, RECONCILER_APPLY_BATCH="1")
    # Catch the first one holding the lock and freeze it there, so that the
    # second one meets a held lock whatever the machine's speed.
    assert wait_for(lambda: lock_holder_pid(state_url) == first.pid or first.poll() is not None,
                    timeout=30)
    first.send_signal(signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first apply finished before it could be caught"
        second = start_apply(env, state_url, lock_timeout=lock_timeout)
        if lock_timeout == 0:
            code, out, err = finish(second, timeout=60)
        else:
            assert wait_for(lambda: waiting_for_lock(state_url, second), timeout=30)
            time.sleep(0.5)  # it waits …
            assert second.poll() is None, finish(second)
    finally:
        first.send_signal(signal.SIGCONT)
    first_code, first_out, first_err = finish(first)
    FIGURES["concurrent_applies"] += 2
    assert first_code == 0, first_out + first_err
    assert applied_counts(first_out) == (n, n)
    if lock_timeout == 0:
        assert code == 1, out + err
        match = LOCK_MESSAGE.search(err)
        assert match, err
        assert int(match["pid"]) == first.pid
        assert "--lock-timeout" in err and "Traceback" not in err
    else:
        code, out, err = finish(second)
        assert code == 0, out + err
        assert "No changes." in out and "Apply complete" not in out
    state = State(state_url)
    assert state.rows == state.serial == n
    state.assert_consistent()


# -- 3. kill -9 at every action boundary, and from outside ----------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_at_every_action_boundary(backend, pg_cluster, tmp_path):
    env, n = make_env(tmp_path, 31, extensions=5)
    plan = cli("plan", env, "--state", new_url(backend, pg_cluster, tmp_path),
               "--format", "json")
    order = [(a["kind"], a["id"]) for a in json.loads(plan.stdout)["actions"]]
    assert len(order) == n == 10

    def kill_at(k: int) -> str | None:
        url = new_url(backend, pg_cluster, tmp_path)
        killed = cli("apply", env, "--auto-approve", "--state", url, "--lock-timeout", "0",
                     RECONCILER_APPLY_BATCH="1", RECONCILER_FAULT_KILL_AT=str(k))
        if killed.returncode != -signal.SIGKILL:
            return f"k={k}: exit {killed.returncode}: {killed.output}"
        state = State(url)
        if state.serial != k - 1 or sorted(state.keys) != sorted(order[:k - 1]):
            return f"k={k}: serial {state.serial}, rows {sorted(state.keys)}"
        state.assert_consistent()
        # The lock died with the process: an apply that does not wait gets it.
        rerun = cli("apply", env, "--auto-approve", "--state", url, "--lock-timeout", "0",
                    RECONCILER_APPLY_BATCH="1")
        if rerun.returncode != 0 or applied_counts(rerun.stdout) != (n - k + 1, n):
            return f"k={k}: rerun exit {rerun.returncode}: {rerun.output}"
        again = cli("plan", env, "--state", url, "--detailed-exitcode")
        if again.returncode != 0:
            return f"k={k}: plan after rerun exit {again.returncode}: {again.output}"
        state = State(url)
        state.assert_consistent()
        FIGURES["rows_lost"] += len(set(order) - set(state.keys))
        FIGURES["rows_duplicated"] += len(state.changes) - n
        if state.serial != n or sorted(state.keys) != sorted(order):
            return f"k={k}: after the rerun serial {state.serial}, {state.rows} rows"
        FIGURES["kills_survived"] += 1
        return None

    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = [p for p in pool.map(kill_at, range(1, n + 1)) if p]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_from_outside_during_a_big_apply(backend, pg_cluster, tmp_path):
    rng = random.Random()
    env, n = make_env(tmp_path, 32, extensions=2000)
    url = new_url(backend, pg_cluster, tmp_path)
    target = rng.randrange(20, n - 200)
    proc = start_apply(env, url, lock_timeout=0, RECONCILER_APPLY_BATCH="1")
    assert wait_for(lambda: serial_now(url) >= target or proc.poll() is not None, timeout=60)
    time.sleep(rng.uniform(0, 0.02))  # somewhere inside or between transactions
    os.kill(proc.pid, signal.SIGKILL)
    code, out, _ = finish(proc)
    assert code == -signal.SIGKILL, f"the apply ended before the kill (target {target}): {out}"

    state = State(url)
    assert 0 < state.serial < n
    assert state.rows == state.serial, "rows and serial disagree after the kill"
    state.assert_consistent()
    committed = set(state.keys)

    rerun = cli("apply", env, "--auto-approve", "--state", url, "--lock-timeout", "0",
                RECONCILER_APPLY_BATCH="1")
    assert rerun.returncode == 0, rerun.output
    assert applied_counts(rerun.stdout) == (n - len(committed), n)
    again = cli("plan", env, "--state", url, "--detailed-exitcode")
    assert again.returncode == 0, again.output
    state = State(url)
    state.assert_consistent()
    FIGURES["rows_lost"] += n - state.rows
    FIGURES["rows_duplicated"] += len(state.changes) - n
    assert state.serial == state.rows == n
    assert committed <= set(state.keys)
    FIGURES["kills_survived"] += 1


# -- 4. stale saved plans -----------------------------------------------------

@pytest.mark.slow
def test_saved_plan_is_stale_after_another_apply_in_its_scope(pg_cluster, tmp_path):
    url = pg_cluster.create_database(f"conc{os.getpid()}_{next(_names)}")
    env, n = make_env(tmp_path / "a", 41)
    other, _ = make_env(tmp_path / "b", 42)
    assert cli("apply", env, "--auto-approve", "--state", url).returncode == 0

    # Runner A plans a change and saves the plan for review.
    tenant = env / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("Nebenstelle 1\n", "Empfang\n"))
    saved = tmp_path / "a.plan.json"
    made = cli("plan", env, "--state", url, "--out", saved, "--detailed-exitcode")
    assert made.returncode == 2, made.output

    # Another environment's apply is no reason to refuse it …
    assert cli("apply", other, "--auto-approve", "--state", url).returncode == 0
    # … but runner B applying in the same scope is (its checkout of the same environment).
    copy = tmp_path / "b-runner" / env.name
    copy.mkdir(parents=True)
    for name in ("account.yaml", "tenant.yaml"):
        text_ = (env / name).read_text().replace("Nebenstelle 1\n", "Zentrale\n")
        (copy / name).write_text(text_.replace("Nebenstelle 3\n", "Lager\n"))
    b = cli("apply", copy, "--auto-approve", "--state", url)
    assert b.returncode == 0, b.output
    before = State(url)

    stale = cli("apply", saved, "--state", url)
    assert stale.returncode == 1, stale.output
    assert "no longer matches" in stale.stderr
    assert "update extension conc-tenant-41/101" in stale.stderr
    assert "update extension conc-tenant-41/103" in stale.stderr
    assert "Traceback" not in stale.stderr
    after = State(url)
    assert (after.serial, sorted(after.keys)) == (before.serial, sorted(before.keys))

    # A new plan against the new state applies.
    fresh = tmp_path / "a2.plan.json"
    assert cli("plan", env, "--state", url, "--out", fresh).returncode == 0
    applied = cli("apply", fresh, "--state", url)
    assert applied.returncode == 0, applied.output


@pytest.mark.slow
def test_saved_plan_is_stale_when_another_scope_took_its_identities(pg_cluster, tmp_path):
    """Identities are global: a plan must not half-apply into another account's tenant."""
    url = pg_cluster.create_database(f"conc{os.getpid()}_{next(_names)}")
    env, _ = make_env(tmp_path / "a", 43)
    rival, _ = make_env(tmp_path / "b", 44)
    tenant = rival / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("name: conc-tenant-44", "name: conc-tenant-43"))
    saved = tmp_path / "a.plan.json"
    assert cli("plan", env, "--state", url, "--out", saved).returncode == 0
    assert cli("apply", rival, "--auto-approve", "--state", url).returncode == 0
    before = State(url)

    stale = cli("apply", saved, "--state", url)
    assert stale.returncode == 1, stale.output
    assert "conc-tenant-43" in stale.stderr and "already exists" in stale.stderr
    assert State(url).serial == before.serial


# -- 5. SIGTERM ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_during_apply_releases_the_lock(backend, pg_cluster, tmp_path):
    env, n = make_env(tmp_path, 51, extensions=1500)
    url = new_url(backend, pg_cluster, tmp_path)
    proc = start_apply(env, url, lock_timeout=0, RECONCILER_APPLY_BATCH="1")
    assert wait_for(lambda: serial_now(url) >= 50 or proc.poll() is not None, timeout=60)

    # One waiting for the lock is stopped by SIGTERM too, and leaves nothing behind.
    proc.send_signal(signal.SIGSTOP)
    try:
        waiter = start_apply(env, url, lock_timeout=60)
        assert wait_for(lambda: waiting_for_lock(url, waiter), timeout=30)
        waiter.send_signal(signal.SIGTERM)
        code, out, err = finish(waiter, timeout=30)
        assert code == 143, out + err
        assert "Traceback" not in err and "Apply complete" not in out
    finally:
        proc.send_signal(signal.SIGCONT)

    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=30)
    assert code == 143, out + err
    assert "Traceback" not in err
    FIGURES["concurrent_applies"] += 2
    state = State(url)
    assert 0 < state.serial < n and state.rows == state.serial
    state.assert_consistent()

    # Immediately afterwards, an apply that does not wait takes the lock.
    rerun = cli("apply", env, "--auto-approve", "--state", url, "--lock-timeout", "0")
    assert rerun.returncode == 0, rerun.output
    assert applied_counts(rerun.stdout) == (n - state.rows, n)
    state = State(url)
    assert state.rows == state.serial == n
    state.assert_consistent()
    FIGURES["rows_lost"] += n - state.rows


# -- 6. the PostgreSQL password never shows -----------------------------------

PASSWORD = "S3cr3t-Pw-4711-xq"  # percent-encoding-free on purpose


@pytest.fixture(scope="module")
def pg_password_db(pg_cluster):
    """A database that checks passwords (the session's cluster trusts everyone)."""
    name = f"pwcheck{os.getpid()}"
    hba = pg_cluster.data / "pg_hba.conf"
    rules = hba.read_text()
    if name not in rules:
        hba.write_text(f"host {name} all 127.0.0.1/32 scram-sha-256\n" + rules)
        pg_cluster.sql("SELECT pg_reload_conf()")
    pg_cluster.sql(f"ALTER ROLE reconciler PASSWORD '{PASSWORD}'", db="postgres")
    pg_cluster.create_database(name)
    yield name, f"127.0.0.1:{pg_cluster.port}"
    pg_cluster.sql("ALTER ROLE reconciler PASSWORD 'reconciler-test-pw'")


def assert_clean_failure(result, *secrets: str) -> None:
    assert result.returncode == 1, result.output
    for secret in secrets:
        assert secret not in result.output, f"{secret!r} leaked: {result.output}"
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert result.stderr.strip(), "no message"


def test_password_checked_database_works_with_the_right_password(pg_password_db, tmp_path):
    name, hostport = pg_password_db
    env, n = make_env(tmp_path, 61, extensions=3)
    url = f"postgresql://reconciler:{PASSWORD}@{hostport}/{name}"
    applied = cli("apply", env, "--auto-approve", "--state", url)
    assert applied.returncode == 0, applied.output
    assert PASSWORD not in applied.output
    wrong = f"postgresql://reconciler:Wr0ng-{PASSWORD}@{hostport}/{name}"
    for command in (("plan", env), ("apply", env, "--auto-approve")):
        result = cli(*command, "--state", wrong)
        assert_clean_failure(result, PASSWORD)
        assert "password authentication failed" in result.stderr
        assert f"postgresql://reconciler:***@{hostport}/{name}" in result.stderr


@pytest.mark.parametrize("url_template, expected", [
    ("postgresql://reconciler:{pw}@127.0.0.1:1/db", "reconciler:***@127.0.0.1:1/db"),
    ("postgresql://reconciler:{pw}@127.0.0.1:notaport/db", "invalid state URL"),
    ("postgresql://reconciler:{pw}@[::1/db", "invalid state URL"),
    ("postgresql://reconciler:Ab@{pw}/x@127.0.0.1:1/db", "invalid state URL 'postgresql://reconciler:***@127.0.0.1:1/db'"),
    ("postgresql://reconciler:Ab/{pw}@127.0.0.1:1/db", "reconciler:***@127.0.0.1:1/db"),
    ("postgresql://127.0.0.1:1/db?user=reconciler&password={pw}", "password=***"),
    ("postgresql://reconciler:{pw}@nonexistent.invalid/db", "reconciler:***@nonexistent"),
    ("mysql://reconciler:{pw}@127.0.0.1/db", "unsupported state URL"),
])
def test_password_never_shown_in_errors(url_template, expected, tmp_path):
    env, _ = make_env(tmp_path, 62, extensions=1)
    url = url_template.format(pw=PASSWORD)
    runs = [  # the URL from --state and from RECONCILER_STATE
        (("plan", env, "--state", url), {}),
        (("apply", env, "--auto-approve"), {"RECONCILER_STATE": url}),
    ]
    if "127.0.0.1:1/" in url:
        runs.append((("export", "--account", "7100062", "--to", tmp_path / "exported",
                      "--state", url), {}))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda run: cli(*run[0], **run[1]), runs))
    for result in results:
        assert_clean_failure(result, PASSWORD, "Ab@", "Ab/")
        assert expected in result.stderr


def test_password_not_shown_in_verbose_output(pg_password_db, tmp_path):
    name, hostport = pg_password_db
    env, _ = make_env(tmp_path, 63, extensions=1)
    for url in (f"postgresql://reconciler:Wr0ng-{PASSWORD}@{hostport}/{name}",
                f"postgresql://reconciler:{PASSWORD}@{hostport}/{name}"):
        result = cli("-v", "plan", env, "--state", url)
        assert PASSWORD not in result.output


@pytest.mark.slow
def test_pg_environment_variables(pg_password_db, tmp_path):
    name, hostport = pg_password_db
    env, n = make_env(tmp_path, 64, extensions=3)
    url = f"postgresql://{hostport}/{name}"
    applied = cli("apply", env, "--auto-approve", "--state", url,
                  PGUSER="reconciler", PGPASSWORD=PASSWORD)
    assert applied.returncode == 0, applied.output
    assert PASSWORD not in applied.output
    again = cli("plan", env, "--state", url, "--detailed-exitcode",
                PGUSER="reconciler", PGPASSWORD=PASSWORD)
    assert again.returncode == 0, again.output
    wrong = cli("plan", env, "--state", url, PGUSER="reconciler", PGPASSWORD="Wr0ng-" + PASSWORD)
    assert_clean_failure(wrong, PASSWORD)
    assert "password authentication failed" in wrong.stderr
    assert url in wrong.stderr
