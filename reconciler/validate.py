"""Validate stage, part one: loaded documents → typed, located manifests.

Checks each document against its kind's model, turns pydantic errors into
diagnostics at the right `file:line`, reads batch files, resolves secrets and
refuses two documents with the same identity. Rules across documents follow in
`rules.py`; `validate_environment` runs both.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ValidationError

from .batch import parse_batch
from .diagnostics import Diagnostics, did_you_mean
from .loader import (
    Document,
    KeptPositions,
    LoadResult,
    YList,
    load_environment,
    number_text,
    paused_gc,
)
from .manifests import ExtensionEntry, Located, Manifests, TargetEntry, TenantEntry
from .model import (
    FORMATS,
    KINDS,
    SECRET_FIELDS,
    Account,
    BasePackage,
    Catalog,
    PriceList,
    Site,
    Target,
    Tenant,
)
from .rules import check_rules
from .secrets import SecretError, SecretValue, resolve
from .template import expand_templates

# Work on a tenant as soon as it is validated (resources.prebuild_extensions).
EachTenant = Callable[[TenantEntry], None]


def validate_documents(
    env: Path, documents: list[Document], diagnostics: Diagnostics, *, need_secrets: bool,
    manifests: Manifests | None = None, each_tenant: EachTenant | None = None,
) -> Manifests:
    """Typed manifests of valid documents (added to `manifests`, when given); everything
    else becomes a diagnostic. A document checked where it was parsed (`check_where_parsed`)
    is not checked again. `each_tenant` is given each tenant as soon as it is registered."""
    manifests = manifests if manifests is not None else Manifests(env)
    for doc in documents:
        checked, doc.checked = doc.checked, None
        model, problems = checked or check_document(doc)
        diagnostics.extend(problems)
        if model is not None:
            _register(manifests, model, doc, diagnostics, need_secrets, each_tenant)
    return manifests


def check_document(doc: Document) -> tuple[BaseModel | None, Diagnostics]:
    """The document as its kind's model (None if it is not one), and what is wrong with it."""
    diagnostics = Diagnostics()
    model_class = KINDS.get(doc.kind)
    if model_class is None:
        diagnostics.error(
            doc.locate("kind"), f"unknown kind '{doc.kind}'", did_you_mean(doc.kind, list(KINDS))
        )
        return None, diagnostics
    try:
        return model_class.model_validate(doc.body), diagnostics
    except ValidationError as exc:
        return None, schema_diagnostics(doc, model_class, exc)


def check_where_parsed(result: LoadResult) -> None:
    """Check each document of a parsed file against its model, where the file is parsed
    (loader `prepare`: in a worker process, beside the parsing of other files), and keep
    only the positions of the tenants' extension lists, which the checked models hold.
    The main process then registers the models; pickles of the lists are ~4× smaller."""
    for doc in result.documents:
        doc.checked = check_document(doc)
        _compact(doc)


def _compact(doc: Document) -> bool:
    """Let go of a validated tenant's extension mappings (later steps only locate their
    fields); whether the document has such a list (compacted now or before)."""
    extensions = doc.body.get("extensions") if doc.kind == "Tenant" else None
    if isinstance(extensions, YList):
        doc.body["extensions"] = KeptPositions(extensions)
        return True
    return isinstance(extensions, KeptPositions)


_TABLES = {Account: ("accounts", "customer_number"), BasePackage: ("packages", "id"),
           Site: ("sites", "id"), Tenant: ("tenants", "name"), Target: ("targets", "name"),
           Catalog: ("catalogs", "name"), PriceList: ("price_lists", "name")}


def _register(manifests: Manifests, model, doc: Document, diagnostics: Diagnostics,
              need_secrets: bool, each_tenant: EachTenant | None) -> None:
    table_name, identity_field = _TABLES[type(model)]
    table = getattr(manifests, table_name)
    identity = getattr(model, identity_field)
    if identity in table:
        first = table[identity].source
        diagnostics.error(
            doc.locate(identity_field),
            f"{doc.kind} '{identity}' is declared twice (first at {first.short})",
            "remove one of them or give it another " + identity_field,
        )
        return
    if isinstance(model, Tenant):
        entry = TenantEntry(model, doc, sealed=doc.sealed)
        _load_tenant_children(entry, diagnostics, need_secrets)
        table[identity] = entry
        if each_tenant is not None:
            each_tenant(entry)
    elif isinstance(model, Target):
        database = _resolve(model.database, doc, ("database",), diagnostics, need_secrets)
        table[identity] = TargetEntry(model, doc, database)
    else:
        table[identity] = Located(model, doc)


