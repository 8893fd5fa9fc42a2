"""A throwaway PostgreSQL cluster for the test run (Debian's server binaries).

Started once per test session on a free local port with trust auth for a
`reconciler` role, a unix socket in its own directory, and stopped at the end.
initdb refuses to run as root, so as root the cluster runs as `postgres`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed — run scripts/test.sh")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=on -c max_connections=100")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-o", options, "-w", "start")
        self.sql("CREATE ROLE reconciler LOGIN SUPERUSER PASSWORD 'reconciler-test-pw'")

    def sql(self, statement: str, db: str = "postgres") -> None:
        self._run(_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement)

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}" OWNER reconciler')
        return f"postgresql://reconciler:reconciler-test-pw@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
