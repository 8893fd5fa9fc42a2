"""Plan cache: a no-op plan of unchanged files against an unchanged state is not redone.

An entry is served only when everything the plan was computed from is the
same: the bytes of every file in the environment and in the templates it
used, the values of the environment variables it read (compared as HMACs,
never stored), reconciler's version, the plan options, and the state's
serial and revision (a counter that triggers bump on *any* write to the
resources table, including edits made outside reconciler). So it can never
serve a stale plan. Entries hold the plan JSON without secret hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from pathlib import Path

from . import installed_version
from .files import write_private
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
    return Path(os.environ.get("RECONCILER_CACHE_DIR", ".reconciler/cache"))


def env_digest(env: Path) -> bytes:
    digest = hashlib.sha256()
    _tree_digest(env, digest)
    return digest.digest()


def _tree_digest(root: Path, digest, skip: frozenset = frozenset()) -> None:
    """Names and contents of the files under `root`; of those in `skip` only the name."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        if str(path.resolve()) not in skip:
            digest.update(hashlib.sha256(path.read_bytes()).digest())


def fingerprint(key, env: Path, template_dirs: list[str], env_vars: list[str],
                secret_files: list[str]) -> str:
    """What a plan was made from; secrets only as HMACs with the fingerprint `key`."""
    digest = hashlib.sha256()
    _tree_digest(env, digest, frozenset(secret_files))
    for directory in template_dirs:
        digest.update(directory.encode() + b"\0")
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


def _code_digest() -> str:
    """A digest of reconciler's own source: a changed reconciler never reuses old plans."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def entry_path(env: Path, state_url: str, options) -> Path:
    # today's date: a scheduled create falls due on its start date without any file changing
    ident = json.dumps([str(env.resolve()), state_url, asdict(options), installed_version(),
                        _code_digest(), today().isoformat()])
    return cache_dir() / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")


def lookup(path: Path, key, env: Path, state_version: tuple[int, int]) -> dict | None:
    """The cached plan JSON, or None when anything it was made from changed."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if tuple(entry.get("state", ())) != state_version:
        return None
    secret_files = entry.get("secret_files", [])
    if (entry["env_vars"] or secret_files) and key is None:
        return None
    if entry.get("fingerprint") != fingerprint(key, env, entry["template_dirs"], entry["env_vars"],
                                               secret_files):
        return None
    log.info("plan served from the cache (%s): nothing changed since the last plan", path)
    return entry["plan"]


def store(path: Path, key, env: Path, state_version: tuple[int, int], plan: dict,
          template_dirs: set, env_vars: set, secret_files: set) -> None:
    dirs, names, files = sorted(template_dirs), sorted(env_vars), sorted(secret_files)
    if (names or files) and key is None:
        log.debug("plan not cached: it read secrets and no fingerprint key is configured")
        return
    entry = {"state": list(state_version), "template_dirs": dirs, "env_vars": names,
             "secret_files": files, "fingerprint": fingerprint(key, env, dirs, names, files),
             "plan": plan}
    try:
        write_private(path, json.dumps(entry, ensure_ascii=False))
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
    state_version = state.version()
    path = entry_path(env, state.url_for_display, options)
    cached = lookup(path, key, env, state_version)
    if cached is not None:
        return from_dict(cached)
    before = env_digest(env)
    with recording() as (dirs, names, files):
        plan = build(env, state, options)
    # A plan that read a target is never cached: the platform can change without any
    # file or the state changing, and reading it back is what such a plan is for.
    if plan.state_serial == state_version[0] and env_digest(env) == before \
            and not getattr(plan, "providers", None):
        def write() -> None:
            store(path, key, env, state_version, to_dict(plan), dirs, names, files)

        if later is None:
            write()
        else:
            later.append(write)
    return plan
