"""JSON Schemas generated from the models: one per kind, one per document, one per plan.

`python -m reconciler.schemas` rewrites `schemas/`; a test fails when the
committed files differ from what the models generate. The schemas use only
standard JSON Schema 2020-12 keywords (ajv's strict mode compiles them): the
document schema picks the kind's schema with `if`/`then` on `kind`, not with
OpenAPI's `discriminator`.

- `document.schema.json`: any manifest document, `kind: Use` included;
- `override.schema.json`: a document next to a `Use` that changes what the
  template renders: only `kind` and the identity are required;
- `plan.schema.json`, `plans.schema.json`: `plan --format json` for one
  environment (an object) and for several (a list).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .model import KINDS, Strict

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
BASE_URL = "https://reconciler.example/schemas/"


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanChange(_Open):
    before: Any
    after: Any
    drift: bool | None = None
    last_applied: Any = None
    on_target: str | None = Field(None, description="with drift: the target (its name) whose "
                                  "platform holds something else than reconciler last applied")


class PlanAction(_Open):
    action: Literal["create", "update", "delete"]
    kind: Literal["account", "base_package", "site", "tenant", "user", "extension",
                  "sip_domain", "sip_subscriber", "sip_alias"]
    target: str | None = Field(None, description="the target whose platform the action "
                               "changes; absent for reconciler's own resources")
    id: str
    scope: str
    source: str | None = Field(description="file:line of the manifest, null for deletes")
    changes: dict[str, PlanChange]
    record: dict[str, Any] | None = Field(None, description="saved plans only: what apply writes")
    rank: int | None = Field(None, description="saved plans only")
    risks: list[Literal["delete", "admin", "drift-revert", "secret"]] | None = Field(
        None, description="what a reviewer should look at twice; absent when none")


class PlanSummary(_Open):
    create: int
    update: int
    delete: int
    unchanged: int
    left_alone: int = Field(description="resources not in the manifests, kept (no --allow-delete)")


class PlanLeftAlone(_Open):
    kind: str
    id: str
    scope: str = Field(description="customer number of the account it belongs to")
    target: str | None = Field(None, description="an object on this target's platform that no "
                               "manifest declares (unmanaged)")


class PlanMessage(_Open):
    source: str | None
    message: str
    hint: str


class PlanForbidden(_Open):
    kind: str
    id: str
    field: str
    before: Any
    after: Any
    reason: str
    instead: str
    source: str | None
    follow_ons: list[PlanMessage] | None = Field(
        None, description="errors that only follow from this change, moved here from errors")


class PlanAmounts(_Open):
    before: str = Field(description="monthly amount before the plan, a decimal string like '12.50'")
    after: str = Field(description="monthly amount after the plan")
    delta: str = Field(description="after minus before")


class PlanInvoice(PlanAmounts):
    invoice: str = Field(description="'base package ID', 'collective NUMBER' (a main account's "
                         "collective invoice) or 'account NUMBER, base package ID'")
    accounts: list[str] = Field(description="the customer numbers billed on it")


class PlanCost(_Open):
    """The monthly cost the plan changes, from the environment's PriceList."""

    price_list: str
    currency: str
    total: PlanAmounts
    accounts: dict[str, PlanAmounts] = Field(description="by customer number")
    invoices: list[PlanInvoice] = Field(description="one per base package or collective invoice")


class PlanScheduled(PlanAction):
    start_date: str = Field(description="the create waits for this date (YYYY-MM-DD)")


class PlanDocument(_Open):
    """The plan JSON of `plan --format json` and of saved plan files (format_version 1)."""

    format_version: Literal[1]
    environment: str
    state_serial: int = Field(description="the state serial the plan was made against")
    state_id: str = Field(description="the id of the state the plan was made against (random, "
                          "made with the state): apply refuses a plan for another state")
    state_mark: str = Field(description="a digest of the state's change-log entry at "
                            "state_serial (empty at serial 0): apply refuses a plan whose state "
                            "history went another way (a restored backup)")
    owner: str = Field(description="the environment's name, which owns what it creates: its "
                       "directory relative to the repository root (see docs/scope.md)")
    scope: list[str] = Field(description="customer numbers the environment declares (not as "
                             "references)")
    rejected: bool
    summary: PlanSummary
    actions: list[PlanAction] = Field(description="in execution order")
    warnings: list[PlanMessage]
    errors: list[PlanMessage]
    left_alone: list[PlanLeftAlone] = Field(
        description="resources in scope that the manifests no longer declare, left alone")
    forbidden: list[PlanForbidden] | None = None
    refusals: list[str] | None = None
    scheduled: list[PlanScheduled] | None = Field(
        None, description="creates with a future start_date: shown, applied on or after it")
    cost: PlanCost | None = Field(None, description="only with a PriceList in the environment")
    checksum: str | None = Field(None, description="saved plans only: HMAC-SHA256")
    secrets: Literal["fingerprinted", "write-only"] | None = Field(
        None, description="how secret changes are found: keyed fingerprints, or write-only "
        "(written on create and when the reference or version changes); absent without secrets")
    options: dict[str, Any] | None = Field(
        None, description="saved plans only: the plan options (apply uses its own and compares)")


