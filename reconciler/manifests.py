"""What one environment declares: typed models with their sources, by kind and identity."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import Source
from .loader import Document
from .model import Extension
from .secrets import SecretValue


@dataclass(slots=True)
class Located:
    """A validated model and the document it came from."""

    model: typing.Any
    doc: Document

    @property
    def source(self) -> Source:
        return self.doc.source

    def at(self, *path: str | int) -> Source:
        return self.doc.locate(*path)


@dataclass(slots=True)
class ExtensionEntry:
    model: Extension
    source: Source
    pin: SecretValue | None = None


@dataclass(slots=True)
class TenantEntry(Located):
    extensions: list[ExtensionEntry] = field(default_factory=list)
    passwords: dict[str, SecretValue] = field(default_factory=dict)  # by user e-mail


@dataclass
class Manifests:
    """Everything one environment declares, by kind and identity."""

    env: Path
    accounts: dict[str, Located] = field(default_factory=dict)
    packages: dict[str, Located] = field(default_factory=dict)
    sites: dict[str, Located] = field(default_factory=dict)
    tenants: dict[str, TenantEntry] = field(default_factory=dict)


