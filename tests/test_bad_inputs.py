"""The bad-input corpus: every case in tests/bad_inputs/ fails validation, as it should.

A case is a directory holding one broken environment (usually a valid minimal
one with one thing broken) and `expected.txt` — not `.yaml`, since the loader
reads every YAML file of the directory. Its lines:

    location: tenant.yaml:7             the error's file:line, relative to the case
    message: duplicate key 'name'       text on that same output line (repeatable)
    absent: 4711                        text that must appear nowhere (a secret value)
    errors: 1                           how many errors the run reports
    strict: true                        run `validate --strict`
    max_seconds: 3                      the whole run, Python start-up included

Each `message` belongs to the `location` above it; a case may have several of
both. `reconciler validate` runs in tests/bad_inputs, so paths print as
`<case>/<file>:<line>`, the way a user sees them. Starting the CLI takes about
half a second, so the cases share one run (one per mode, `--strict` or not)
that names every case directory: each case's diagnostics start with its name
and its summary line says whether it alone is invalid (exit code 1). Timed
cases run alone, as the user would run them.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import Result, run_cli
from reconciler.diagnostics import plural

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.txt").is_file())


@dataclass
class Expected:
    locations: dict[str, list[str]] = field(default_factory=dict)  # location → messages
    absent: list[str] = field(default_factory=list)
    errors: int | None = None
    strict: bool = False
    max_seconds: float | None = None


def read_expected(case: str) -> Expected:
    expected, location = Expected(), None
    for number, line in enumerate((CORPUS / case / "expected.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        assert sep and value, f"{case}/expected.txt:{number}: expected 'key: value'"
        if key == "location":
            location = value
            expected.locations.setdefault(location, [])
        elif key == "message":
            assert location, f"{case}/expected.txt:{number}: a message needs a location above it"
            expected.locations[location].append(value)
        elif key == "absent":
            expected.absent.append(value)
        elif key == "errors":
            expected.errors = int(value)
        elif key == "strict":
            expected.strict = value == "true"
        elif key == "max_seconds":
            expected.max_seconds = float(value)
        else:
            raise AssertionError(f"{case}/expected.txt:{number}: unknown key '{key}'")
    assert expected.locations, f"{case}/expected.txt: no location"
    return expected


def test_corpus_is_large_enough():
    assert len(CASES) >= 60


@dataclass
class Outcome:
    """What `reconciler validate` said about one case."""

    invalid: bool
    lines: list[str]  # the case's diagnostics
    output: str  # everything the run printed, to show when an assertion fails
    seconds: float | None = None


@functools.cache
def shared_run(strict: bool) -> tuple[Result, list[str]]:
    cases = [c for c in CASES
             if read_expected(c).strict == strict and read_expected(c).max_seconds is None]
    result = run_cli("validate", *cases, *(["--strict"] if strict else []), cwd=CORPUS,
                     timeout=300)
    return result, cases


def outcome(case: str, expected: Expected) -> Outcome:
    if expected.max_seconds is not None:
        started = time.monotonic()
        result = run_cli("validate", case, *(["--strict"] if expected.strict else []),
                         cwd=CORPUS, timeout=60)
        seconds = time.monotonic() - started
        return Outcome(result.returncode == 1, result.output.splitlines(), result.output, seconds)
    result, cases = shared_run(expected.strict)
    assert result.returncode == 1, result.output
    mine = [line for line in result.output.splitlines() if line.startswith(f"{case}/")]
    summary = [line for line in result.stdout.splitlines() if line.startswith(f"{case}: ")]
    assert summary, f"no result for {case}:\n{result.output}"
    # a line no case owns is a crash or a message without a source
    stray = [line for line in result.output.splitlines()
             if not any(line.startswith((f"{c}/", f"{c}: ")) for c in cases)]
    return Outcome(" invalid (" in summary[0], mine + stray + summary, result.output)


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case):
    expected = read_expected(case)
    found = outcome(case, expected)
    text = "\n".join(found.lines)

    assert found.invalid, text
    assert "Traceback" not in found.output and "internal error" not in found.output, found.output
    for location, messages in expected.locations.items():
        # `case/file:line`, then `:column` or nothing, then ': ' — so that line 7 is not line 70
        at = re.compile(re.escape(f"{case}/{location}") + r"(:\d+)?: ")
        here = [line for line in found.lines if at.match(line)]
        assert here, f"no diagnostic at {case}/{location}:\n{text}"
        for message in messages:
            assert any(message in line for line in here), (
                f"no '{message}' at {case}/{location}:\n{text}")
    for secret in expected.absent:
        assert secret not in text, f"'{secret}' must not be shown:\n{text}"
    if expected.errors is not None:
        assert f"({plural(expected.errors, 'error')}," in text, text
    if expected.max_seconds is not None:
        assert found.seconds < expected.max_seconds, f"took {found.seconds:.2f} s"
