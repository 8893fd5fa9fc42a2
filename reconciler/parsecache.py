"""Parse cache: a manifest file whose bytes have not changed is not parsed again.

Parsing is most of a plan's time (seconds at 100,000 extensions), and a change
usually touches one file of many. The loader is a pure function of a file's
bytes and of where it lies (its path, the environment, how the user named
it), so its result — the file's documents and diagnostics — is kept per file
in `<cache dir>/parsed/`, keyed by a digest of all of these and of reconciler's
own code. A plan after a one-file change parses that file and reads the others
back; so does a plan after an apply, whose state changed but whose files did not.

Entries are pickles, and a pickle is only ever loaded after its HMAC-SHA256 with
the per-user cache key (see `cache.cache_key`, kept outside the cache) checked
out: an edited or foreign entry, such as a CI cache restored from another job,
is ignored and the file parsed again. A file with a secret written in plain text
(a PIN other than '0000', a password, a database URL) is never kept: the entry
would outlive the fix of the manifest. Secrets given by reference (`{env:}`,
`{file:}`) are resolved later and never enter an entry. Entries unused for
`KEEP_DAYS` are removed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import time
from pathlib import Path

from .files import write_private

log = logging.getLogger(__name__)

KEEP_DAYS = 14
_MAC_SIZE = 32


class ParseCache:
    """Per-file parse results, authenticated with `mac_key`."""

    def __init__(self, directory: Path, mac_key: bytes):
        self.directory = directory
        self.mac_key = mac_key

    @classmethod
    def open(cls) -> ParseCache | None:
        """The cache of this user and cache directory, or None when it cannot be used."""
        from .cache import cache_dir, cache_key

        try:
            return cls(cache_dir() / "parsed", cache_key())
        except OSError as exc:  # no writable home: parsing again only costs time
            log.debug("parse cache off: %s", exc)
            return None

    def entry(self, path: Path, env: Path, env_shown: str, content: bytes,
              variant: str = "") -> Path:
        """Where the result of parsing the file `path` of `env` is kept, when its bytes
        have the SHA-256 `content` (`variant`: what else was done to it, if anything)."""
        from .cache import code_digest

        digest = hashlib.sha256(code_digest().encode())
        for part in (str(path), str(env), env_shown, variant):
            digest.update(part.encode() + b"\0")
        digest.update(content)
        return self.directory / digest.hexdigest()

    def get(self, entry: Path) -> bytes | None:
        """The pickled result kept at `entry`, if it is there and passes its check."""
        try:
            with open(entry, "rb") as handle:
                content = handle.read()
        except OSError:
            return None
        mac, blob = content[:_MAC_SIZE], content[_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(blob)):
            log.info("parse cache entry %s failed its check (edited?): ignored", entry)
            return None
        try:
            os.utime(entry)  # recently used: kept by `prune`
        except OSError:
            pass
        return blob

    def put(self, entry: Path, blob: bytes) -> None:
        try:
            write_private(entry, self._mac(blob) + blob, durable=False)
        except OSError as exc:  # a cache that cannot be written only costs time
            log.debug("cannot write the parse cache: %s", exc)

    def prune(self) -> None:
        """Remove entries that no plan used for KEEP_DAYS."""
        oldest = time.time() - KEEP_DAYS * 86400
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.stat().st_mtime < oldest:
                    os.unlink(entry.path)
            except OSError:
                pass

    def _mac(self, blob: bytes) -> bytes:
        return hmac.new(self.mac_key, blob, hashlib.sha256).digest()


def loads(blob: bytes):
    """A result from `get` or from a worker (only ever bytes that passed the check or that
    this run produced)."""
    return pickle.loads(blob)


def dumps(result) -> bytes:
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
