"""Helpers for the plan/apply tests: an example environment bound to a state URL.

Every command runs the real CLI in a subprocess (`conftest.run_cli`) from the
directory that holds the environment, so plans name sources as
`<example>/<file>:<line>`, the way a user running it from the repository sees them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import EXAMPLES, Result, new_sqlite_state, run_cli


@dataclass
class Env:
    path: Path
    state: str

    @property
    def name(self) -> str:
        return self.path.name

    def run(self, *args, env: dict | None = None, input: str | None = None) -> Result:
        return run_cli(*args, "--state", self.state, cwd=self.path.parent, env=env, input=input)

    def plan(self, *args, **kw) -> Result:
        return self.run("plan", self.name, *args, **kw)

    def apply(self, *args, **kw) -> Result:
        """`apply ENV ARGS…` (add --auto-approve yourself)."""
        return self.run("apply", self.name, *args, **kw)

    def apply_file(self, plan_file: Path, *args, **kw) -> Result:
        return self.run("apply", plan_file, *args, **kw)

    def plan_json(self, *args, expect: tuple[int, ...] = (0,), **kw) -> dict:
        result = self.plan("--format", "json", *args, **kw)
        assert result.returncode in expect, result.output
        return json.loads(result.stdout)

    def serial(self, **kw) -> int:
        """The state serial, as `plan --format json` reports it."""
        return self.plan_json(expect=(0, 1), **kw)["state_serial"]

    def file(self, relative: str) -> Path:
        return self.path / relative

    def edit(self, relative: str, old: str, new: str, count: int = 1) -> None:
        edit(self.file(relative), old, new, count)

    def source_of(self, relative: str, marker: str) -> str:
        """`<env>/<file>:<line>` of the only line containing `marker`."""
        return f"{self.name}/{relative}:{line_of(self.file(relative), marker)}"


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not found {count}× in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def regex_edit(path: Path, pattern: str, replacement: str) -> int:
    text, n = re.subn(pattern, replacement, path.read_text(encoding="utf-8"))
    assert n, f"{pattern!r} not found in {path}"
    path.write_text(text, encoding="utf-8")
    return n


def line_of(path: Path, marker: str) -> int:
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if marker in line]
    assert len(lines) == 1, f"{marker!r} is on lines {lines} of {path}"
    return lines[0]


def remove_extension(path: Path, number: str) -> None:
    """Drop the YAML list item of extension `number` (up to the next item or the end)."""
    regex_edit(path, rf'  - number: "{number}"\n(?:    .*\n)+?(?=  - |\S|\Z)', "")


def remove_user(path: Path, email: str) -> None:
    regex_edit(path, rf"  - email: {re.escape(email)}\n(?:    .*\n)+?(?=  - |\S|\Z)", "")


_TEMPLATES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="session")
def applied_templates(request, tmp_path_factory):
    """States with one example applied (through the CLI, once per session and backend).

    Tests that start from an applied example clone one instead of applying again:
    a file copy for SQLite, `CREATE DATABASE … TEMPLATE` for PostgreSQL.
    """
    made = _TEMPLATES  # shared by every module that imports this fixture

    def template(backend: str, name: str) -> str:
        if (backend, name) not in made:
            workdir = tmp_path_factory.mktemp("template")
            if backend == "sqlite":
                url = new_sqlite_state(workdir / "state.db")
            else:
                cluster = request.getfixturevalue("pg_cluster")
                url = cluster.create_database(f"template_{os.getpid()}_{name.replace('-', '_')}")
            # Applied from a copy named like the test's copy: the same environment name,
            # so the test's environment owns what the template state holds.
            shutil.copytree(EXAMPLES / name, workdir / name)
            result = run_cli("apply", name, "--auto-approve", "--state", url, cwd=workdir)
            assert result.returncode == 0, result.output
            made[(backend, name)] = url
        return made[(backend, name)]

    return template


def _clone_state(template: str, target: str, request) -> None:
    if target.startswith("sqlite:///"):
        source = Path(template.removeprefix("sqlite:///"))
        destination = Path(target.removeprefix("sqlite:///"))
        for suffix in ("", "-wal"):
            if source.with_name(source.name + suffix).exists():
                shutil.copyfile(source.with_name(source.name + suffix),
                                destination.with_name(destination.name + suffix))
        return
    cluster = request.getfixturevalue("pg_cluster")
    database, original = target.rsplit("/", 1)[1], template.rsplit("/", 1)[1]
    cluster.sql(f'DROP DATABASE "{database}"')
    cluster.sql(f'CREATE DATABASE "{database}" TEMPLATE "{original}" OWNER reconciler')


@pytest.fixture
def make_env(example, state_url, applied_templates, request):
    """An editable copy of an example environment, bound to the test's state URL.

    `applied=True`: the state starts with the example applied (serial = its action count).
    """

    def make(name: str, applied: bool = False) -> Env:
        env = Env(example(name), state_url)
        if applied:
            backend = "sqlite" if state_url.startswith("sqlite") else "postgresql"
            _clone_state(applied_templates(backend, name), state_url, request)
        return env

    return make
