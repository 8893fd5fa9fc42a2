"""Where a state URL points: SQLite paths are checked, never invented.

A mistyped path, a path in a missing directory or `:memory:` used to become a
new empty state, and a plan against it showed every resource as new. Now an
explicit SQLite path must name an existing state, except when `reconciler
init` creates one on purpose. The documented default (`DEFAULT_STATE`) is
found from the repository root, so running from a subfolder finds the same
state; it is the one location that is created on first use, and that is
announced.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

from ..diagnostics import ReconcilerError
from ..files import create_private

DEFAULT_STATE = "sqlite:///.reconciler/state.db"
DEFAULT_RELATIVE = Path(".reconciler") / "state.db"


def repository_root(start: Path | None = None) -> Path | None:
    """The git top-level of `start` (the current directory), or None outside a work tree."""
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start or Path.cwd(),
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    top = result.stdout.strip()
    return Path(top) if result.returncode == 0 and top else None


def default_state_path() -> Path:
    """`.reconciler/state.db` at the repository root; outside git, in the nearest folder
    upwards that has one, else in the current folder."""
    root = repository_root()
    if root is not None:
        return root / DEFAULT_RELATIVE
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_RELATIVE).is_file():
            return folder / DEFAULT_RELATIVE
    return here / DEFAULT_RELATIVE


def sqlite_path(url: str, *, create: bool, default: bool) -> Path:
    """The real path of the SQLite state of `url` (an empty file when it is created now)."""
    text = unquote(url.removeprefix("sqlite:").removeprefix("///").split("?", 1)[0])
    if not url.startswith("sqlite:///") or text in ("", ":memory:") or text.startswith("file:") \
            or "mode=memory" in url:
        raise ReconcilerError(
            f"the state URL '{url}' is not a file — an in-memory state would be lost when "
            "reconciler exits; use sqlite:///PATH (sqlite:////ABSOLUTE/PATH) or postgresql://…")
    path = default_state_path() if default else Path(text)
    path = Path(os.path.abspath(path))
    if path.exists():
        real = path.resolve()  # a symlinked state has one lock file: beside the real file
        if not real.is_file():
            raise ReconcilerError(f"the state path {path} is not a file — give the path of "
                                  "the state database file")
        return real
    if not (create or default):
        raise ReconcilerError(
            f"no state at {path} — check --state / RECONCILER_STATE (a typo, another "
            f"folder?); to start a new empty state there, run 'reconciler init --state {url}'")
    if default:
        path.parent.mkdir(mode=0o700, exist_ok=True)  # only the documented `.reconciler`
    elif not path.parent.is_dir():
        raise ReconcilerError(f"cannot create the state {path}: the directory {path.parent} "
                              "does not exist — create it first, or fix the path")
    try:
        create_private(path)
    except FileExistsError:  # a dangling symlink, or another process was faster
        if not path.is_file():
            raise ReconcilerError(f"the state path {path} is a broken symbolic link — "
                                  "remove it or point it at the state file") from None
        return path.resolve()
    except OSError as exc:
        raise ReconcilerError(f"cannot create the state {path}: {exc.strerror} — check the "
                              "path and its permissions") from None
    return path.resolve()


_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&]*")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***.

    Worked on the text, not on a parse: a password with an unescaped '@', '/'
    or ':' would otherwise be split into host and database and shown.
    """
    masked = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = masked.partition("://")
    if not sep or "@" not in rest:
        return masked
    userinfo, _, hostpart = rest.rpartition("@")  # the last '@' ends the credentials
    if ":" not in userinfo and "/" not in userinfo:
        return masked
    return f"{scheme}://{userinfo.split(':', 1)[0].split('/', 1)[0]}:***@{hostpart}"
