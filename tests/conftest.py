"""Shared fixtures: the real CLI in a subprocess, and a state URL per backend.

`state_url` is parametrized over SQLite (a temp file) and PostgreSQL (a fresh
database on the session's throwaway cluster), so every test that uses it runs
against both backends.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from pgcluster import Cluster

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "environments"
_db_counter = itertools.count()

# The suite runs the CLI as a user on their own machine would. A CI runner sets `CI`,
# which makes the CLI refuse the default local state (a deliberate guard): tests that
# exercise that guard set `CI` themselves, so the runner's value must not leak in.
os.environ.pop("CI", None)
# Property tests judge results, not speed: a loaded CI runner must not fail them on
# hypothesis's 200 ms deadline per example.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            input: str | None = None, timeout: float = 300) -> Result:
    """Run `reconciler ARGS…` as the user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *map(str, args)], cwd=cwd, env=full_env,
        input=input, capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.stop()


def new_sqlite_state(path: Path) -> str:
    """The URL of a new empty SQLite state at `path` (as `reconciler init` makes it).

    reconciler refuses a SQLite path that does not exist, so a test that wants a
    fresh state creates it first, in this process (faster than `init` in a subprocess).
    """
    from reconciler.state.sql import open_store

    url = f"sqlite:///{path}"
    open_store(url, create=True).close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return new_sqlite_state(tmp_path / "state.db")
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return new_sqlite_state(tmp_path / "state.db")


@pytest.fixture
def example(tmp_path):
    """A copy of an example environment that a test may change."""

    def copy(name: str) -> Path:
        target = tmp_path / "envs" / name
        shutil.copytree(EXAMPLES / name, target)
        return target

    return copy
