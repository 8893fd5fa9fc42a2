"""The committed JSON Schemas match the models, compile in ajv's strict mode and
check-jsonschema, and judge every manifest as the CLI does.

The verdict test reads each document as an editor does (YAML 1.2 types: our
loader types plain scalars the same way) and checks, for every example and
every bad-input case: a document the models reject, the schema rejects; a
document the schema rejects has a CLI error inside it. Rendered templates are
checked as the final documents they become; documents next to a `Use` against
the override schema.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from conftest import EXAMPLES, ROOT, run_cli
from reconciler.diagnostics import Diagnostics
from reconciler.loader import load_environment
from reconciler.model import KINDS
from reconciler.schemas import SCHEMA_DIR, generate, render
from reconciler.template import expand_templates
from reconciler.validate import validate_environment

BAD_INPUTS = ROOT / "tests" / "bad_inputs"
CUSTOMERS = ROOT / "examples" / "customers"
AJV_DIR = ROOT / "tests" / "ajv"
ENVIRONMENTS = sorted([*EXAMPLES.iterdir(), *CUSTOMERS.iterdir(),
                       *(p for p in BAD_INPUTS.iterdir() if (p / "expected.txt").is_file())])


@pytest.mark.parametrize("name", sorted(generate()))
def test_committed_schema_is_up_to_date(name):
    committed = SCHEMA_DIR / name
    assert committed.exists(), f"run 'python -m reconciler.schemas' to create {name}"
    assert committed.read_text(encoding="utf-8") == render(generate()[name]), (
        f"schemas/{name} is out of date: run 'python -m reconciler.schemas'")


def test_examples_name_the_schema_for_editors():
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == SCHEMA_DIR / "document.schema.json", path


def test_json_plan_validates_against_plan_schema(sqlite_url):
    schema = json.loads((SCHEMA_DIR / "plan.schema.json").read_text())
    result = run_cli("plan", EXAMPLES / "partner-hosted", "--state", sqlite_url, "--format", "json")
    assert result.returncode == 0, result.output
    jsonschema.validate(json.loads(result.stdout), schema)


def test_committed_reference_is_up_to_date():
    from reconciler.docs import REFERENCE
    from reconciler.docs import generate as generate_reference

    assert REFERENCE.read_text(encoding="utf-8") == generate_reference(), (
        "docs/reference.md is out of date: run 'python -m reconciler.docs'")


def test_schemas_pass_check_jsonschema_metaschema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--check-metaschema",
                             *sorted(map(str, SCHEMA_DIR.glob("*.json")))],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def ajv() -> Path:
    """ajv-cli from tests/ajv (scripts/test.sh installs it; installed here when missing)."""
    binary = AJV_DIR / "node_modules" / ".bin" / "ajv"
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed, so ajv cannot run: install Debian's "
                    "nodejs and npm (scripts/test.sh does, as root)")
    with open(AJV_DIR / "package-lock.json") as lock:  # one installer among parallel workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=AJV_DIR, check=True, capture_output=True, timeout=300)
    return binary


def test_schemas_compile_in_ajv_strict_mode(ajv):
    """Strict mode refuses unknown keywords (such as OpenAPI's `discriminator`), unknown
    formats and types a keyword cannot apply to; ajv-formats knows `date`."""
    result = subprocess.run([str(ajv), "compile", "--spec=draft2020", "--strict=true",
                             "-c", "ajv-formats", "-s", str(SCHEMA_DIR / "*.json")],
                            capture_output=True, text=True, cwd=AJV_DIR, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    compiled = [line for line in (result.stdout + result.stderr).splitlines() if "is valid" in line]
    assert len(compiled) == len(generate()), result.stdout + result.stderr


def _schema(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


DOCUMENT, OVERRIDE = _schema("document.schema.json"), _schema("override.schema.json")


def _editor_view(body) -> object:
    """The document as JSON, as an editor sees it: unquoted numbers are numbers."""
    return json.loads(json.dumps(body))


def _model_rejects(doc) -> bool:
    """The models reject the document for a reason a schema can express: not for a
    check across fields (`value_error`, e.g. a block's 'from' above its 'to')."""
    model = KINDS.get(doc.kind)
    if model is None:
        return doc.kind != "Use"
    try:
        model.model_validate(doc.body)
    except ValidationError as exc:
        return any(error["type"] != "value_error" for error in exc.errors())
    return False


def _spans(documents) -> dict:
    """(file, first line, last line) of every document, for locating CLI errors."""
    starts: dict[str, list[int]] = {}
    for doc in documents:
        starts.setdefault(doc.source.file, []).append(doc.source.line)
    spans = {}
    for doc in documents:
        following = [line for line in starts[doc.source.file] if line > doc.source.line]
        spans[id(doc)] = (doc.source.file, doc.source.line, min(following, default=10**9) - 1)
    return spans


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schemas_and_cli_judge_documents_alike(env, monkeypatch):
    monkeypatch.chdir(env.parent)
    relative = Path(env.name)
    loaded = load_environment(relative)
    with_use = any(doc.kind == "Use" for doc in loaded.documents)
    _, diagnostics = validate_environment(relative)
    errors = [d.source for d in diagnostics.items if d.is_error and d.source]
    spans = _spans(loaded.documents)
    for doc in loaded.documents:
        schema = OVERRIDE if with_use and doc.kind != "Use" else DOCUMENT
        problems = [e.message for e in schema.iter_errors(_editor_view(doc.body))]
        where = f"{doc.source.short} ({doc.kind})"
        if doc.kind != "Use" and not with_use:
            assert not (_model_rejects(doc) and not problems), (
                f"{where}: the CLI's model rejects it, the schema accepts it")
        if problems:
            file, first, last = spans[id(doc)]
            assert any(e.file == file and first <= e.line <= last for e in errors), (
                f"{where}: the schema rejects it ({problems[0]}), the CLI reports no error in it")
    if with_use:  # the final documents, as `render` prints them
        for doc in expand_templates(loaded.documents, Diagnostics()):
            problems = [e.message for e in DOCUMENT.iter_errors(_editor_view(doc.body))]
            assert bool(problems) == _model_rejects(doc), (doc.source.short, problems)


def test_examples_and_bad_inputs_are_all_checked():
    assert len([e for e in ENVIRONMENTS if e.parent == BAD_INPUTS]) >= 140
    assert {e.parent for e in ENVIRONMENTS} == {EXAMPLES, CUSTOMERS, BAD_INPUTS}


def test_multi_environment_json_validates_against_plans_schema(sqlite_url):
    envs = [EXAMPLES / "partner-hosted", EXAMPLES / "companyflex-multisite"]
    result = run_cli("plan", *envs, "--state", sqlite_url, "--format", "json")
    assert result.returncode == 0, result.output
    plans = json.loads(result.stdout)
    assert isinstance(plans, list) and len(plans) == 2
    _schema("plans.schema.json").validate(plans)
    for plan in plans:
        _schema("plan.schema.json").validate(plan)
