"""Plan cache: a plan of unchanged files against an unchanged state is not redone.

An entry is served only when everything the plan was computed from is the
same: the bytes of every file in the environment and in the templates it
used (directories found through symbolic links, and where each link points),
the values of the environment variables it read (compared as HMACs, never
stored), reconciler's own source and the Python running it (a new reconciler
version is new source), the plan options, and the state: its id, serial and
revision (a counter that triggers bump on *any* write to the resources table,
including edits and, on PostgreSQL, TRUNCATE made outside reconciler).
When the state cannot show that its triggers are in place, nothing is cached.
A plan with errors is never cached (a fix outside the environment, in a
template directory the broken plan never reached, would not be seen).

Entries are authenticated: each carries an HMAC-SHA256 of its content with a
per-user key kept outside the cache (`$XDG_CONFIG_HOME/reconciler/cache.key`,
mode 0600). An edited, truncated or foreign entry (a CI cache restored from
another job) fails the check and is ignored. Entries hold the plan JSON
without secret hashes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from .digests import digest_session, file_digest
from .files import PRIVATE, write_private
from .lifecycle import today

log = logging.getLogger(__name__)

_template_dirs: ContextVar[set | None] = ContextVar("template_dirs", default=None)
_env_vars: ContextVar[set | None] = ContextVar("env_vars", default=None)
_secret_files: ContextVar[set | None] = ContextVar("secret_files", default=None)


def record_template_dir(path: Path) -> None:
    """Called by the template stage for every template directory it renders."""
    seen = _template_dirs.get()
    if seen is not None:
        seen.add(str(path))


def record_env_var(name: str) -> None:
    """Called by secret resolution for every environment variable it reads."""
    seen = _env_vars.get()
    if seen is not None:
        seen.add(name)


def record_secret_file(path: Path) -> None:
    """Called by secret resolution for every secret file it reads."""
    seen = _secret_files.get()
    if seen is not None:
        seen.add(str(path))


@contextmanager
def recording():
    """Collect the template directories, environment variables and secret files a plan reads."""
    dirs, names, files = set(), set(), set()
    tokens = (_template_dirs.set(dirs), _env_vars.set(names), _secret_files.set(files))
    try:
        yield dirs, names, files
    finally:
        _template_dirs.reset(tokens[0])
        _env_vars.reset(tokens[1])
        _secret_files.reset(tokens[2])


def cache_dir() -> Path:
    """`RECONCILER_CACHE_DIR`, else `.reconciler/cache` beside the default state: at the top
    of the git work tree (found without running git: a warm plan starts in ~0.1 s), else in
    the current folder."""
    configured = os.environ.get("RECONCILER_CACHE_DIR")
    if configured:
        return Path(configured)
    here = Path.cwd()
    top = next((folder for folder in (here, *here.parents) if (folder / ".git").exists()), here)
    return top / ".reconciler" / "cache"


def env_digest(env: Path) -> bytes:
    digest = hashlib.sha256()
    _tree_digest(env, digest)
    return digest.digest()


def _files(root: Path):
    """(path relative to `root`, real path) of the files under `root`, following symbolic
    links to directories (each real directory once), in a stable order."""
    seen = set()
    top = len(os.path.join(root, ""))
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            # realpath walks every component: only a link needs it (100,000s of files)
            target = os.path.realpath(path) if os.path.islink(path) else os.path.join(real, name)
            if os.path.isfile(target):
                yield path[top:], target


def _tree_digest(root: Path, digest, skip: frozenset = frozenset()) -> None:
    """Names, link targets and contents of the files under `root`; of those in `skip` only
    the name. A re-pointed symbolic link changes the digest even when the bytes are equal."""
    digest.update(os.path.realpath(root).encode() + b"\0")
    for relative, real in _files(root):
        digest.update(relative.encode() + b"\0")
        digest.update(real.encode() + b"\0")
        if real not in skip:
            digest.update(file_digest(real))


def fingerprint(key, env: Path, template_dirs: list[str], env_vars: list[str],
                secret_files: list[str]) -> str:
    """What a plan was made from; secrets only as HMACs with the fingerprint `key`."""
    digest = hashlib.sha256()
    _tree_digest(env, digest, frozenset(secret_files))
    for directory in template_dirs:  # as the Use names it: a re-pointed link is seen
        digest.update(directory.encode() + b"\0" + os.path.realpath(directory).encode() + b"\0")
        if Path(directory).is_dir():
            _tree_digest(Path(directory), digest)
    if env_vars or secret_files:
        secrets = hmac.new(key.secret, b"reconciler plan cache", hashlib.sha256)
        for name in env_vars:
            value = os.environ.get(name)
            secrets.update(name.encode() + b"\0" + (b"-" if value is None else b"+" + value.encode()))
        for name in secret_files:
            path = Path(name)
            secrets.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"-"))
        digest.update(secrets.digest())
    return digest.hexdigest()


@functools.cache
def code_digest() -> str:
    """A digest of reconciler's own source and of the Python that runs it: a changed
    reconciler never reuses what an older one cached."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def entry_path(env: Path, state_url: str, options) -> Path:
    # today's date: a scheduled create falls due on its start date without any file changing
    ident = json.dumps([str(env.resolve()), state_url, asdict(options), code_digest(),
                        today().isoformat()])
    return cache_dir() / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")


