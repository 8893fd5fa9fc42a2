"""Tenant logos: the file's content is part of the plan, and its size is checked.

Seed 004: a small logo shown at the top left of the tenant, "mind the maximum
dimensions". The help page gives no numbers; the limits below are this
project's choice (see docs/catalog-and-cost.md). Pillow reads only the image
header for the dimensions, so a huge or hostile image is never decoded.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_BYTES = 512 * 1024
MAX_WIDTH, MAX_HEIGHT = 600, 200
FORMATS = ("PNG", "JPEG", "GIF")


def logo_problem(path: Path) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for a logo file, or None."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        return (f"is {size // 1024} KiB, more than {MAX_BYTES // 1024} KiB",
                "save it smaller (a logo is shown small at the top left of the tenant)")
    try:
        with Image.open(path) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError):
        return "is not a PNG, JPEG or GIF image", "export the logo as PNG"
    if kind not in FORMATS:
        return f"is a {kind} image, not PNG, JPEG or GIF", "export the logo as PNG"
    if width > MAX_WIDTH or height > MAX_HEIGHT:
        return (f"is {width}×{height} pixels, larger than {MAX_WIDTH}×{MAX_HEIGHT}",
                f"scale it down to at most {MAX_WIDTH} pixels wide and {MAX_HEIGHT} high")
    return None


def logo_digest(path: Path) -> str | None:
    """The SHA-256 of the logo's content: a new image with the same name is an update."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def logo_image(path: Path) -> str | None:
    """The logo's bytes as base64, for the state (at most MAX_BYTES: rules check the size)."""
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None
