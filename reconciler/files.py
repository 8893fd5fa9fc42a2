"""Files reconciler writes that may say something about customers: readable by the owner only.

Every write goes through `write_private`: a temporary file beside the target,
written, flushed to disk and renamed over it, so a reader (or an apply) sees
the old file or the whole new one, never a truncated one — a full disk or a
kill in the middle leaves the old file and no temporary behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, content: str | bytes, durable: bool = True) -> None:
    """Write `content` to `path` atomically, mode 0600 from the first byte, and durably
    unless told otherwise (a cache entry may be lost in a crash: it is checked when read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: O_EXCL with a random name, mode 0600 — no other process's file is reused.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)  # a symlink at `path` is replaced, never followed
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (the directory entry)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory: the data is synced
        pass
    finally:
        os.close(fd)


def create_private(path: Path) -> None:
    """Create `path` empty with mode 0600; it must not exist (nor be a dangling symlink)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE))


def open_lock_file(path: Path) -> int:
    """A descriptor on the regular file `path` (created 0600), never through a symlink.

    A lock file that is a symbolic link could point at any file, which the
    holder record would then overwrite: it is refused (OSError ELOOP).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE)
    try:
        if not _is_regular(fd):
            raise IsADirectoryError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)
