"""The tab-separated batch format of COMuniq ONE's extension import.

One extension a line: number, name, PIN, area code, display name and an
optional e-mail address. Lines that are empty or start with '#' are skipped,
and so is a header row (a first line whose first column names the number
column, as spreadsheets export it: "number", "Nebenstellennummer", …).
Each field is checked here, with the column, because a batch row has no YAML
position to point at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .diagnostics import Diagnostics, Source
from .loader import read_text
from .model import AREA_CODE_PATTERN, EMAIL_PATTERN, PIN_PATTERN, ExtensionValues

COLUMNS = ("number", "name", "pin", "area_code", "display_name", "email")
_AREA_CODE = re.compile(AREA_CODE_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)
_PIN = re.compile(PIN_PATTERN)
_DIGITS = re.compile(r"^[0-9]+$")
HEADER_NAMES = frozenset(("number", "nummer", "extension", "nebenstelle", "nebenstellennummer",
                          "durchwahl"))


@dataclass(frozen=True, slots=True)
class BatchRow:
    extension: ExtensionValues
    source: Source


def _row_pattern(dial_plan: int) -> re.Pattern:
    """One regex for a whole valid row: the fast path; bad rows get per-column messages."""
    text = "[^\\t]*[^\\t\\s][^\\t]*"
    return re.compile(
        f"([0-9]{{{dial_plan}}})\t({text})\t({_unanchored(PIN_PATTERN)})"
        f"\t({_unanchored(AREA_CODE_PATTERN)})\t({text})(?:\t({_unanchored(EMAIL_PATTERN)})?)?"
    )


def _unanchored(pattern: str) -> str:
    return pattern.removeprefix("^").removesuffix("$")


def parse_batch(path: Path, shown: str, dial_plan: int, diagnostics: Diagnostics,
                tenant: str = "") -> list[BatchRow]:
    """Extensions of a batch file; bad rows become diagnostics and are skipped."""
    text = read_text(path, shown, diagnostics)
    if text is None:
        return []
    rows = []
    valid_row = _row_pattern(dial_plan).fullmatch
    # Lines end at \n only: str.splitlines() would also break at U+2028, U+0085,
    # form feeds and more, and every row after one would get the wrong line number.
    first = True
    for line_number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if first:
            first = False
            if is_header(line):
                continue
        match = valid_row(line)
        if match:
            rows.append(BatchRow(ExtensionValues(*match.groups()), Source(shown, line_number)))
            continue
        row = _parse_row(line, Source(shown, line_number), dial_plan, diagnostics, tenant)
        if row is not None:
            rows.append(row)
    return rows


def is_header(line: str) -> bool:
    return line.split("\t", 1)[0].strip().lstrip("\ufeff").lower() in HEADER_NAMES


def _parse_row(line: str, where: Source, dial_plan: int, diagnostics: Diagnostics,
               tenant: str):
    fields = line.split("\t")
    if len(fields) not in (5, 6):
        diagnostics.error(
            where,
            f"expected 5 or 6 tab-separated columns, found {len(fields)}",
            "write number<TAB>name<TAB>pin<TAB>area_code<TAB>display_name[<TAB>email]",
        )
        return None
    starts = [0]
    for value in fields[:-1]:
        starts.append(starts[-1] + len(value) + 1)
    ok = True
    for index, (column, value) in enumerate(zip(COLUMNS, fields)):
        problem = _column_problem(column, value, dial_plan)
        if problem:
            ok = False
            at = Source(where.file, where.line, starts[index] + 1)
            # A number of the wrong length may only follow from a dial-plan change.
            follow_on = ({"rule": "extension.dial-plan", "subject": ("tenant", tenant)}
                         if column == "number" and value.isdigit() else {})
            diagnostics.error(at, f"column {index + 1} ({column}): {problem[0]}", problem[1],
                              **follow_on)
    if not ok:
        return None
    number, name, pin, area_code, display_name = fields[:5]
    email = fields[5] if len(fields) == 6 and fields[5] else None
    return BatchRow(ExtensionValues(number, name, pin, area_code, display_name, email), where)


def _column_problem(column: str, value: str, dial_plan: int) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for one batch column, or None.

    No message quotes a cell: in a row with shifted columns any cell may hold
    the PIN. A name of only digits is refused for the same reason.
    """
    if column == "number":
        if not (_DIGITS.match(value) and len(value) == dial_plan):
            return (f"the extension number is not {dial_plan} digits",
                    f"the tenant's dial plan has {dial_plan}-digit extensions")
    elif column in ("name", "display_name"):
        if not value.strip():
            return (f"the {column.replace('_', ' ')} is empty", "fill it in")
        if _PIN.match(value.strip()):
            return (f"the {column.replace('_', ' ')} is only digits, like a PIN",
                    "check that the columns are in order: "
                    "number, name, pin, area_code, display_name[, email]")
    elif column == "pin":
        if not _PIN.match(value):  # never echo the PIN itself
            return "the PIN must be 4–8 digits", "use '0000' to make the user choose one"
    elif column == "area_code":
        if not _AREA_CODE.match(value):
            return "the area code is not valid", "write it like '030' or '089'"
    elif column == "email":
        if value and not _EMAIL.match(value):
            return "the e-mail address is not valid", "fix it or leave the column empty"
    return None
