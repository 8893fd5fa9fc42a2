"""Digests of manifest files, each file hashed once per plan.

A plan needs the digest of every file up to four times: to look the plan up in
the plan cache, to key each file's parse-cache entry, and to see that no file
changed while the plan was made (before and after). At a million extensions that
is 100 MB hashed four times. Within a `digest_session`, a file is hashed again
only when its inode, size or times changed since it was last hashed.

Outside a session every call hashes the file. Sessions are short (one plan): a
file rewritten in the same clock tick with the same size could read as unchanged,
and that must not outlive a plan.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from typing import Iterator

_session: dict | None = None  # path → (stamp, digest) while a session is open


@contextmanager
def digest_session() -> Iterator[None]:
    global _session
    outer, _session = _session, ({} if _session is None else _session)
    try:
        yield
    finally:
        _session = outer


def file_digest(path: str | os.PathLike) -> bytes:
    """The SHA-256 of the file's bytes."""
    if _session is None:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    # The stamp is taken before the bytes are read: a change in between leaves a stamp
    # that no later look at the file matches, so the file is hashed again.
    status = os.stat(path)
    stamp = (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    key = os.fspath(path)
    known = _session.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").digest()
    _session[key] = (stamp, digest)
    return digest