def _load_tenant_children(entry: TenantEntry, diagnostics: Diagnostics, need_secrets: bool) -> None:
    tenant, doc = entry.model, entry.doc
    for index, user in enumerate(tenant.users):
        if user.password is not None:
            value = _resolve(user.password, doc, ("users", index, "password"), diagnostics,
                             need_secrets)
            if value is not None:
                entry.passwords[user.email] = value
    for index, extension in enumerate(tenant.extensions):
        pin = sip_password = None
        if extension.pin is not None:
            pin = _resolve(extension.pin, doc, ("extensions", index, "pin"), diagnostics,
                           need_secrets)
        if extension.sip_password is not None:
            sip_password = _resolve(extension.sip_password, doc,
                                    ("extensions", index, "sip_password"), diagnostics,
                                    need_secrets)
        entry.extensions.append(ExtensionEntry(extension, pin, sip_password, doc=doc,
                                               index=index))
    for index, batch in enumerate(tenant.extensions_from):
        _load_batch_file(entry, index, batch, diagnostics)


def _load_batch_file(entry: TenantEntry, index: int, batch, diagnostics: Diagnostics) -> None:
    """The rows of one `extensions_from` entry, with the file's order defaults applied."""
    doc = entry.doc
    relative = batch if isinstance(batch, str) else batch.file
    path = (doc.file.parent / relative).resolve()
    where = doc.locate("extensions_from", index)
    if not path.is_relative_to(doc.env):
        diagnostics.error(where, f"batch file '{relative}' lies outside the environment",
                          "keep batch files inside the environment directory")
        return
    if not path.is_file():
        diagnostics.error(where, f"batch file '{relative}' does not exist",
                          "fix the path (relative to this manifest) or create the file")
        return
    rows = parse_batch(path, doc.show(path), entry.model.dial_plan, diagnostics,
                       entry.model.name)
    defaults = {} if isinstance(batch, str) else batch_defaults(batch)
    plain = []
    for row in rows:
        extension = row.extension._replace(**defaults) if defaults else row.extension
        pin = SecretValue(extension.pin, f"batch {row.source.short}")
        if extension.pin != "0000":
            plain.append(row.source)
        entry.extensions.append(ExtensionEntry(extension, pin, row=row.source))
    if plain:
        diagnostics.warning(
            where, f"{len(plain)} PINs in batch file '{relative}' are written in plain text "
            f"(first at {plain[0].short})",
            "write '0000' in the PIN column (the user chooses a PIN at first login) and keep "
            "real PINs out of git", rule="secret.plain-text")


def batch_defaults(batch) -> dict:
    """The order fields an `extensions_from` entry gives every row of its file."""
    fields = {"product": batch.product, "addons": tuple(batch.addons),
              "start_date": batch.start_date, "reference": batch.reference}
    return {name: value for name, value in fields.items() if value not in (None, ())}


def _resolve(secret, doc: Document, path: tuple, diagnostics: Diagnostics, need_secrets: bool):
    try:
        return resolve(secret, doc.file, doc.env)
    except SecretError as exc:
        report = diagnostics.error if need_secrets or exc.always_error else diagnostics.warning
        report(doc.locate(*path), f"{path[-1]}: {exc}", exc.hint)
        return None


def schema_diagnostics(doc: Document, model_class: type[BaseModel], exc: ValidationError):
    """Readable diagnostics for pydantic errors; secret values are never shown."""
    diagnostics = Diagnostics()
    reported: set[tuple] = set()
    errors = exc.errors(include_url=False)
    for error in errors:
        loc = tuple(error["loc"])
        if _other_branch_explains(error, errors, doc.body):
            continue
        secret_at = next((i for i, part in enumerate(loc) if part in SECRET_FIELDS), None)
        if secret_at is not None:
            loc = loc[: secret_at + 1]
            message, hint = _secret_message(loc[-1], error)
        else:
            loc = _input_loc(doc.body, loc)
            message, hint = _message(model_class, loc, error)
        if loc in reported:
            continue
        reported.add(loc)
        where = doc.locate(*loc) if error["type"] != "missing" else doc.locate(*loc[:-1])
        diagnostics.error(where, message, hint)
    return diagnostics


