"""Kamailio, provisioned through its own database (SQLite or PostgreSQL).

Kamailio's standard tables, as its create scripts make them (Debian ships
them under /usr/share/kamailio/): a tenant is a `domain` row (its
`sip_domain`), an extension a `subscriber` row (`username` = number), a DID
or main number a `dbaliases` row (E.164 digits without '+' → an extension).
Kamailio's auth_db checks digest logins against `ha1` = md5(user:realm:pw)
and `ha1b` = md5(user@domain:realm:pw) with the realm = the SIP domain; the
`password` column stays empty, so no plain text is kept on the platform.

`subscriber` and `domain` have unique keys, so their upserts are
`INSERT … ON CONFLICT`; `dbaliases` has none, so an alias is written by
deleting every row of its identity and inserting one — a duplicate made
outside reconciler is repaired, never multiplied.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import (Column, Integer, MetaData, String, Table, create_engine, delete, event,
                        select, tuple_)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..diagnostics import Diagnostic, ReconcilerError, Source
from ..dids import e164_digits
from ..resources import Key, Resource
from ..secrets import SecretValue
from ..state.location import mask_url
from ..state.sql import short_reason
from .base import Observed, Provider, TargetWrite

log = logging.getLogger(__name__)

# The table versions (Kamailio's `version` table) this provider writes: Kamailio 5.x.
SCHEMA_VERSIONS = {"domain": 2, "subscriber": 7, "dbaliases": 1}
SCRIPTS = "/usr/share/kamailio/{db_sqlite,postgres}/"
CHUNK = 500  # zones per IN (…) list

metadata = MetaData()
version_table = Table("version", metadata, Column("table_name", String(32)),
                      Column("table_version", Integer))
domain_table = Table("domain", metadata, Column("id", Integer, primary_key=True),
                     Column("domain", String(64), unique=True))
subscriber_table = Table(
    "subscriber", metadata, Column("id", Integer, primary_key=True),
    Column("username", String(64)), Column("domain", String(64)), Column("password", String(64)),
    Column("ha1", String(128)), Column("ha1b", String(128)))
alias_table = Table(
    "dbaliases", metadata, Column("id", Integer, primary_key=True),
    Column("alias_username", String(64)), Column("alias_domain", String(64)),
    Column("username", String(64)), Column("domain", String(64)))


def ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def ha1b(username: str, domain: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}@{domain}:{realm}:{password}".encode()).hexdigest()


class KamailioProvider(Provider):
    provider = "kamailio"
    kinds = ("sip_domain", "sip_subscriber", "sip_alias")
    zone_kind = "sip_domain"

    def __init__(self, name: str, database: SecretValue, source: Source | None = None) -> None:
        super().__init__(name)
        self._database = database
        self._source = source
        self._shown = mask_url(database.reveal())
        self._engine: Engine | None = None
        # "user@domain" → (user, domain, ha1, ha1b), as read; never leaves this object
        self._credentials: dict[str, tuple[str, str, str, str]] = {}

    # -- opening ------------------------------------------------------------
    def _fail(self, message: str, hint: str) -> ReconcilerError:
        return ReconcilerError(Diagnostic(
            self._source, f"target '{self.name}' ({self._shown}): {message}", hint))

    def open(self) -> None:
        self._engine = self._create_engine()
        try:
            with self._engine.connect() as conn:
                if not self._engine.dialect.has_table(conn, "version"):
                    raise self._fail("not a Kamailio database (it has no 'version' table)",
                                     f"create it with kamdbctl or the scripts under {SCRIPTS}")
                rows = {name: version for name, version in conn.execute(
                    select(version_table.c.table_name, version_table.c.table_version)
                    .where(version_table.c.table_name.in_(sorted(SCHEMA_VERSIONS))))}
        except SQLAlchemyError as exc:
            raise self._fail(f"cannot read the database: {short_reason(exc)}",
                             "check the target's database URL and that the server is running") \
                from None
        for table, wanted in SCHEMA_VERSIONS.items():
            found = rows.get(table)
            if found is None:
                raise self._fail(f"table '{table}' is missing (no row in 'version')",
                                 f"create it with the Kamailio 5.x scripts under {SCRIPTS}")
            if int(found) != wanted:
                raise self._fail(f"table '{table}' has schema version {found}, this provider "
                                 f"writes version {wanted} (Kamailio 5.x)",
                                 "migrate the Kamailio database (kamdbctl migrate) or use a "
                                 "matching reconciler")

    def _create_engine(self) -> Engine:
        url = self._database.reveal()
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():  # SQLite would create an empty file: never do that
                raise self._fail(f"the database file {path} does not exist",
                                 "create Kamailio's database first (kamdbctl create, or "
                                 "scripts/kamailio.sh init); reconciler never creates it")
            engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=rw&uri=true",
                                   hide_parameters=True)
            event.listen(engine, "connect", _sqlite_busy_timeout)
            return engine
        if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            return create_engine("postgresql+psycopg://" + url.split("://", 1)[1],
                                 hide_parameters=True, pool_pre_ping=True)
        raise self._fail("unsupported database URL",
                         "use sqlite:///PATH or postgresql://USER@HOST/DB")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._credentials.clear()

    # -- what it should hold --------------------------------------------------
    @classmethod
    def zone_of(cls, kind: str, attrs: dict[str, Any]) -> str:
        return attrs["alias_domain"] if kind == "sip_alias" else attrs["domain"]

    def desired(self, tenant: Resource, extensions: list[Resource]) -> list[Resource]:
        domain = tenant.attrs["sip_domain"]
        base = {"target": self.name}
        out = [Resource("sip_domain", domain, tenant.scope, {**base, "domain": domain},
                        doc=tenant.doc, path=tenant.path)]
        for ext in extensions:
            number = ext.attrs["number"]
            secrets = {"sip_password": ext.secrets["sip_password"]}
            out.append(_like(ext, "sip_subscriber", f"{number}@{domain}",
                             {**base, "username": number, "domain": domain,
                              "plain_password": False}, secrets))
            if ext.attrs.get("did"):
                out.append(self._alias(ext, ext.attrs["did"], number, domain))
        main = tenant.attrs.get("main_number")
        if main and extensions:
            numbers = [e.attrs["number"] for e in extensions]
            target = tenant.attrs.get("main_extension") or min(numbers, key=lambda n: (len(n), n))
            out.append(self._alias(tenant, main, target, domain, ("main_number",)))
        return out

    def _alias(self, owner: Resource, number: str, username: str, domain: str,
               path: tuple = ()) -> Resource:
        alias = e164_digits(number)
        return _like(owner, "sip_alias", f"{alias}@{domain}",
                     {"target": self.name, "alias_username": alias, "alias_domain": domain,
                      "username": username, "domain": domain, "copies": 1}, path=path)

    # -- reading ------------------------------------------------------------
    def read(self, zones: set[str]) -> dict[Key, Observed]:
        found: dict[Key, Observed] = {}
        self._credentials.clear()
        ordered = sorted(zones)
        try:
            with self._engine.connect() as conn, conn.begin():
                for start in range(0, len(ordered), CHUNK):
                    self._read_chunk(conn, ordered[start:start + CHUNK], found)
        except SQLAlchemyError as exc:
            raise self._fail(f"cannot read the Kamailio tables: {short_reason(exc)}",
                             "check that the database is reachable and readable") from None
        log.info("target %s: read %d objects in %d domains", self.name, len(found), len(zones))
        return found

    def _read_chunk(self, conn, zones: list[str], found: dict[Key, Observed]) -> None:
        base = {"target": self.name}
        for (domain,) in conn.execute(select(domain_table.c.domain)
                                      .where(domain_table.c.domain.in_(zones))).all():
            found[("sip_domain", domain)] = Observed("sip_domain", domain, domain,
                                                     {**base, "domain": domain})
        s = subscriber_table.c
        rows = conn.execute(select(s.username, s.domain, s.password, s.ha1, s.ha1b)
                            .where(s.domain.in_(zones))).all()  # fetchall: no per-row fetch
        for username, domain, password, row_ha1, row_ha1b in rows:
            ident = f"{username}@{domain}"
            self._credentials[ident] = (username, domain, row_ha1 or "", row_ha1b or "")
            found[("sip_subscriber", ident)] = Observed(
                "sip_subscriber", ident, domain,
                {**base, "username": username, "domain": domain, "plain_password": bool(password)})
        a = alias_table.c
        rows = conn.execute(select(a.alias_username, a.alias_domain, a.username, a.domain)
                            .where(a.alias_domain.in_(zones))).all()
        for alias, alias_domain, username, domain in rows:
            key = ("sip_alias", f"{alias}@{alias_domain}")
            copies = found[key].attrs["copies"] + 1 if key in found else 1
            found[key] = Observed("sip_alias", key[1], alias_domain,
                                  {**base, "alias_username": alias, "alias_domain": alias_domain,
                                   "username": username, "domain": domain, "copies": copies})

    def secret_matches(self, key: Key, name: str, secret: SecretValue) -> bool:
        """Both hashes, computed from the password and compared here (runs 100k times)."""
        stored = self._credentials.get(key[1])
        if stored is None:
            return False
        username, domain, stored_ha1, stored_ha1b = stored
        password = secret.reveal()
        return hmac.compare_digest(stored_ha1, ha1(username, domain, password)) and \
            hmac.compare_digest(stored_ha1b, ha1b(username, domain, domain, password))

    # -- writing ------------------------------------------------------------
    def apply(self, writes: list[TargetWrite]) -> None:
        by_kind: dict[tuple[str, bool], list[TargetWrite]] = {}
        for item in writes:
            by_kind.setdefault((item.kind, item.attrs is not None), []).append(item)
        with self._engine.begin() as conn:
            if domains := by_kind.get(("sip_domain", True)):
                conn.execute(self._insert(domain_table).values(
                    [{"domain": w.attrs["domain"]} for w in domains])
                    .on_conflict_do_nothing(index_elements=["domain"]))
            if subscribers := by_kind.get(("sip_subscriber", True)):
                self._upsert_subscribers(conn, subscribers)
            aliases = by_kind.get(("sip_alias", True), []) + by_kind.get(("sip_alias", False), [])
            if aliases:
                idents = [tuple(w.id.split("@", 1)) for w in aliases]
                for start in range(0, len(idents), CHUNK):
                    conn.execute(delete(alias_table).where(
                        tuple_(alias_table.c.alias_username, alias_table.c.alias_domain)
                        .in_(idents[start:start + CHUNK])))
                rows = [{k: w.attrs[k] for k in ("alias_username", "alias_domain", "username",
                                                  "domain")}
                        for w in aliases if w.attrs is not None]
                if rows:
                    conn.execute(alias_table.insert(), rows)
            if gone := by_kind.get(("sip_subscriber", False)):
                idents = [tuple(w.id.split("@", 1)) for w in gone]
                for start in range(0, len(idents), CHUNK):
                    conn.execute(delete(subscriber_table).where(
                        tuple_(subscriber_table.c.username, subscriber_table.c.domain)
                        .in_(idents[start:start + CHUNK])))
            if gone := by_kind.get(("sip_domain", False)):
                conn.execute(delete(domain_table).where(
                    domain_table.c.domain.in_([w.id for w in gone])))

    def _insert(self, table: Table):
        dialect = self._engine.dialect.name
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)

    def _upsert_subscribers(self, conn, writes: list[TargetWrite]) -> None:
        rows = []
        for item in writes:
            username, domain = item.attrs["username"], item.attrs["domain"]
            first, second = _hashes(username, domain, item.secrets["sip_password"].reveal())
            rows.append({"username": username, "domain": domain, "password": "",
                         "ha1": first, "ha1b": second})
        for start in range(0, len(rows), CHUNK):
            statement = self._insert(subscriber_table)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["username", "domain"],
                set_={"password": "", "ha1": statement.excluded.ha1,
                      "ha1b": statement.excluded.ha1b}), rows[start:start + CHUNK])


def _hashes(username: str, domain: str, password: str) -> tuple[str, str]:
    """ha1 and ha1b, with the realm = the SIP domain (auth_db's default)."""
    return ha1(username, domain, password), ha1b(username, domain, domain, password)


def _like(owner: Resource, kind: str, ident: str, attrs: dict[str, Any],
          secrets: dict[str, SecretValue] | None = None, path: tuple = ()) -> Resource:
    """A target object declared where `owner` (an extension or tenant) is declared."""
    return Resource(kind, ident, owner.scope, attrs, secrets or {}, doc=owner.doc,
                    path=owner.path + path, row=owner.row)


def _sqlite_busy_timeout(dbapi_connection, _record) -> None:
    # Kamailio reads the same file; wait for its short locks instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
