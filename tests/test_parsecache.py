"""The parse cache (reconciler/parsecache.py): a plan after edits equals a plan from scratch,
and an entry that fails its check is never unpickled.

1. Property: over random sequences of edits to an example environment (a value changed, a
   line dropped or repeated, a YAML error, a file added, removed or swapped for another's
   content), every plan made with the cache of the steps before equals, in its JSON form,
   the plan made with an empty cache; the loader's documents, positions and diagnostics are
   equal too. Also with the files parsed in worker processes.
2. Attacks: an entry whose content was replaced by a pickle that would run code, one whose
   check was kept but whose pickle was changed, and entries made under another user's key are
   all ignored: the file is parsed again and the plan is unchanged.
"""

from __future__ import annotations

import os
import re
import pickle
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES, run_cli
from reconciler import loader
from reconciler.loader import load_environment
from reconciler.plan import PlanOptions, build_plan
from reconciler.planfile import dumps, plan_to_dict
from reconciler.state.sql import open_store

EXAMPLE = EXAMPLES / "companyflex-multisite"


@contextmanager
def cache_at(directory: Path):
    before = os.environ.get("RECONCILER_CACHE_DIR")
    os.environ["RECONCILER_CACHE_DIR"] = str(directory)
    try:
        yield
    finally:
        if before is None:
            del os.environ["RECONCILER_CACHE_DIR"]
        else:
            os.environ["RECONCILER_CACHE_DIR"] = before


def loaded(env: Path) -> list:
    """Everything the loader gives, positions and diagnostics included, comparable."""
    result = load_environment(env)
    documents = [(d.kind, str(d.file), d.source, _positions(d.body)) for d in result.documents]
    return [documents, [(item.source, item.message, item.hint) for item in result.diagnostics.items]]


def _positions(node):
    if isinstance(node, loader.YMap):
        return (node.position, sorted(node.key_positions.items()),
                {key: _positions(value) for key, value in node.items()})
    if isinstance(node, loader.YList):
        return (node.position, list(node.item_positions), [_positions(v) for v in node])
    return (type(node).__name__, node)


def planned(env: Path, store) -> str:
    """The plan of `env` against `store`, as JSON."""
    plan = build_plan(env, store, PlanOptions())
    try:
        return dumps(plan_to_dict(plan))
    finally:
        plan.close()


# -- edits -------------------------------------------------------------------

def _yaml_files(env: Path) -> list[Path]:
    return sorted(env.rglob("*.yaml"))


def change_value(env: Path, pick: int) -> None:
    path = _pick(env, pick)
    lines = path.read_text().splitlines()
    index = pick % len(lines)
    if ": " in lines[index]:
        key, _, _ = lines[index].partition(": ")
        lines[index] = f"{key}: changed {pick}"
    path.write_text("\n".join(lines) + "\n")


def drop_line(env: Path, pick: int) -> None:
    path = _pick(env, pick)
    lines = path.read_text().splitlines()
    del lines[pick % len(lines)]
    path.write_text("\n".join(lines) + "\n")


def repeat_line(env: Path, pick: int) -> None:  # often a duplicate key
    path = _pick(env, pick)
    lines = path.read_text().splitlines()
    index = pick % len(lines)
    lines.insert(index, lines[index])
    path.write_text("\n".join(lines) + "\n")


def break_yaml(env: Path, pick: int) -> None:
    path = _pick(env, pick)
    path.write_text(path.read_text() + "broken: [unclosed\n")


def add_file(env: Path, pick: int) -> None:
    (env / f"extra-{pick}.yaml").write_text(
        f'kind: Account\ncustomer_number: "{7100000 + pick}"\nname: Extra {pick}\n'
        "contact: Eva Extra\naddress: Extraweg 1, Berlin\n")


def remove_file(env: Path, pick: int) -> None:
    files = _yaml_files(env)
    if len(files) > 1:
        files[pick % len(files)].unlink()


def swap_contents(env: Path, pick: int) -> None:
    """Same bytes under another name: positions and diagnostics name the new file."""
    files = _yaml_files(env)
    if len(files) > 1:
        a, b = files[pick % len(files)], files[(pick + 1) % len(files)]
        text_a, text_b = a.read_text(), b.read_text()
        a.write_text(text_b)
        b.write_text(text_a)


def _pick(env: Path, pick: int) -> Path:
    files = _yaml_files(env)
    return files[pick % len(files)]


EDITS = [change_value, drop_line, repeat_line, break_yaml, add_file, remove_file, swap_contents]
EDIT_SEQUENCES = st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 10_000)),
                          min_size=1, max_size=5)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=EDIT_SEQUENCES, parallel=st.booleans())