def _other_branch_explains(error: dict, errors: list[dict], body) -> bool:
    """For `str | Model` given a mapping, the model's own errors say more than 'not a string'."""
    if error["type"] != "string_type" or not isinstance(error.get("input"), dict):
        return False
    if any(part in SECRET_FIELDS for part in error["loc"]):  # secrets have their own message
        return False
    where = _input_loc(body, tuple(error["loc"]))
    return any(other is not error and _input_loc(body, tuple(other["loc"]))[:len(where)] == where
               for other in errors)


def _input_loc(body, loc: tuple) -> tuple:
    """`loc` without pydantic's union tags ('EnvSecret', 'str', …).

    A step that exists in the input is a field or an index, never a tag: an
    unknown field 'Name' must not be dropped for looking like a class name.
    """
    path, node = [], body
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif _is_union_tag(part):
            continue
        else:
            node = None
        path.append(part)
    return tuple(path)


def _is_union_tag(part) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or part in ("str", "int", "list[str]")
                                      or part.startswith("constrained-"))


def _secret_message(name: str, error: dict) -> tuple[str, str]:
    if error["type"] == "extra_forbidden" or error["type"] == "missing":
        return (f"{name} must be a value, {{env: NAME}} or {{file: PATH}}",
                "write e.g. {env: MY_SECRET}; the value itself is never printed")
    if error["type"] == "string_type" and _is_number(error.get("input")):
        return (f"{name} must be quoted: unquoted, YAML reads it as a number",
                f'quote it: {name}: "…" (the value is not shown), or use {{env: NAME}}')
    return (f"{name} is not valid", "use a string, {env: NAME} or {file: PATH}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _message(model_class: type[BaseModel], loc: tuple, error: dict) -> tuple[str, str]:
    kind = error["type"]
    name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "value")
    value = error.get("input")
    if kind == "extra_forbidden":
        if name == "<<":
            return "a merge key '<<' is not supported", "write the fields out"
        allowed = _field_names(model_class, loc[:-1])
        return f"unknown field '{name}'", did_you_mean(name, allowed)
    if kind == "missing":
        return f"missing required field '{name}'", f"add '{name}: …'"
    if kind == "literal_error":
        value = number_text(value) if _is_number(value) else value
        return (f"{name} '{value}' is not allowed",
                f"use one of: {error['ctx']['expected']}")
    if kind == "string_pattern_mismatch":
        description = FORMATS.get(error["ctx"]["pattern"], f"matching {error['ctx']['pattern']}")
        if loc[-1:] == ("[key]",) and len(loc) >= 3:  # a key of a mapping such as budgets
            return f"{loc[-3]} key '{value}' is not {description}", "rename the key"
        return f"{name} '{value}' is not {description}", "fix the value"
    if (kind == "string_type" and value is None) or (kind == "string_too_short" and value == ""):
        return f"{name} is empty", f"give {name} a value or remove the line"
    if kind == "string_too_long":
        limit = error["ctx"]["max_length"]
        return f"{name} is longer than {limit} characters", f"shorten it to at most {limit}"
    if kind == "string_type" and isinstance(value, bool):
        text = str(value).lower()
        return f"{name} must be text, not {text}", f'put it in quotes: {name}: "{text}"'
    if kind == "string_type" and _is_number(value):
        text = number_text(value)
        return (f"{name} {text} must be quoted: unquoted, YAML reads it as a number",
                f'quote it: {name}: "{text}"')
    if kind == "int_type" and isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+", value):
        return (f"{name} '{value}' is quoted, but it is a number",
                f"remove the quotes: {name}: {value}")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        shown = number_text(value) if _is_number(value) else value
        return f"{name} '{shown}' is not a whole number", f"write {name} as digits, e.g. 3"
    if kind in ("greater_than_equal", "less_than_equal"):
        limit = error["ctx"].get("ge", error["ctx"].get("le"))
        low = kind == "greater_than_equal"
        return (f"{name} {value} is too {'small' if low else 'large'}",
                f"use {'at least' if low else 'at most'} {limit}")
    if kind == "bool_type":
        shown = number_text(value) if _is_number(value) else value
        return f"{name} '{shown}' is not true or false", "write true or false, without quotes"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"):
        shown = number_text(value) if _is_number(value) else value
        return f"{name} '{shown}' is not a date", "write it as YYYY-MM-DD, e.g. 2026-12-01"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        if loc and isinstance(loc[-1], int):
            name = f"item {loc[-1] + 1} of {name}"
        return f"{name} must be a mapping", "write it as 'key: value' lines"
    if kind == "list_type":
        return f"{name} must be a list", "write it as '- item' lines or [a, b]"
    text = error["msg"].removeprefix("Value error, ")
    return f"{name}: {text}", "fix the value"


