"""Secrets (PINs, passwords): resolving references, hashing, password policy.

A resolved secret is a `SecretValue` whose `repr`/`str` never show the value,
so it cannot leak through an f-string, a log line or a traceback. The state
stores only `salt$sha256(salt + value)`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _random
from dataclasses import dataclass
from pathlib import Path

from .cache import record_env_var
from .model import EnvSecret, FileSecret

REDACTED = "(sensitive value)"


@dataclass(frozen=True, slots=True)
class SecretValue:
    """A secret and where it came from; never printable."""

    _value: str
    origin: str  # "env NAME", "file PATH" or "manifest"

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED}, origin={self.origin!r})"

    __str__ = __repr__

    def matches(self, stored_hash: str | None) -> bool:
        """True when this value hashes to `stored_hash` (`salt$digest`)."""
        if not stored_hash or "$" not in stored_hash:
            return False
        salt, _ = stored_hash.split("$", 1)
        return hmac.compare_digest(hash_secret(self._value, salt), stored_hash)


def hash_secret(value: str, salt: str | None = None) -> str:
    salt = salt or _random.token_hex(8)
    digest = hashlib.sha256((salt + "\0" + value).encode()).hexdigest()
    return f"{salt}${digest}"


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
    if isinstance(secret, EnvSecret):
        record_env_var(secret.env)
        value = os.environ.get(secret.env)
        if value is None:
            raise SecretError(
                f"environment variable {secret.env} is not set",
                f"export {secret.env}=… before running reconciler",
            )
        return SecretValue(value, f"env {secret.env}")
    return _read_secret_file(secret.file, manifest, env)


def _read_secret_file(relative: str, manifest: Path, env: Path) -> SecretValue:
    path = (manifest.parent / relative).resolve()
    if not path.is_relative_to(env.resolve()):
        raise SecretError(
            f"secret file '{relative}' lies outside the environment",
            "keep secret files inside the environment directory",
            always_error=True,
        )
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SecretError(f"secret file '{relative}' does not exist",
                          "create it or fix the path (relative to this manifest)") from None
    except (OSError, UnicodeDecodeError):
        raise SecretError(f"secret file '{relative}' cannot be read as UTF-8 text",
                          "store the secret as a single line of UTF-8 text") from None
    return SecretValue(value, f"file {relative}")


_COMMON_WORDS = (
    "password", "passwort", "qwerty", "qwertz", "admin", "welcome", "willkommen",
    "letmein", "secret", "geheim", "123456", "abcdef", "iloveyou", "sommer", "winter",
)
_LETTERS_THEN_DIGITS = re.compile(r"^[A-Za-z]{0,4}[0-9]+[A-Za-z]{0,2}$")


def password_problem(value: str) -> str | None:
    """Why a password is too weak, or None. Never includes the password."""
    if len(value) < 12:
        return "is shorter than 12 characters"
    lowered = value.lower()
    if len(set(lowered)) < 6:
        return "repeats too few different characters"
    if _LETTERS_THEN_DIGITS.match(value):
        return "is a trivial pattern (a few letters followed by digits, like 'xq12345')"
    if any(word in lowered for word in _COMMON_WORDS):
        return "contains a common word or sequence"
    if _is_sequence(lowered):
        return "is a keyboard or alphabet sequence"
    return None


def _is_sequence(value: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(value, value[1:])}
    return len(steps) == 1 and steps <= {1, -1, 0}