def test_plans_after_random_edits_equal_plans_made_without_the_cache(edits, parallel,
                                                                     monkeypatch_module):
    if parallel:  # files parsed (and kept) by worker processes
        monkeypatch_module.setattr(loader, "PARALLEL_THRESHOLD_BYTES", 0)
    else:
        monkeypatch_module.setattr(loader, "PARALLEL_THRESHOLD_BYTES", 2_000_000)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        env = work / "env"
        shutil.copytree(EXAMPLE, env)
        store = open_store(f"sqlite:///{work / 'state.db'}", create=True)
        try:
            with cache_at(work / "kept"):
                planned(env, store)  # the cache of the first version
            for step, (edit, pick) in enumerate(edits):
                edit(env, pick)
                with cache_at(work / "kept"):
                    kept = loaded(env), planned(env, store)
                with cache_at(work / f"empty-{step}"):
                    fresh = loaded(env), planned(env, store)
                assert kept == fresh
        finally:
            store.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


# -- attacks -----------------------------------------------------------------

class _RunsCode:
    """Unpickling this would create the file `path`: what a poisoned entry would do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "parsed").iterdir())


def _validate(env: Path, cache: Path, config: Path):
    return run_cli("validate", env, env={"RECONCILER_CACHE_DIR": str(cache),
                                         "XDG_CONFIG_HOME": str(config)})


def test_a_poisoned_or_altered_entry_is_never_unpickled(tmp_path):
    env, cache, config = tmp_path / "env", tmp_path / "cache", tmp_path / "config"
    shutil.copytree(EXAMPLE, env)
    first = _validate(env, cache, config)
    assert first.returncode == 0, first.output
    entries = _entries(cache)
    assert len(entries) == len(_yaml_files(env))
    marker = tmp_path / "code-ran"
    poisoned = pickle.dumps(_RunsCode(str(marker)))
    entries[0].write_bytes(b"\0" * 32 + poisoned)  # a MAC the attacker cannot compute
    content = entries[1].read_bytes()  # the real MAC, another pickle
    entries[1].write_bytes(content[:32] + poisoned)
    again = _validate(env, cache, config)
    assert not marker.exists()
    assert again.returncode == 0 and again.output == first.output


def test_entries_made_under_another_users_key_are_ignored(tmp_path):
    env, cache = tmp_path / "env", tmp_path / "cache"
    shutil.copytree(EXAMPLE, env)
    assert _validate(env, cache, tmp_path / "someone").returncode == 0
    made = {path.name: path.stat().st_mtime_ns for path in _entries(cache)}
    mine = _validate(env, cache, tmp_path / "me")
    assert mine.returncode == 0, mine.output
    rewritten = {path.name: path.stat().st_mtime_ns for path in _entries(cache)}
    assert all(rewritten[name] != made[name] for name in made)  # none was served: all parsed


def test_a_file_with_a_plain_text_secret_is_never_kept(tmp_path):
    """The entry would outlive the fix of the manifest (and hold the PIN)."""
    env, cache, config = tmp_path / "env", tmp_path / "cache", tmp_path / "config"
    shutil.copytree(EXAMPLE, env)
    tenant = next(path for path in _yaml_files(env) if "kind: Tenant" in path.read_text())
    text = tenant.read_text()
    assert "pin:" in text
    tenant.write_text(re.sub(r'pin: .*', 'pin: "4711"', text, count=1))
    assert _validate(env, cache, config).returncode == 0
    assert len(_entries(cache)) == len(_yaml_files(env)) - 1
    assert not any(b"4711" in path.read_bytes() for path in _entries(cache))


@pytest.mark.parametrize("text, plain", [
    ('pin: "0000"', False),
    ('pin: "4711"', True),
    ("pin: 4711", True),
    ("pin:", True),
    ("pin: !!str 4711", True),
    ("password: {env: ADMIN_PASSWORD}", False),
    ("sip_password: {file: secrets/sip.txt}", False),
    ("database: postgresql://kamailio:geheim@db/kamailio", True),
    ('extensions:\n  - {number: "10", pin: "0000"}\n  - {number: "11", pin: "12345"}', True),
    ('extensions:\n  - {number: "10", pin: "0000"}', False),
    ('first: &p "4711"\npin: *p', True),  # the constructor that follows aliases
    ('first: &p "0000"\npin: *p', False),
])
def test_a_secret_in_plain_text_is_noticed_while_parsing(text, plain, tmp_path):
    from reconciler.loader import load_file

    path = tmp_path / "t.yaml"
    path.write_text("kind: Tenant\n" + text + "\n")
    assert load_file(path, tmp_path, str(tmp_path)).plain_secret is plain