def _field_names(model_class: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (aliases included) of the model that sits at `loc`."""
    current: typing.Any = model_class
    for part in loc:
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part) if isinstance(current, type) else None
        if info is None:
            break
        current = _inner_model(info.annotation)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return []
    return [info.alias or name for name, info in current.model_fields.items()]


def _inner_model(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def validate_environment(env: Path, *, need_secrets: bool = False, memo=None,
                         each_tenant: EachTenant | None = None):
    """Load and validate one environment: (Manifests, Diagnostics).

    Each file's documents are validated as soon as they are loaded, while the parser
    processes work on the files after it. An environment with templates (`Use`), or
    one the loader refuses as a whole, is validated again from the loaded documents.
    With a plan memo (memo.PlanMemo), unchanged files may come from it, their tenants
    sealed; the memo sees every file's documents. `each_tenant` is given each tenant
    validated early, as soon as it is.
    """
    with paused_gc():
        early = _EarlyValidation(env.resolve(), need_secrets, each_tenant)

        def take(documents: list[Document]) -> None:
            if memo is not None:
                memo.saw(documents)
            early.take(documents)

        loaded = load_environment(env, take, memo.reuse if memo is not None else None,
                                  check_where_parsed)
        if early.stopped and early.compacted:
            # A template's overrides may be among the files validated before the first
            # `Use`, their extension lists compacted: load the documents again whole.
            if memo is not None:
                memo.forget()
            loaded = load_environment(env, memo.saw if memo is not None else None)
        diagnostics = loaded.diagnostics
        documents = expand_templates(loaded.documents, diagnostics)
        if early.covers(documents):
            manifests = early.manifests
            diagnostics.extend(early.diagnostics)
        else:
            manifests = validate_documents(env.resolve(), documents, diagnostics,
                                           need_secrets=need_secrets)
        check_rules(manifests, diagnostics)
    return manifests, diagnostics


class _EarlyValidation:
    """Validates documents as the loader delivers them, until a template (`Use`) shows up:
    templates are expanded over all documents at once."""

    def __init__(self, env: Path, need_secrets: bool, each_tenant: EachTenant | None):
        self.env, self.need_secrets, self.each_tenant = env, need_secrets, each_tenant
        self.manifests = Manifests(env)
        self.diagnostics = Diagnostics()
        self.count = 0
        self.stopped = False
        self.compacted = False  # an extension list was reduced to its positions

    def take(self, documents: list[Document]) -> None:
        if self.stopped or any(doc.kind == "Use" for doc in documents):
            self.stopped = True
            return
        validate_documents(self.env, documents, self.diagnostics,
                           need_secrets=self.need_secrets, manifests=self.manifests,
                           each_tenant=self.each_tenant)
        self.count += len(documents)
        for doc in documents:  # validated: later steps only locate their fields
            self.compacted |= _compact(doc)

    def covers(self, documents: list[Document]) -> bool:
        """Whether what was validated is exactly `documents` (nothing expanded or dropped).
        Without a `Use`, only the loader's refusal of a directory of environments drops
        documents (all of them): nothing compacted is validated again."""
        return not self.stopped and self.count == len(documents)