def cache_key() -> bytes:
    """The per-user key that authenticates cache entries: made once, 0600, never in the cache."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "reconciler" / "cache.key"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        except FileExistsError:  # another process made it first
            pass
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        key = handle.read()
    if len(key) != 32:
        raise OSError(f"the cache key {path} is damaged")
    return key


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def lookup(path: Path, key, env: Path, state_version: tuple) -> dict | None:
    """The cached plan JSON, or None when anything it was made from changed or the entry
    fails its check."""
    try:
        wrapper = json.loads(path.read_text(encoding="utf-8"))
        body = wrapper["body"]
        if not hmac.compare_digest(str(wrapper["mac"]), _mac(cache_key(), body)):
            log.info("plan cache entry %s failed its check (edited?): ignored", path)
            return None
        entry = json.loads(body)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if tuple(entry.get("state", ())) != tuple(state_version):
        return None
    secret_files = entry.get("secret_files", [])
    if (entry["env_vars"] or secret_files) and key is None:
        return None
    if entry.get("fingerprint") != fingerprint(key, env, entry["template_dirs"], entry["env_vars"],
                                               secret_files):
        return None
    log.info("plan served from the cache (%s): nothing changed since the last plan", path)
    return entry["plan"]


def store(path: Path, key, env: Path, state_version: tuple, plan: Callable[[], dict],
          template_dirs: set, env_vars: set, secret_files: set) -> Callable[[], None] | None:
    """The write of a cache entry for `plan` (None when it cannot be cached). What the plan
    was made from is taken now; the plan is serialised and written when the write is
    called."""
    dirs, names, files = sorted(template_dirs), sorted(env_vars), sorted(secret_files)
    if (names or files) and key is None:
        log.debug("plan not cached: it read secrets and no fingerprint key is configured")
        return None
    made_from = fingerprint(key, env, dirs, names, files)
    return lambda: _write(path, {"state": list(state_version), "template_dirs": dirs,
                                 "env_vars": names, "secret_files": files,
                                 "fingerprint": made_from, "plan": plan()})


def _write(path: Path, entry: dict) -> None:
    try:
        body = json.dumps(entry, ensure_ascii=False)
        write_private(path, json.dumps({"mac": _mac(cache_key(), body), "body": body},
                                       ensure_ascii=False))
    except OSError as exc:  # a cache that cannot be written only costs time
        log.debug("cannot write the plan cache: %s", exc)


def cached_plan(env: Path, state, options, build, from_dict, to_dict, later: list | None = None):
    """`build(env, state, options)`, or the cached result when nothing it reads has changed.

    With `later`, the cache write is appended to it as a callable instead of
    done at once, so the caller can print the plan first (the write serialises
    the whole plan: seconds at 100k actions).
    """
    from .secrets import SecretError, fingerprint_key  # secrets imports this module

    try:
        key = fingerprint_key()
    except SecretError:
        key = None  # the plan reports the bad key
    state_version = state.cache_version()
    if state_version is None:
        log.info("plan not cached: the state's revision triggers are missing or disabled")
        return build(env, state, options)
    path = entry_path(env, state.url_for_display, options)
    with digest_session():  # each file hashed once, however often it is looked at
        cached = lookup(path, key, env, state_version)
        if cached is not None:
            return from_dict(cached)
        before = env_digest(env)
        with recording() as (dirs, names, files):
            plan = build(env, state, options)
        # A plan that read a target is never cached: the platform can change without any
        # file or the state changing, and reading it back is what such a plan is for.
        if plan.state_serial != state_version[1] or plan.errors \
                or env_digest(env) != before or getattr(plan, "providers", None):
            return plan
        write = store(path, key, env, state_version, lambda: to_dict(plan), dirs, names, files)
    if write is not None and later is not None:
        later.append(write)
    elif write is not None:
        write()
    return plan
