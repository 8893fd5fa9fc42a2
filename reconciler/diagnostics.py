"""Diagnostics: every problem reconciler reports is one of these.

Each stage collects diagnostics instead of raising on the first one, so a run
reports everything that is wrong at once. A diagnostic knows where it comes
from (`file:line[:column]`), what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Source:
    """A position in a manifest file (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0
    via: str = ""  # for rendered templates: the values that produced this line

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where} ({self.via})" if self.via else where

    @property
    def short(self) -> str:
        """`file:line` without the column, as plans show it."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} ({self.via})" if self.via else where


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    source: Source | None
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR
    # Machine-readable rule name, e.g. "tenant.admin-required"; lets later
    # stages recognise a diagnostic without matching its text.
    rule: str = ""
    subject: tuple[str, str] | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        label = "" if self.is_error else "warning: "
        hint = f" — {self.hint}" if self.hint else ""
        return f"{where}{label}{self.message}{hint}"


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics from one run."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, source: Source | None, message: str, hint: str = "", **kw) -> None:
        self.items.append(Diagnostic(source, message, hint, Severity.ERROR, **kw))

    def warning(self, source: Source | None, message: str, hint: str = "", **kw) -> None:
        self.items.append(Diagnostic(source, message, hint, Severity.WARNING, **kw))

    def extend(self, other: Diagnostics | list[Diagnostic]) -> None:
        self.items.extend(other.items if isinstance(other, Diagnostics) else other)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if not d.is_error]

    def has_errors(self, strict: bool = False) -> bool:
        return bool(self.items) if strict else any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic):
            s = d.source
            return (s.file, s.line, s.column) if s else ("", 0, 0)

        return sorted(self.items, key=key)


class ReconcilerError(Exception):
    """A failure that ends a command; carries diagnostics to print."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str):
        if isinstance(diagnostics, str):
            diagnostics = Diagnostic(None, diagnostics)
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """A hint for a misspelt name, or a list of what is allowed."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed: " + ", ".join(sorted(choices))


def display_path(path: Path) -> str:
    """A path as the user should see it: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 error', '2 errors'; `many` for irregular plurals."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
