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
    """An extension with its PIN; declared in a tenant document or a batch-file row."""

    model: Extension
    pin: SecretValue | None = None
    sip_password: SecretValue | None = None
    row: Source | None = None  # the batch-file row, or …
    doc: Document | None = None  # … the tenant document and the index in its `extensions`
    index: int = 0

    @property
    def source(self) -> Source:
        """Located on demand: most extensions never need it, and there may be 100,000."""
        return self.row if self.row is not None else self.doc.locate("extensions", self.index)

    def at(self, field_name: str) -> Source:
        """Where a field of this extension is written (the row, for a batch file)."""
        return self.row if self.row is not None else self.doc.locate(
            "extensions", self.index, field_name)


@dataclass(slots=True)
class TenantEntry(Located):
    extensions: list[ExtensionEntry] = field(default_factory=list)
    passwords: dict[str, SecretValue] = field(default_factory=dict)  # by user e-mail
    # With the plan memo: what the last clean plan found for this tenant's extensions,
    # which were then neither loaded nor validated (`extensions` is empty).
    sealed: typing.Any = None  # memo.TenantSummary
    # The extensions' resources, when they could be built as soon as the tenant was
    # validated, while later files were still being parsed (resources.prebuild_extensions).
    extension_resources: list | None = None

    @property
    def extension_count(self) -> int:
        return len(self.extensions) + (self.sealed.count if self.sealed else 0)


@dataclass(slots=True)
class TargetEntry(Located):
    database: SecretValue | None = None  # the resolved URL of the platform's database


@dataclass
class Manifests:
    """Everything one environment declares, by kind and identity."""

    env: Path
    accounts: dict[str, Located] = field(default_factory=dict)
    packages: dict[str, Located] = field(default_factory=dict)
    sites: dict[str, Located] = field(default_factory=dict)
    tenants: dict[str, TenantEntry] = field(default_factory=dict)
    targets: dict[str, TargetEntry] = field(default_factory=dict)
    catalogs: dict[str, Located] = field(default_factory=dict)
    price_lists: dict[str, Located] = field(default_factory=dict)


