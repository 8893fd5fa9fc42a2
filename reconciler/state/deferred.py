"""A SQLite state opened through SQLAlchemy only when a plan must be built.

A plan served from the cache needs only the state's id, serial and revision,
and proof that the revision triggers are in place. The stdlib sqlite3 reads
them, read-only, in a millisecond; importing SQLAlchemy costs ~0.2 s, most of
a warm plan. Everything else opens the SQL store on first use.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from .location import mask_url, sqlite_path

log = logging.getLogger(__name__)

# 2: secret records instead of salted hashes, no plan-signing key;
# 3: an owner environment per resource, a state id, revision counted on TRUNCATE too;
# 4: JSON texts written compactly (`"did":"…"`); a reconciler that knows only 3 would miss
#    such DIDs in its uniqueness check, so the first write marks a version 3 state 4
SCHEMA_VERSION = 4
READABLE_VERSIONS = ("3", "4")  # read as they are; older ones are migrated first
SQLITE_TRIGGERS_PRESENT = (
    "SELECT count(*) = 3 FROM sqlite_master WHERE type = 'trigger' AND name IN "
    "('reconciler_revision_insert', 'reconciler_revision_update', 'reconciler_revision_delete')")
_META = "SELECT key, value FROM reconciler_meta WHERE key IN ('schema_version', 'state_id', " \
        "'serial', 'revision')"


def sqlite_display_url(path: Path) -> str:
    """The state URL as shown and as the plan cache keys it."""
    return mask_url(f"sqlite:///{path}")


def read_cache_version(path: Path) -> tuple[str, int, int] | None:
    """(state id, serial, revision) of the SQLite state at `path`, read in one transaction;
    None when that cannot be shown: no state of this schema version (the SQL store
    migrates or refuses it), or revision triggers missing."""
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        connection.execute("BEGIN")
        tracked = connection.execute(SQLITE_TRIGGERS_PRESENT).fetchone()[0]
        meta = dict(connection.execute(_META).fetchall())
        if not tracked or meta.get("schema_version") not in READABLE_VERSIONS:
            return None
        return meta["state_id"], int(meta["serial"]), int(meta["revision"])
    except (sqlite3.Error, KeyError, ValueError):
        return None
    finally:
        connection.close()


class DeferredSQLiteStore:
    """A SQLite state whose SQL store is opened when anything but `cache_version` is used."""

    created = False  # an existing state: a new one is made (and announced) by the SQL store

    def __init__(self, path: Path):
        self.path = path
        self.url_for_display = sqlite_display_url(path)
        self._store = None

    def cache_version(self) -> tuple[str, int, int] | None:
        return read_cache_version(self.path) or self._opened().cache_version()

    def _opened(self):
        if self._store is None:
            from .sql import SQLiteStore

            self._store = SQLiteStore(f"sqlite:///{self.path}", self.url_for_display, self.path)
        return self._store

    def __getattr__(self, name: str):
        return getattr(self._opened(), name)


def open_deferred(url: str, *, default: bool) -> DeferredSQLiteStore | None:
    """A deferred store for an existing SQLite state whose version sqlite3 can read, else None
    (another kind of state, or one the SQL store must create, migrate or refuse)."""
    if not url.startswith("sqlite:"):
        return None
    path = sqlite_path(url, create=False, default=default)
    if read_cache_version(path) is None:
        return None
    log.info("state: %s", mask_url(url))
    return DeferredSQLiteStore(path)
