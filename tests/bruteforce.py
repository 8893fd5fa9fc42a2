"""What an attacker with an artifact does to a 4-digit PIN: try all 10,000.

`recover_pins(blob, subjects)` collects every hex or base64 token in the blob
that could be a digest, and every token that could be a salt or key next to
it, then hashes all PINs 0000–9999 every plausible way (plain and salted
MD5/SHA-1/SHA-256/SHA-512 in both orders and with separators, HMAC keyed with
the salt either way, and HMAC/hashes bound to the resource the PIN belongs to).
Any PIN whose digest appears in the blob is recovered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

PINS = [f"{n:04d}" for n in range(10_000)]
_HEX_DIGEST = re.compile(rb"(?<![0-9a-fA-F])([0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}"
                         rb"|[0-9a-fA-F]{128})(?![0-9a-fA-F])")
_B64_DIGEST = re.compile(rb"[A-Za-z0-9+/_-]{43}=?|[A-Za-z0-9+/_-]{22,27}={0,2}")


def _digests(blob: bytes) -> set[bytes]:
    found = {m.lower() for m in _HEX_DIGEST.findall(blob)}
    for token in _B64_DIGEST.findall(blob):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                found.add(decode(token + b"=" * (-len(token) % 4)).hex().encode())
            except ValueError:
                pass
    return found


def _salts(blob: bytes, limit: int = 120) -> list[bytes]:
    """Salt or key candidates: the tokens next to a '$' (the `salt$digest` form), every
    hex token of 8–32 digits and every key id of a `scheme:id:digest` triple."""
    near = re.findall(rb"([A-Za-z0-9+/_.-]{4,64})\$", blob)
    hex_tokens = re.findall(rb"(?<![0-9a-fA-F])([0-9a-fA-F]{8,32})(?![0-9a-fA-F])", blob)
    key_ids = re.findall(rb"[a-z0-9-]+:([A-Za-z0-9]{4,32}):[0-9a-fA-F]{32,}", blob)
    return list(dict.fromkeys([b"", *near, *key_ids, *hex_tokens]))[:limit]


def _candidates(pin: bytes, salt: bytes, subjects: list[bytes]):
    for message in (pin, salt + pin, pin + salt, salt + b"\0" + pin, salt + b"$" + pin,
                    pin + b"\0" + salt):
        yield hashlib.sha256(message).hexdigest().encode()
    for name in ("md5", "sha1", "sha512"):
        for message in (pin, salt + pin, pin + salt):
            yield hashlib.new(name, message).hexdigest().encode()
    if salt:
        yield hmac.new(salt, pin, hashlib.sha256).hexdigest().encode()
        yield hmac.new(pin, salt, hashlib.sha256).hexdigest().encode()
        for subject in subjects:
            yield hmac.new(salt, subject + b"\0" + pin, hashlib.sha256).hexdigest().encode()
    for subject in subjects:
        yield hashlib.sha256(subject + b"\0" + pin).hexdigest().encode()


def recover_pins(blob: bytes | str, subjects: list[str] = ()) -> set[str]:
    """The 4-digit PINs whose digest (any plausible scheme) appears in `blob`."""
    data = blob.encode() if isinstance(blob, str) else blob
    digests = _digests(data)
    if not digests:
        return set()
    salts = _salts(data)
    subject_bytes = [s.encode() for s in subjects]
    recovered = set()
    for pin in PINS:
        encoded = pin.encode()
        for salt in salts:
            if any(candidate in digests for candidate in _candidates(encoded, salt, subject_bytes)):
                recovered.add(pin)
                break
    return recovered
