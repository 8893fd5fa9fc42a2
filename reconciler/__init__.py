"""reconciler: declarative config-as-code for cloud-PBX provisioning."""

from __future__ import annotations

DISTRIBUTION = "pbx-reconciler"  # the PyPI name "reconciler" belongs to an unrelated package


def installed_version() -> str:
    """The installed distribution's version (an install from before the rename counts too)."""
    from importlib.metadata import PackageNotFoundError, version  # costs ~20 ms at start-up

    for name in (DISTRIBUTION, "reconciler"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"
