"""The committed JSON Schemas match the models, and manifests validate against them."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import EXAMPLES, ROOT, run_cli
from reconciler.loader import load_environment
from reconciler.schemas import SCHEMA_DIR, generate, render


@pytest.mark.parametrize("name", sorted(generate()))
def test_committed_schema_is_up_to_date(name):
    committed = SCHEMA_DIR / name
    assert committed.exists(), f"run 'python -m reconciler.schemas' to create {name}"
    assert committed.read_text(encoding="utf-8") == render(generate()[name]), (
        f"schemas/{name} is out of date: run 'python -m reconciler.schemas'")


def test_examples_validate_against_document_schema():
    schema = json.loads((SCHEMA_DIR / "document.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    count = 0
    for env in sorted(EXAMPLES.iterdir()):
        for doc in load_environment(env).documents:
            # The editor sees YAML types: digit strings stay strings, numbers are numbers.
            body = json.loads(json.dumps(doc.body))
            for key in ("dial_plan", "parallel_calls", "ip_lines"):
                if key in body:
                    body[key] = int(body[key])
            if "budgets" in body:
                body["budgets"] = {k: int(v) for k, v in body["budgets"].items()}
            validator.validate(body)
            count += 1
    assert count > 10


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
