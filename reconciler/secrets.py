"""Secrets (PINs, passwords): resolving references, fingerprints, password policy.

A resolved secret is a `SecretValue` whose `repr`/`str` never show the value,
so it cannot leak through an f-string, a log line or a traceback.

What the state keeps about a secret (a *record*) never lets its reader test a
guess (a 4-digit PIN has only 10,000 values):

- `ref`: where the value comes from (`env:NAME`, `file:PATH`, `literal`, or
  `initial` for the initial PIN 0000) and the reference's `version`;
- `fp`, only when a fingerprint key is configured (`RECONCILER_SECRET_KEY`, or
  a file named by `RECONCILER_SECRET_KEY_FILE`), never stored with the state:
  HMAC-SHA256(key, kind, id, field, value). Without the key it proves nothing.

Without a key secrets are *write-only* (like Terraform's write-only
arguments): written on create and whenever their reference or version
changes; a new value behind the same reference is not noticed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import record_env_var, record_secret_file

if TYPE_CHECKING:
    from .model import EnvSecret, FileSecret

REDACTED = "(sensitive value)"
INITIAL_PIN = "0000"
KEY_ENV = "RECONCILER_SECRET_KEY"
KEY_FILE_ENV = "RECONCILER_SECRET_KEY_FILE"
MIN_KEY_LENGTH = 32
LEGACY_REF = "legacy"  # a record migrated from a v1 state: its hash was dropped


@dataclass(frozen=True, slots=True)
class SecretValue:
    """A secret and where it came from; never printable."""

    _value: str
    origin: str  # "env NAME", "file PATH", "manifest" or "batch FILE:LINE"
    ref: str = "literal"  # what the state records: "env:NAME", "file:PATH", "literal"
    version: int = 0

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED}, origin={self.origin!r})"

    __str__ = __repr__

    @property
    def is_initial_pin(self) -> bool:
        return self.ref == "literal" and self._value == INITIAL_PIN


@dataclass(frozen=True, slots=True)
class FingerprintKey:
    """The key of secret fingerprints; `ident` tells records of another key apart."""

    secret: bytes

    @property
    def ident(self) -> str:
        return hmac.new(self.secret, b"reconciler fingerprint key id", hashlib.sha256).hexdigest()[:12]

    def fingerprint(self, subject: str, value: str) -> str:
        mac = hmac.new(self.secret, subject.encode() + b"\0" + value.encode(), hashlib.sha256)
        return f"hmac-sha256:{self.ident}:{mac.hexdigest()}"


def fingerprint_key() -> FingerprintKey | None:
    """The configured key, or None (write-only secrets). Raises SecretError for a bad key."""
    value = os.environ.get(KEY_ENV)
    where = f"${KEY_ENV}"
    if value is None and os.environ.get(KEY_FILE_ENV):
        where = os.environ[KEY_FILE_ENV]
        try:
            value = Path(where).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise SecretError(f"cannot read the fingerprint key file named by {KEY_FILE_ENV}",
                              "point it at a readable file holding the key") from None
    if not value:
        return None
    if len(value) < MIN_KEY_LENGTH:
        raise SecretError(f"the fingerprint key in {where} is shorter than {MIN_KEY_LENGTH} "
                          "characters", "generate one with 'openssl rand -hex 32'")
    return FingerprintKey(value.encode())


def secret_record(secret: SecretValue, key: FingerprintKey | None, subject: str) -> dict:
    """What the state keeps about a secret just written."""
    if secret.is_initial_pin:
        return {"ref": "initial"}
    record: dict = {"ref": secret.ref, "version": secret.version}
    if key is not None:
        record["fp"] = key.fingerprint(subject, secret.reveal())
    return record


def secret_change(secret: SecretValue, stored: dict | None, key: FingerprintKey | None,
                  subject: str) -> str | None:
    """Why the secret must be written, or None when the state already has it.

    `subject` ("kind/id/field") binds fingerprints to one field, so equal PINs of
    two extensions do not show as equal fingerprints.
    """
    if not isinstance(stored, dict):
        return "set"
    ref = "initial" if secret.is_initial_pin else secret.ref
    if stored.get("ref") == "initial" and ref == "initial":
        return None  # the user changes the initial PIN on the phone: never drift
    if stored.get("ref") != LEGACY_REF and (stored.get("ref") != ref
                                            or stored.get("version", 0) != secret.version):
        return "reference changed"
    if key is None:
        return None
    fp = stored.get("fp")
    if not fp or not fp.startswith(f"hmac-sha256:{key.ident}:"):
        return "no fingerprint with this key yet"
    return None if hmac.compare_digest(fp, key.fingerprint(subject, secret.reveal())) else "changed"


class SecretError(Exception):
    """A reference that cannot be resolved; the message never holds the value.

    A secret that is merely unavailable (variable not exported, file not yet
    decrypted) only matters when values are needed; a reference that can never
    be valid (a file outside the environment) is always an error.
    """

    def __init__(self, message: str, hint: str, *, always_error: bool = False):
        super().__init__(message)
        self.hint = hint
        self.always_error = always_error


def resolve(secret: str | EnvSecret | FileSecret, manifest: Path, env: Path) -> SecretValue:
    """The value behind a manifest secret. Raises SecretError."""
    if isinstance(secret, str):
        return SecretValue(secret, "manifest")
    from .model import EnvSecret  # pydantic: not needed to serve a cached plan

    if isinstance(secret, EnvSecret):
        record_env_var(secret.env)
        value = os.environ.get(secret.env)
        if value is None:
            raise SecretError(
                f"environment variable {secret.env} is not set",
                f"export {secret.env}=… before running reconciler",
            )
        return SecretValue(value, f"env {secret.env}", f"env:{secret.env}", secret.version)
    return _read_secret_file(secret.file, manifest, env, secret.version)


def _read_secret_file(relative: str, manifest: Path, env: Path, version: int) -> SecretValue:
    path = (manifest.parent / relative).resolve()
    if not path.is_relative_to(env.resolve()):
        raise SecretError(
            f"secret file '{relative}' lies outside the environment",
            "keep secret files inside the environment directory",
            always_error=True,
        )
    record_secret_file(path)
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SecretError(f"secret file '{relative}' does not exist",
                          "create it or fix the path (relative to this manifest)") from None
    except (OSError, UnicodeDecodeError):
        raise SecretError(f"secret file '{relative}' cannot be read as UTF-8 text",
                          "store the secret as a single line of UTF-8 text") from None
    return SecretValue(value, f"file {relative}", f"file:{relative}", version)


_COMMON_WORDS = (
    "password", "passwort", "qwerty", "qwertz", "admin", "welcome", "willkommen",
    "letmein", "secret", "geheim", "123456", "abcdef", "iloveyou", "sommer", "winter",
)
_LETTERS_THEN_DIGITS = re.compile(r"^[A-Za-z]{0,4}[0-9]+[A-Za-z]{0,2}$")
_COMMON = re.compile("|".join(map(re.escape, _COMMON_WORDS)))  # one scan, not 15


def password_problem(value: str) -> str | None:
    """Why a password is too weak, or None. Never includes the password."""
    if len(value) < 12:
        return "is shorter than 12 characters"
    lowered = value.lower()
    if len(set(lowered)) < 6:
        return "repeats too few different characters"
    if _LETTERS_THEN_DIGITS.match(value):
        return "is a trivial pattern (a few letters followed by digits, like 'xq12345')"
    if _COMMON.search(lowered):
        return "contains a common word or sequence"
    if _is_sequence(lowered):
        return "is a keyboard or alphabet sequence"
    return None


def _is_sequence(value: str) -> bool:
    """'abcdef…', 'fedcba…' or 'aaaa…'; stops at the first other step (runs for 100k SIP
    passwords in a plan)."""
    step = ord(value[1]) - ord(value[0]) if len(value) > 1 else 0
    return step in (1, -1, 0) and all(ord(b) - ord(a) == step for a, b in zip(value, value[1:]))
