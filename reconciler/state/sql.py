"""The SQL state store (SQLAlchemy Core): SQLite embedded, PostgreSQL for teams."""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import hashlib
import hmac
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from sys import intern
from urllib.parse import unquote

import orjson
from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    column,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..diagnostics import ReconcilerError
from ..files import open_lock_file
from ..secrets import INITIAL_PIN, LEGACY_REF
from .base import (ChangeRecord, LockTimeout, Snapshot, StateConflict, StateResource, StateStore,
                   Write)
from .deferred import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    SQLITE_TRIGGERS_PRESENT,
    sqlite_display_url,
)
from .location import mask_url, sqlite_path

log = logging.getLogger(__name__)

PLATFORM_KINDS = ("account", "base_package", "site", "tenant")
ADVISORY_LOCK_KEY = 0x7265636F  # "reco"
SCHEMA_LOCK_KEY = 0x72656373  # "recs": creating the tables

metadata = MetaData()
meta_table = Table(
    "reconciler_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
resources_table = Table(
    "reconciler_resources", metadata,
    Column("kind", String(32), primary_key=True),
    Column("id", String(300), primary_key=True),
    Column("scope", String(32), nullable=False),
    Column("attrs", Text, nullable=False),
    Column("secrets", Text, nullable=False),
    Column("last_applied", Text),
    Column("serial", Integer, nullable=False),
    Column("owner", String(300)),  # the environment that manages it; NULL: nobody yet
    Index("ix_reconciler_resources_scope", "scope"),
)
changes_table = Table(
    "reconciler_changes", metadata,
    Column("serial", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("id", String(300), nullable=False),
    Column("scope", String(32), nullable=False),
    Column("action", String(16), nullable=False),
    Column("applied_at", String(40), nullable=False),
)
lock_holder_table = Table(
    "reconciler_lock_holder", metadata,
    Column("name", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("since", String(40), nullable=False),
)


def _record_from_v1(value) -> dict:
    """A v1 secret value (`salt$sha256`) as a record without anything derived from the secret."""
    if isinstance(value, dict):
        return value
    salt, _, digest = str(value).partition("$")
    initial = hashlib.sha256((salt + "\0" + INITIAL_PIN).encode()).hexdigest()
    return {"ref": "initial"} if hmac.compare_digest(initial, digest) else {"ref": LEGACY_REF}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def open_store(url: str, *, create: bool = False, default: bool = False) -> SQLStore:
    """A store for a state URL (sqlite:///… or postgresql://…).

    A SQLite file that does not exist is an error (a typo must not become a new
    empty state) unless `create` (`reconciler init`) or `default` (the documented
    default location, see `location.py`); the store's `created` says whether it
    was made now.
    """
    shown = mask_url(url)
    log.info("state: %s", shown)
    if url.startswith("sqlite:"):
        path = sqlite_path(url, create=create, default=default)
        return SQLiteStore(f"sqlite:///{path}", sqlite_display_url(path), path)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        driver_url = "postgresql+psycopg://" + url.split("://", 1)[1]
        if not _credentials_parse_cleanly(driver_url):  # the driver might quote a piece
            raise ReconcilerError(
                f"invalid state URL '{shown}' — use postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, "
                "with special characters in the password percent-encoded (@ is %40)"
            )
        return PostgresStore(driver_url, shown)
    raise ReconcilerError(
        f"unsupported state URL '{shown}' — use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def _credentials_parse_cleanly(url: str) -> bool:
    """True when the URL parses, and its password is all between the first ':' and the
    last '@' (else a password with an unescaped '@' would reach the driver as a host name,
    and the driver's error would quote it)."""
    try:
        parsed = make_url(url)
    except (ValueError, ArgumentError):  # the message may quote the URL: not shown
        return False
    userinfo, at, _ = url.partition("://")[2].rpartition("@")
    if not at or ":" not in userinfo:
        return True
    return parsed.password == unquote(userinfo.split(":", 1)[1])


def _insert_many(conn, table: Table, rows: list[dict]) -> None:
    """Insert `rows` (dicts of the same columns). SQLite gets them as they are, with
    named parameters: SQLAlchemy's processing of each row's parameters costs more than
    SQLite's insert (an apply of 1M extensions writes 2M rows). Elsewhere SQLAlchemy
    batches them into multi-row statements."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    names = list(rows[0])  # our own column names, never user text
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) "
                         f"VALUES ({', '.join(':' + name for name in names)})", rows)


def encode_json(value) -> str:
    """A column's JSON text: keys sorted, compact, UTF-8 (orjson, ~10x the standard
    library: an apply of 1M extensions writes 2M of them)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits: the same text, slower
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# Attributes whose values repeat across a tenant's extensions (~60 bytes per string).
REPEATED_VALUES = ("tenant", "number", "product", "start_date", "reference", "area_code")


def _gaps_between(tenants: list[str]) -> list[tuple[str, str]]:
    """The id ranges [low, high) between the sorted tenants' extension ids: 'name/' up to
    'name0' ('0' follows '/') holds exactly the ids that start with 'name/'."""
    gaps, low = [], ""
    for name in tenants:
        gaps.append((low, name + "/"))
        low = name + "0"
    gaps.append((low, chr(0x10FFFF)))  # above every id
    return gaps


class SQLStore(StateStore):
    """Everything both SQL back ends share."""

    def __init__(self, engine: Engine, shown: str):
        self.engine = engine
        self.url_for_display = shown
        try:
            self._ensure_schema()
        except SQLAlchemyError as exc:
            raise ReconcilerError(
                f"cannot open the state at {shown}: {short_reason(exc)} — check --state / RECONCILER_STATE"
            ) from None

    # -- schema -----------------------------------------------------------
    def _ensure_schema(self) -> None:
        defaults = {"schema_version": str(SCHEMA_VERSION), "serial": "0", "revision": "0",
                    "state_id": uuid.uuid4().hex}
        self.created = False
        if not self._schema_complete(defaults):
            # Many processes may open a new state at once (CI runners): the tables and
            # their first rows are created in one transaction that only one of them
            # runs at a time; the others then find everything in place.
            with self._write_transaction() as conn:
                self._guard_schema(conn)
                self.created = not self.engine.dialect.has_table(conn, resources_table.name)
                metadata.create_all(conn, checkfirst=True)
                for statement in self._revision_triggers():
                    conn.exec_driver_sql(statement)
                present = set(conn.execute(select(meta_table.c.key)).scalars())
                for key, value in defaults.items():
                    if key not in present:
                        conn.execute(insert(meta_table).values(key=key, value=value))
        version = int(self._meta("schema_version"))
        if version == 1:
            self._migrate_from_v1()
            version = 2
        if version == 2:
            self._migrate_from_v2()
            version = 3
        if str(version) not in READABLE_VERSIONS:
            raise ReconcilerError(
                f"the state at {self.url_for_display} has schema version {version}, "
                f"this reconciler understands {SCHEMA_VERSION} — upgrade reconciler"
            )

    def _migrate_from_v2(self) -> None:
        """v3 adds the owner column (NULL: not owned yet, see ownership.py), the state id
        (added with the meta defaults) and counts TRUNCATE as a revision on PostgreSQL."""
        try:
            with self._write_transaction() as conn:
                self._guard_schema(conn)
                if int(self._meta("schema_version", conn)) != 2:
                    return  # another process migrated meanwhile
                conn.exec_driver_sql("ALTER TABLE reconciler_resources ADD COLUMN owner "
                                     "VARCHAR(300)")
                for statement in self._revision_triggers():
                    conn.exec_driver_sql(statement)
                conn.execute(update(meta_table).where(meta_table.c.key == "schema_version")
                             .values(value="3"))
        except SQLAlchemyError as exc:
            raise ReconcilerError(
                f"the state at {self.url_for_display} must be migrated to schema version "
                f"3 (an owner per resource), which failed: {short_reason(exc)} "
                "— run reconciler once with a role that may write the state") from None
        log.info("state migrated to schema version 3: resources have no owner yet")

    def _migrate_from_v1(self) -> None:
        """Drop what v1 kept that lets a reader test guesses or forge plans.

        v1 stored `salt$sha256(salt, value)` per secret (a 4-digit PIN falls in
        10,000 tries) and a plan-signing key. Each hash becomes a record with no
        value-derived part: `initial` for the initial PIN (recognised once, here),
        else `legacy` (taken as matching until the secret is next written).
        """
        try:
            with self._write_transaction() as conn:
                if int(self._meta("schema_version", conn)) != 1:
                    return  # another process migrated first
                rows = conn.execute(select(resources_table.c.kind, resources_table.c.id,
                                           resources_table.c.secrets)
                                    .where(resources_table.c.secrets != "{}")).all()
                for kind, ident, secrets_text in rows:
                    converted = {name: _record_from_v1(value)
                                 for name, value in json.loads(secrets_text).items()}
                    conn.execute(update(resources_table)
                                 .where(resources_table.c.kind == kind, resources_table.c.id == ident)
                                 .values(secrets=encode_json(converted)))
                conn.execute(delete(meta_table).where(meta_table.c.key == "signing_key"))
                conn.execute(update(meta_table).where(meta_table.c.key == "schema_version")
                             .values(value="2"))
        except SQLAlchemyError as exc:
            raise ReconcilerError(
                f"the state at {self.url_for_display} must be migrated to schema version "
                f"{SCHEMA_VERSION} (salted secret hashes are dropped), which failed: "
                f"{short_reason(exc)} — run reconciler once with a role that may write the state"
            ) from None
        log.info("state migrated to schema version 2: secret hashes dropped")

    def _schema_complete(self, defaults: dict[str, str]) -> bool:
        """True when the tables and meta rows exist (a read: a read-only state can be planned)."""
        with self.engine.connect() as conn:
            if not all(self.engine.dialect.has_table(conn, table.name)
                       for table in metadata.sorted_tables):
                return False
            return set(defaults) <= set(conn.execute(select(meta_table.c.key)).scalars())

    def _write_transaction(self):
        """A transaction that will write (SQLite takes the write lock at its start)."""
        return self.engine.begin()

    def _guard_schema(self, conn) -> None:
        """Serialise schema creation between processes (within `conn`'s transaction)."""

    def _revision_triggers(self) -> list[str]:
        """DDL that bumps meta 'revision' on every write to the resources table."""
        return [
            f"CREATE TRIGGER IF NOT EXISTS reconciler_revision_{event.lower()} AFTER {event} "
            "ON reconciler_resources BEGIN UPDATE reconciler_meta "
            "SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'; END"
            for event in ("INSERT", "UPDATE", "DELETE")
        ]

    def version(self) -> tuple[int, int]:
        """(serial, revision): the revision also moves when rows are edited outside reconciler."""
        with self.engine.connect() as conn:
            rows = dict(conn.execute(select(meta_table.c.key, meta_table.c.value)
                                     .where(meta_table.c.key.in_(("serial", "revision")))).all())
        return int(rows.get("serial", 0)), int(rows.get("revision", 0))

    def _meta(self, key: str, conn=None) -> str:
        query = select(meta_table.c.value).where(meta_table.c.key == key)
        if conn is not None:
            return conn.execute(query).scalar_one()
        with self.engine.connect() as own:
            return own.execute(query).scalar_one()

    # -- reading ------------------------------------------------------------
    def _read_connection(self):
        return self.engine.connect()

    def snapshot(self, scope: set[str] | None = None,
                 without_extensions_of: frozenset[str] = frozenset()) -> Snapshot:
        columns = resources_table.c
        # Without drift the last-applied text is the attrs text: the database says so
        # instead of sending it twice (a million strings of ~300 bytes at 1M extensions).
        applied_if_other = case((columns.last_applied == columns.attrs, literal("=")),
                                else_=columns.last_applied)
        wanted = (columns.kind, columns.id, columns.scope, columns.attrs, columns.secrets,
                  applied_if_other, columns.owner)
        in_scope = () if scope is None else (columns.scope.in_(sorted(scope)),)
        if without_extensions_of:
            queries = [select(*wanted).where(or_(columns.kind < "extension",
                                                 columns.kind > "extension"), *in_scope),
                       self._extensions_except(wanted, without_extensions_of, *in_scope)]
        else:
            queries = [select(*wanted).where(*in_scope)]
        with self._read_connection() as conn, conn.begin():
            serial = int(self._meta("serial", conn))
            resources = {}
            loads = orjson.loads
            # Secret records without a fingerprint ('0000' PINs: "initial") are alike: one
            # decoded object for all rows that have the same text (a snapshot is read-only).
            shared_secrets: dict[str, dict] = {"{}": {}}
            common: dict[str, str] = {}  # values many rows repeat: one string each
            shared_addons: dict[tuple, list] = {}
            rows = (row for query in queries  # fetched in batches, not a call per row
                    for batch in conn.execute(query).partitions(10_000) for row in batch)
            for kind, ident, scope_of, attrs_text, secrets_text, applied_text, owner in rows:
                attrs = loads(attrs_text)
                if kind == "extension":
                    for name in REPEATED_VALUES:
                        value = attrs.get(name)
                        if value.__class__ is str:
                            attrs[name] = common.setdefault(value, value)
                    addons = attrs.get("addons")
                    if addons.__class__ is list:  # one list per set of add-ons (read-only)
                        attrs["addons"] = shared_addons.setdefault(tuple(addons), addons)
                if applied_text == "=":
                    applied = attrs
                else:
                    applied = loads(applied_text) if applied_text else None
                secrets_of = shared_secrets.get(secrets_text)
                if secrets_of is None:
                    secrets_of = loads(secrets_text)
                    if '"fp"' not in secrets_text:
                        shared_secrets[secrets_text] = secrets_of
                # One string per kind, account and owner, not one per row (~170 bytes each).
                kind, scope_of = intern(kind), intern(scope_of)
                resources[(kind, ident)] = StateResource(kind, ident, scope_of, attrs, secrets_of,
                                                         applied, owner and intern(owner))
        return Snapshot(serial, resources)

    def _extensions_except(self, wanted, tenants: frozenset[str], *conditions):
        """A query of the extensions of all tenants but `tenants` (an extension's id is
        'tenant/number'). On SQLite, one index range between each two of the tenants' id
        prefixes: the rows of the tenants left out are never read. PostgreSQL compares in
        its locale's collation, where an id prefix need not be one range: it filters."""
        table = resources_table
        if self.engine.dialect.name == "postgresql":
            return select(*wanted).where(table.c.kind == "extension",
                                         func.split_part(table.c.id, "/", 1).not_in(sorted(tenants)),
                                         *conditions)
        gaps = values(column("low", String), column("high", String), name="gaps").data(
            _gaps_between(sorted(tenants))).cte("gaps")
        return select(*wanted).select_from(gaps.join(table, and_(
            table.c.kind == "extension", table.c.id >= gaps.c.low, table.c.id < gaps.c.high))
        ).where(*conditions)

    def platform(self, without_extensions_of: frozenset[str] = frozenset()):
        columns = resources_table.c
        wanted = (columns.kind, columns.id, columns.scope, columns.attrs, columns.owner)
        # A DID is a string, null when there is none; in the text as encode_json writes it
        # (and as rows written before 2026-12 have it, with a blank).
        with_did = or_(columns.attrs.like('%"did":"%'), columns.attrs.like('%"did": "%'))
        if without_extensions_of:
            queries = [select(*wanted).where(columns.kind.in_(PLATFORM_KINDS)),
                       self._extensions_except(wanted, without_extensions_of, with_did)]
        else:
            queries = [select(*wanted).where(or_(columns.kind.in_(PLATFORM_KINDS),
                                                 and_(columns.kind == "extension", with_did)))]
        with self._read_connection() as conn, conn.begin():
            return {(kind, ident): StateResource(kind, ident, scope, orjson.loads(attrs), owner=owner)
                    for query in queries
                    for kind, ident, scope, attrs, owner in conn.execute(query)}

    def changes_since(self, serial: int) -> list[ChangeRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(changes_table).where(changes_table.c.serial > serial)
                .order_by(changes_table.c.serial)
            )
            return [ChangeRecord(r.serial, r.kind, r.id, r.scope, r.action, r.applied_at)
                    for r in rows]

    # -- writing ------------------------------------------------------------
    def _apply_transaction(self):
        """The transaction of an apply's writes: checks first that the lock is still held."""
        return self._write_transaction()

    def write(self, writes: list[Write]) -> int:
        now = _now()
        with self._apply_transaction() as conn:
            serial = int(self._meta("serial", conn))
            creates, updates, deletes, log_rows = [], [], [], []
            for item in writes:
                serial += 1
                log_rows.append({"serial": serial, "kind": item.kind, "id": item.id,
                                 "scope": item.scope, "action": item.action, "applied_at": now})
                if item.attrs is None:
                    deletes.append({"k": item.kind, "i": item.id})
                else:
                    encoded = encode_json(item.attrs)
                    (creates if item.action == "create" else updates).append({
                        "kind": item.kind, "id": item.id, "scope": item.scope, "attrs": encoded,
                        "secrets": encode_json(item.secrets),
                        "last_applied": encoded, "serial": serial, "owner": item.owner,
                    })
            _insert_many(conn, resources_table, creates)
            self._write_rows(conn, updates, deletes)
            _insert_many(conn, changes_table, log_rows)
            conn.execute(update(meta_table).where(meta_table.c.key == "serial")
                         .values(value=str(serial)))
            conn.execute(update(meta_table).where(  # rows in the version 4 text: see there
                meta_table.c.key == "schema_version", meta_table.c.value != str(SCHEMA_VERSION))
                .values(value=str(SCHEMA_VERSION)))
        return serial

    def _write_rows(self, conn, updates: list[dict], deletes: list[dict]) -> None:
        for row in updates:
            # Secrets left out of the manifest stay as they are (unmanaged).
            old = conn.execute(select(resources_table.c.secrets).where(
                resources_table.c.kind == row["kind"], resources_table.c.id == row["id"])).scalar()
            merged = {**json.loads(old or "{}"), **json.loads(row["secrets"])}
            values = {"scope": row["scope"], "attrs": row["attrs"], "serial": row["serial"],
                      "last_applied": row["last_applied"],
                      "secrets": encode_json(merged)}
            if row["owner"] is not None:
                values["owner"] = row["owner"]
            done = conn.execute(
                update(resources_table)
                .where(resources_table.c.kind == row["kind"], resources_table.c.id == row["id"])
                .values(**values))
            _expect_one(done.rowcount, "update", row["kind"], row["id"])
        for row in deletes:
            done = conn.execute(delete(resources_table).where(
                resources_table.c.kind == row["k"], resources_table.c.id == row["i"]))
            _expect_one(done.rowcount, "delete", row["k"], row["i"])

    def identity(self) -> str:
        return self._meta("state_id")

    def revision_tracked(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return bool(conn.execute(text(self._TRIGGERS_PRESENT)).scalar())
        except SQLAlchemyError:
            return False

    _TRIGGERS_PRESENT = SQLITE_TRIGGERS_PRESENT

    def history_mark(self, serial: int) -> str:
        if serial == 0:
            return ""
        with self.engine.connect() as conn:
            row = conn.execute(select(changes_table).where(changes_table.c.serial == serial)).first()
        if row is None:
            return "missing"
        return hashlib.sha256(json.dumps([row.serial, row.kind, row.id, row.scope, row.action,
                                          row.applied_at]).encode()).hexdigest()[:32]

    def close(self) -> None:
        self.engine.dispose()


def _expect_one(rowcount: int, action: str, kind: str, ident: str) -> None:
    """An update or delete must hit its row: one deleted meanwhile is not 'done'."""
    if rowcount != 1:
        raise StateConflict(f"cannot {action} {kind} {ident}: it is no longer in the state "
                            "(changed outside this apply meanwhile)")


class SQLiteStore(SQLStore):
    """The embedded default: one SQLite file, WAL mode, a lock file beside it."""

    def __init__(self, url: str, shown: str, path: Path):
        self.path = path
        self._lock = None
        # `path` exists (0600 when reconciler created it): SQLite gives its -wal and -shm
        # files the same mode.
        engine = create_engine(url, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may wait
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # A real transaction: reads see one snapshot. A writer takes the write lock
            # up front (IMMEDIATE): a read transaction that later wants to write fails at
            # once with "database is locked" when another process wrote in between.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        super().__init__(engine, shown)

    @contextmanager
    def _write_transaction(self):
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def lock(self, timeout: float):
        lock_path = self.path.with_name(self.path.name + ".lock")  # `path` is the real path
        try:
            fd = open_lock_file(lock_path)
        except OSError as exc:
            raise ReconcilerError(
                f"cannot use the lock file {lock_path}: "
                f"{'it is a symbolic link' if exc.errno == errno.ELOOP else exc.strerror} — "
                "remove it (reconciler creates a regular file there)") from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(_holder_text(_read_holder(fd))) from None
                    time.sleep(0.1)
            holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": _now()}).encode()
            os.pwrite(fd, holder, 0)  # one write: a waiting process never reads half of it
            os.ftruncate(fd, len(holder))
            self._lock = (fd, lock_path)
            try:
                yield
            finally:
                self._lock = None
                os.ftruncate(fd, 0)  # a released lock names no holder
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    @contextmanager
    def _apply_transaction(self):
        with self._write_transaction() as conn:
            self.assert_locked()
            yield conn

    def assert_locked(self) -> None:
        if self._lock is not None:
            self._check_lock_file(*self._lock)

    @staticmethod
    def _check_lock_file(fd: int, lock_path: Path) -> None:
        """The flock is on an inode: a lock file removed (and made again by another apply)
        leaves this process locking a file nobody else sees."""
        try:
            current = os.stat(lock_path, follow_symlinks=False)
        except OSError:
            current = None
        mine = os.fstat(fd)
        if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            raise StateConflict(f"the state lock was lost: the lock file {lock_path} was removed "
                                "or replaced during the apply — nothing more is written; check "
                                "that no other apply ran, then plan again")


def _read_holder(fd: int) -> str:
    """The holder's record; the holder writes it right after locking, so wait briefly."""
    raw = b""
    for _ in range(20):
        raw = os.pread(fd, 4096, 0)
        if raw.strip():
            break
        time.sleep(0.05)
    return raw.decode("utf-8", "replace").strip()


def _holder_text(raw: str) -> str:
    try:
        holder = json.loads(raw)
        return f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "an unknown process"


class PostgresStore(SQLStore):
    """Shared state for teams; apply is serialised by an advisory lock."""

    def __init__(self, url: str, shown: str):
        self._lock_conn = None
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        super().__init__(engine, shown)

    def _read_connection(self):
        return self.engine.connect().execution_options(isolation_level="REPEATABLE READ")

    def _revision_triggers(self) -> list[str]:
        return [
            "CREATE OR REPLACE FUNCTION reconciler_bump_revision() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN UPDATE reconciler_meta "
            "SET value = (value::bigint + 1)::text WHERE key = 'revision'; RETURN NULL; END $$",
            "CREATE OR REPLACE TRIGGER reconciler_revision AFTER INSERT OR UPDATE OR DELETE "
            "OR TRUNCATE ON reconciler_resources FOR EACH STATEMENT EXECUTE FUNCTION reconciler_bump_revision()",
        ]

    def _guard_schema(self, conn) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})

    # INSERT (4), DELETE (8), UPDATE (16) and TRUNCATE (32), and the trigger not disabled
    _TRIGGERS_PRESENT = ("SELECT count(*) = 1 FROM pg_trigger WHERE tgname = 'reconciler_revision' "
                         "AND tgrelid = 'reconciler_resources'::regclass AND tgenabled <> 'D' "
                         "AND tgtype & 60 = 60")

    @contextmanager
    def lock(self, timeout: float):
        # Imported here: the PostgreSQL dialect pulls in asyncio, ~50 ms at every start.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        locked = False
        try:
            # The lock lives as long as this session. A runner that vanishes without
            # closing its connection (a preempted CI VM) would hold it until the server's
            # TCP keepalive gives up, two hours by default: probe this session sooner.
            conn.execute(text("SET tcp_keepalives_idle = 30"))
            conn.execute(text("SET tcp_keepalives_interval = 10"))
            conn.execute(text("SET tcp_keepalives_count = 6"))
            deadline = time.monotonic() + timeout
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": ADVISORY_LOCK_KEY}).scalar():
                if time.monotonic() >= deadline:
                    raise LockTimeout(self._holder(conn))
                time.sleep(0.2)
            values = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now()}
            conn.execute(pg_insert(lock_holder_table).values(name="apply", **values)
                         .on_conflict_do_update(index_elements=["name"], set_=values))
            locked = True
            self._lock_conn = conn
            yield
        finally:
            self._lock_conn = None
            try:
                if locked:  # a released lock names no holder (a crashed one's row is replaced)
                    conn.execute(delete(lock_holder_table))
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except SQLAlchemyError:  # the session is gone: so is its lock
                pass
            conn.close()

    @contextmanager
    def _apply_transaction(self):
        """Under the lock, an apply writes in the session that holds the advisory lock.

        The server can end that session (idle_session_timeout, a restart, a
        network cut), and with it the lock, while another apply may then take
        it. Writing in the locking session itself means a lost lock can never
        be written through: the write fails, and apply stops.
        """
        if self._lock_conn is None:
            with self._write_transaction() as conn:
                yield conn
            return
        conn = self._lock_conn
        try:
            conn.commit()  # ends SQLAlchemy's autobegun (autocommit) transaction, if any
            conn.execution_options(isolation_level="READ COMMITTED")
            transaction = conn.begin()
        except SQLAlchemyError as exc:
            raise _lock_lost(exc) from None
        try:
            self._check_held(conn)
            with transaction:
                yield conn
        finally:
            if transaction.is_active:
                transaction.rollback()
            try:
                conn.commit()
                conn.execution_options(isolation_level="AUTOCOMMIT")
            except SQLAlchemyError:
                pass

    def assert_locked(self) -> None:
        if self._lock_conn is not None:
            self._check_held(self._lock_conn)

    @staticmethod
    def _check_held(conn) -> None:
        """The session of `conn` still holds the advisory lock (else StateConflict)."""
        try:
            held = conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objid = :k"), {"k": ADVISORY_LOCK_KEY}).scalar()
        except SQLAlchemyError as exc:
            raise _lock_lost(exc) from None
        if not held:
            raise StateConflict("the state lock was lost: the session no longer holds it — "
                                "nothing more is written; plan again to see what is left")

    @staticmethod
    def _holder(conn) -> str:
        """Who holds the lock; it writes its row right after locking, so wait briefly."""
        for _ in range(20):
            row = conn.execute(select(lock_holder_table)).first()
            if row is not None:
                return f"host {row.host}, pid {row.pid}, since {row.since}"
            time.sleep(0.05)
        return "an unknown process"


def _lock_lost(exc: Exception) -> StateConflict:
    return StateConflict(f"the state lock was lost ({short_reason(exc)}): the server ended the "
                         "session that held it — nothing more is written; plan again to see "
                         "what is left")


def short_reason(exc: Exception) -> str:
    """A one-line reason without the SQL or connection parameters."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(exc).__name__

