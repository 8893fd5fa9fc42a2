"""Providers: the real platforms a `kind: Target` names (see base.py for the interface)."""

from __future__ import annotations

from ..manifests import TargetEntry
from .base import Observed, Provider, TargetWrite
from .kamailio import KamailioProvider

PROVIDERS: dict[str, type] = {KamailioProvider.provider: KamailioProvider}
PROVIDER_OF_KIND: dict[str, type] = {k: p for p in PROVIDERS.values() for k in p.kinds}
TARGET_KINDS: frozenset[str] = frozenset(PROVIDER_OF_KIND)


def provider_for(target: TargetEntry) -> Provider:
    """The (not yet opened) provider of a Target document; its database is resolved."""
    return PROVIDERS[target.model.provider](target.model.name, target.database,
                                             target.at("database"))


__all__ = ["Observed", "Provider", "TargetWrite", "PROVIDERS", "PROVIDER_OF_KIND", "TARGET_KINDS",
           "provider_for"]
