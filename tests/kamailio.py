"""Kamailio for the target tests: its database made by Debian's schema scripts, the
server started and stopped by pid — all through scripts/kamailio.sh, as a user would."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import EXAMPLES, ROOT
from helpers import Env

SCRIPT = ROOT / "scripts" / "kamailio.sh"
EXAMPLE = "sip-kamailio"
DOMAIN = "sonnenschein.pbx.example"


def init_db(url: str) -> None:
    subprocess.run(["bash", str(SCRIPT), "init", url], check=True, capture_output=True)


def make_db(kind: str, tmp_path: Path, request) -> str:
    """A new Kamailio database: a SQLite file, or a database in the test cluster."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'kamailio.sqlite'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"kam_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}")
    init_db(url)
    return url


def require_kamailio() -> None:
    if shutil.which("kamailio") is None or shutil.which("sipp") is None:
        pytest.skip("kamailio and sipp (sip-tester) are not installed — run scripts/test.sh")


@contextmanager
def running(url: str, rundir: Path):
    """Kamailio serving `url` on a free loopback UDP port; yields the port."""
    started = subprocess.run(["bash", str(SCRIPT), "start", url, "0", str(rundir)],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        yield int(started.stdout.strip())
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(rundir)], check=True, timeout=30)


class Platform:
    """Kamailio's tables, read and changed out of band as an operator would."""

    def __init__(self, url: str):
        self.url = url
        driver = url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.engine = create_engine(driver)

    def sql(self, statement: str, **params) -> list[tuple]:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []

    def subscribers(self) -> dict[str, tuple]:
        return {u: (p, h1, h1b) for u, p, h1, h1b in self.sql(
            "select username, password, ha1, ha1b from subscriber order by username")}

    def aliases(self) -> list[tuple]:
        return self.sql("select alias_username, alias_domain, username, domain from dbaliases "
                        "order by alias_username, username")

    def counts(self) -> tuple[int, int, int]:
        return tuple(self.sql(f"select count(*) from {t}")[0][0]
                     for t in ("domain", "subscriber", "dbaliases"))

    def close(self) -> None:
        self.engine.dispose()


def ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def kamailio_env(tmp_path: Path, state: str, db_url: str) -> tuple[Env, dict]:
    """A copy of the sip-kamailio example bound to a state and a Kamailio database."""
    path = tmp_path / "envs" / EXAMPLE
    shutil.copytree(EXAMPLES / EXAMPLE, path)
    return Env(path, state), {"KAMAILIO_DB": db_url}


def passwords(env: Env) -> dict[str, str]:
    return {n: (env.path / "secrets" / f"sip-{n}.txt").read_text().strip()
            for n in ("100", "101", "102")}