class Use(Strict):
    """A customer environment made from a partner template (see docs/manifests.md)."""

    kind: Literal["Use"]
    template: str = Field(min_length=1, description="the template directory, relative to this "
                          "file; it holds parameters.schema.json and *.yaml.j2 files")
    values: dict[str, Any] = Field({}, description="the template's parameters, checked "
                                   "against its parameters.schema.json")


# What identifies a document that overrides a rendered one (template.IDENTITIES).
OVERRIDABLE = {"Account": "customer_number", "BasePackage": "id", "Site": "id", "Tenant": "name"}


def generate() -> dict[str, dict]:
    """File name → schema, for every file in `schemas/`."""
    schemas = {}
    kinds = {**KINDS, "Use": Use}
    for kind, model in kinds.items():
        schemas[f"{_file_stem(kind)}.schema.json"] = _with_id(
            model.model_json_schema(by_alias=True), f"{_file_stem(kind)}.schema.json")
    document = _by_kind(kinds, "reconciler manifest document")
    schemas["document.schema.json"] = _with_id(document, "document.schema.json")
    override = _by_kind({kind: KINDS[kind] for kind in OVERRIDABLE},
                        "reconciler override document (next to a kind: Use)")
    for kind, identity in OVERRIDABLE.items():
        override["$defs"][kind]["required"] = ["kind", identity]
    schemas["override.schema.json"] = _with_id(override, "override.schema.json")
    plan = PlanDocument.model_json_schema()
    schemas["plan.schema.json"] = _with_id(plan, "plan.schema.json")
    schemas["plans.schema.json"] = _with_id(_list_of(plan, "PlanDocument"), "plans.schema.json")
    return schemas


def _by_kind(models: dict[str, type[BaseModel]], title: str) -> dict:
    """One schema for documents of several kinds: `kind` selects the kind's schema.

    `if`/`then` per kind (rather than `oneOf`) makes a validator report the
    errors of the document's own kind only.
    """
    combined = TypeAdapter(Union[tuple(models.values())]).json_schema(by_alias=True)  # noqa: UP007
    return {
        "title": title,
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(models), "description": "what the document declares"}},
        "allOf": [{"if": {"type": "object", "properties": {"kind": {"const": kind}}},
                   "then": {"$ref": f"#/$defs/{model.__name__}"}} for kind, model in models.items()],
        "$defs": combined["$defs"],
    }


def _list_of(schema: dict, name: str) -> dict:
    """A list of `schema`, self-contained: its definitions and it in `$defs`."""
    definitions = dict(schema.get("$defs", {}))
    definitions[name] = {key: value for key, value in schema.items() if key != "$defs"}
    return {"title": f"a list of {schema.get('title', name)}", "type": "array",
            "items": {"$ref": f"#/$defs/{name}"}, "$defs": definitions}


def _file_stem(kind: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in kind).lstrip("-")


def _with_id(schema: dict, name: str) -> dict:
    _check_keys(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": BASE_URL + name,
            **schema}


def _check_keys(node) -> None:
    """Give `propertyNames` the key pattern, in place.

    For `dict[Identifier, …]` pydantic puts the pattern into `patternProperties`
    only, where a key that does not match is merely left unchecked: the schema
    accepted budget keys that the CLI refuses.
    """
    if isinstance(node, dict):
        patterns = list(node.get("patternProperties", {}))
        if len(patterns) == 1 and isinstance(node.get("propertyNames"), dict):
            node["propertyNames"].setdefault("pattern", patterns[0])
        for value in node.values():
            _check_keys(value)
    elif isinstance(node, list):
        for value in node:
            _check_keys(value)


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for name, schema in generate().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
    sys.exit(0)
