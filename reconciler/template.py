"""Partner templates: `kind: Use` documents expand into manifests.

A template is a directory with `parameters.schema.json` (a JSON Schema for the
values) and `*.yaml.j2` files rendered by Jinja2's sandbox with strict
undefined variables. Templates cannot run code (sandbox), read files outside
their own directory (the loader only knows that directory), or reach the
network. Every rendered line remembers the template line it came from, so an
error in a rendered resource names the template file and line and the values
that produced it. Documents next to the `Use` override rendered ones with the
same identity (fields they give replace the template's; users and extensions
merge by e-mail and number).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from .cache import record_template_dir
from .diagnostics import Diagnostic, Diagnostics, Severity, Source, did_you_mean
from .isolate import IsolationError, run_isolated
from .loader import Document, YList, YMap, locate, number_text, parse_yaml, show_path, unpack
from .writer import plain_secrets_as_references

PARAMETERS_FILE = "parameters.schema.json"
TEMPLATE_SUFFIX = ".yaml.j2"
_MARK = re.compile("\ue000(\\d+)\ue001")
USE_FIELDS = ("kind", "template", "values")
IDENTITIES = {"Account": "customer_number", "BasePackage": "id", "Site": "id", "Tenant": "name"}
KEYED_LISTS = {"users": "email", "extensions": "number"}


# A template may build strings and lists, but not ones big enough to exhaust memory.
MAX_SEQUENCE = 1_000_000
MAX_EXPONENT = 256


class _MarkingLoader(jinja2.FileSystemLoader):
    """Appends an invisible template-line marker to every line outside a tag.

    Only files inside the template directory can be loaded: jinja2 already
    refuses `..` and absolute names; a symlink that leads outside is refused here.
    """

    def __init__(self, root: Path):
        super().__init__(str(root))
        self.root = root

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        if not _inside(Path(filename), self.root):
            raise SecurityError(f"'{template}' leads outside the template directory")
        if not template.endswith(".j2"):  # never a secret, a values file or a manifest
            raise SecurityError(f"'{template}' is not a template file (*.j2); templates "
                                "include only *.j2 files of their own directory")
        return _mark_lines(source), filename, uptodate


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(root)


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with `*` and `**` bounded (`'a' * 10**9` would exhaust memory)."""

    intercepted_binops = frozenset(("*", "**"))

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) \
                        and len(sequence) * count > MAX_SEQUENCE:
                    raise SecurityError(f"the result of '*' would hold more than {MAX_SEQUENCE} "
                                        "items")
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT \
                and isinstance(left, int) and abs(left) > 1:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
        return super().call_binop(context, operator, left, right)


_TAGS = re.compile(r"\{%.*?%\}|\{#.*?#\}")


def _mark_lines(source: str) -> str:
    """Mark lines that render output; lines inside a tag or holding only tags stay as they are.

    The marker ends a marked line, so trim_blocks cannot swallow its newline:
    `version: {% if pro %}PRO{% else %}BASIC{% endif %}` stays a line of its own.
    """
    lines, depth = [], 0
    for number, line in enumerate(source.split("\n"), start=1):
        inside = depth > 0
        depth += len(re.findall(r"\{[{%#]", line)) - len(re.findall(r"[}%#]\}", line))
        only_tags = line.rstrip().endswith(("%}", "#}")) and (
            inside or not _TAGS.sub("", line).strip())
        lines.append(line if depth > 0 or only_tags else f"{line}\ue000{number}\ue001")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Use:
    doc: Document
    template_dir: Path
    values: dict[str, Any]


def expand_templates(documents: list[Document], diagnostics: Diagnostics) -> list[Document]:
    """Documents with every `Use` replaced by what its template renders, overrides applied."""
    uses = [d for d in documents if d.kind == "Use"]
    if not uses:
        return documents
    own = [d for d in documents if d.kind != "Use"]
    rendered: list[Document] = []
    for doc in uses:
        template_dir = _template_dir(doc, diagnostics)
        if template_dir is not None:
            rendered.extend(_expand_isolated(doc, template_dir, diagnostics))
    return _merge(rendered, own, diagnostics)


def _expand_isolated(doc: Document, template_dir: Path, diagnostics: Diagnostics) -> list[Document]:
    """Validate the values and render the template in a child process with hard limits.

    The schema (its `pattern`s) and the template are the partner's code: whatever
    they do, they get `isolate.timeout()` seconds, bounded memory and output.
    """
    def work():
        local = Diagnostics()
        use = _check_use(doc, template_dir, local)
        outputs = _render(use, local) if use is not None else []
        return {"diagnostics": [_diagnostic_to_json(d) for d in local.items], "outputs": outputs}

    try:
        result = run_isolated(work)
    except IsolationError as exc:
        diagnostics.error(doc.locate("template"), f"the template was stopped: {exc}",
                          "templates must render quickly and produce manifests of sensible size")
        return []
    diagnostics.items.extend(_diagnostic_from_json(d) for d in result["diagnostics"])
    use = _Use(doc, template_dir, {})
    via = f"values {doc.source.short}"
    documents = []
    for shown, text in result["outputs"]:
        documents.extend(_parse_rendered(text, shown, via, use, diagnostics))
    return documents


def _diagnostic_to_json(d: Diagnostic) -> list:
    s = d.source
    source = [s.file, s.line, s.column, s.via] if s else None
    return [source, d.message, d.hint, d.severity.value, d.rule,
            list(d.subject) if d.subject else None]


def _diagnostic_from_json(item: list) -> Diagnostic:
    source, message, hint, severity, rule, subject = item
    return Diagnostic(Source(*source) if source else None, message, hint, Severity(severity), rule,
                      tuple(subject) if subject else None)


def _template_dir(doc: Document, diagnostics: Diagnostics) -> Path | None:
    """The template directory a Use names, when it is one and holds no environment."""
    body = doc.body
    for key in body:
        if key not in USE_FIELDS:
            diagnostics.error(doc.locate(key), f"unknown field '{key}' in Use",
                              did_you_mean(key, list(USE_FIELDS)))
            return None
    template = body.get("template")
    if not isinstance(template, str):
        diagnostics.error(doc.locate("template"), "Use needs 'template: PATH'",
                          "give the template directory relative to this file")
        return None
    if Path(template).is_absolute():
        diagnostics.error(doc.locate("template"), f"the template path '{template}' is absolute",
                          "give the template directory relative to this file, so that the "
                          "repository renders the same on every machine")
        return None
    # Recorded before any check, as written (not resolved): a fix in the template directory
    # or a re-pointed link to it is a change the plan cache sees.
    record_template_dir(Path(os.path.abspath(doc.file.parent / template)))
    template_dir = (doc.file.parent / template).resolve()
    if not (template_dir / PARAMETERS_FILE).is_file():
        diagnostics.error(doc.locate("template"), f"'{template}' is not a template directory "
                          f"(no {PARAMETERS_FILE})", "fix the path, relative to this file")
        return None
    env = Path(os.path.realpath(doc.env))
    if env == template_dir or env.is_relative_to(template_dir):
        diagnostics.error(doc.locate("template"), f"the template directory '{template}' is or "
                          "contains this environment, so a template could read its secrets",
                          "keep templates in a directory of their own, outside the environment")
        return None
    return template_dir


def _check_use(doc: Document, template_dir: Path, diagnostics: Diagnostics) -> _Use | None:
    """Read the template's schema and check the values against it (runs isolated)."""
    values = doc.body.get("values", YMap())
    if not isinstance(values, dict):
        diagnostics.error(doc.locate("values"), "'values' must be a mapping", "write key: value lines")
        return None
    schema = _read_schema(template_dir, doc, diagnostics)
    if schema is None:
        return None
    values = _with_defaults(dict(values), schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        registry=_schema_registry(template_dir))
    try:
        errors = sorted(validator.iter_errors(values),
                        key=lambda e: [str(p) for p in e.absolute_path])
    except referencing.exceptions.Unresolvable as exc:
        diagnostics.error(Source(show_path(template_dir / PARAMETERS_FILE, doc.env, doc.env_shown)),
                          f"the template's parameter schema refers to '{_ref_of(exc)}', which is "
                          "not a schema file of this template",
                          "a $ref may only name a *.json file in the template directory "
                          "(nothing is fetched)")
        return None
    see = f"see {show_path(template_dir / PARAMETERS_FILE, doc.env, doc.env_shown)}"
    reported = Diagnostics()
    for error in errors:
        _report_value_error(doc, error, see, reported)
    for item in dict.fromkeys(reported.items):  # `required` fails once per missing key
        diagnostics.items.append(item)
    if errors:
        return None
    return _Use(doc, template_dir, values)


def _report_value_error(doc: Document, error: jsonschema.ValidationError, see: str,
                        diagnostics: Diagnostics) -> None:
    """One diagnostic per schema violation, at the line of the value that is wrong."""
    path = list(error.absolute_path)
    name = ".".join(str(p) for p in path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        for key in error.instance:
            if key not in known and not any(re.search(p, key) for p in patterns):
                full = ".".join(str(p) for p in [*path, key])
                diagnostics.error(doc.locate("values", *path, key),
                                  f"unknown template value '{full}'",
                                  f"{did_you_mean(key, known)}; {see}" if known else see)
        return
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        for key in missing:
            full = ".".join(str(p) for p in [*path, key])
            diagnostics.error(doc.locate("values", *path), f"missing template value '{full}'",
                              f"add '{key}: …' under 'values'; {see}")
        return
    if error.validator == "type" and "string" in _types(error.validator_value) \
            and isinstance(error.instance, (int, float)) and not isinstance(error.instance, bool):
        text = number_text(error.instance)
        diagnostics.error(doc.locate("values", *path), f"template value {name} {text} must be "
                          "quoted: unquoted, YAML reads it as a number",
                          f'quote it: {path[-1] if path else name}: "{text}"; {see}')
        return
    diagnostics.error(doc.locate("values", *path),
                      f"template value {name or 'values'}: {error.message}", see)


def _types(value) -> list:
    return value if isinstance(value, list) else [value]


SCHEMA_BASE = "https://template.invalid/"  # a base no one can serve: refs stay local


def _schema_registry(template_dir: Path) -> referencing.Registry:
    """The template's own *.json files, under SCHEMA_BASE; anything else is unresolvable."""

    def refuse(uri: str):
        raise referencing.exceptions.NoSuchResource(ref=uri)

    resources = []
    for path in sorted(template_dir.glob("*.json")):
        if not _inside(path, template_dir):
            continue
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        resources.append((SCHEMA_BASE + path.name, referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012)))
    return referencing.Registry(retrieve=refuse).with_resources(resources)


def _ref_of(exc: Exception) -> str:
    ref = str(getattr(exc, "ref", "") or "")
    return ref.removeprefix(SCHEMA_BASE)[:200]


def _read_schema(template_dir: Path, doc: Document, diagnostics: Diagnostics) -> dict | None:
    path = template_dir / PARAMETERS_FILE
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        if isinstance(schema, dict) and "$id" not in schema:
            schema = {**schema, "$id": SCHEMA_BASE + PARAMETERS_FILE}  # relative refs stay local
    except (ValueError, jsonschema.SchemaError) as exc:
        diagnostics.error(Source(show_path(path, doc.env, doc.env_shown)),
                          "the template's parameter schema is invalid: "
                          f"{str(exc).splitlines()[0]}", "fix the JSON Schema")
        return None
    return schema


def _with_defaults(values: dict, schema: dict) -> dict:
    """The values with the schema's defaults for those left out.

    Values keep their YAML types (a quoted "20" is text, an unquoted 20 a
    number), as everywhere in manifests: the parameter schema judges them.
    """
    result = {name: spec["default"] for name, spec in schema.get("properties", {}).items()
              if name not in values and isinstance(spec, dict) and "default" in spec}
    result.update(values)
    return result


def _render(use: _Use, diagnostics: Diagnostics) -> list[list[str]]:
    """[shown file name, rendered text] per template file (runs isolated)."""
    environment = _Sandbox(
        loader=_MarkingLoader(use.template_dir), undefined=jinja2.StrictUndefined,
        autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    outputs = []
    via = f"values {use.doc.source.short}"
    for path in sorted(use.template_dir.rglob("*" + TEMPLATE_SUFFIX)):
        name = path.relative_to(use.template_dir).as_posix()
        shown = show_path(path, use.doc.env, use.doc.env_shown)
        try:
            text = environment.get_template(name).render(**use.values)
        except jinja2.TemplateSyntaxError as exc:
            diagnostics.error(Source(shown, exc.lineno or 0, via=via),
                              f"template syntax error: {exc.message}", "fix the template")
            continue
        except SecurityError as exc:
            diagnostics.error(Source(shown, _template_line(exc, name), via=via),
                              f"the template tried something unsafe: {exc}",
                              "templates may only format values, loop and branch")
            continue
        except jinja2.TemplateNotFound as exc:
            diagnostics.error(Source(shown, _template_line(exc, name), via=via),
                              f"the template includes '{exc.name}', which is not a file of this "
                              "template", "templates can only include files of their own directory")
            continue
        except jinja2.UndefinedError as exc:
            diagnostics.error(Source(shown, _template_line(exc, name), via=via),
                              f"template error: {exc}",
                              "pass the value in 'values' or give it a default in the schema")
            continue
        except MemoryError as exc:
            diagnostics.error(Source(shown, _template_line(exc, name), via=via),
                              "the template was stopped: it needed more memory than allowed",
                              "templates must produce manifests of sensible size")
            continue
        except RecursionError as exc:
            diagnostics.error(Source(shown, _template_line(exc, name), via=via),
                              "template error: the template recurses without end",
                              "a macro must not call itself without a way to stop")
            continue
        except Exception as exc:  # noqa: BLE001 - whatever the template does wrong is its error
            diagnostics.error(Source(shown, _template_line(exc, name), via=via),
                              f"template error: {type(exc).__name__}: {exc}", "fix the template")
            continue
        outputs.append([shown, text])
    return outputs


def _template_line(exc: Exception, name: str) -> int:
    tb = exc.__traceback__
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _parse_rendered(text: str, shown: str, via: str, use: _Use, diagnostics: Diagnostics):
    lines, origin = [], []
    for line in text.split("\n"):
        marks = _MARK.findall(line)
        origin.append(int(marks[-1]) if marks else 0)
        lines.append(_MARK.sub("", line))
    local = Diagnostics()
    parsed = parse_yaml("\n".join(lines), shown, local)
    for item in local.items:  # syntax errors point at rendered lines: map them back
        line = origin[item.source.line - 1] if item.source and 0 < item.source.line <= len(origin) else 0
        diagnostics.items.append(type(item)(Source(shown, line, via=via), item.message, item.hint,
                                            item.severity))
    documents = []
    for body, source in parsed:
        _remap(body, origin)
        kind = body.get("kind")
        if kind is None:
            diagnostics.error(Source(shown, origin[source.line - 1], via=via),
                              "the rendered document has no 'kind'", "add 'kind:' to the template")
            continue
        start = Source(shown, origin[source.line - 1], source.column, via=via)
        documents.append(Document(str(kind), body, use.doc.file, use.doc.env, start,
                                  use.doc.env_shown))
    return documents


def _remap(node, origin: list[int]) -> None:
    """Replace rendered line numbers by template line numbers, in place."""
    def fix(position: int) -> int:
        line, column = unpack(position)
        mapped = origin[line - 1] if 0 < line <= len(origin) else line
        return (mapped << 16) | column

    if isinstance(node, YMap):
        node.position = fix(node.position)
        node.key_positions = {k: fix(v) for k, v in node.key_positions.items()}
        for value in node.values():
            _remap(value, origin)
    elif isinstance(node, YList):
        node.position = fix(node.position)
        node.item_positions = [fix(p) for p in node.item_positions]
        for value in node:
            _remap(value, origin)


def _identity(doc: Document) -> tuple[str, str] | None:
    identity = IDENTITIES.get(doc.kind)
    value = doc.body.get(identity) if identity else None
    return (doc.kind, str(value)) if value is not None else None


def _merge(rendered: list[Document], own: list[Document], diagnostics: Diagnostics):
    by_identity: dict[tuple[str, str], int] = {}  # identity → index in result
    result: list[Document] = []
    for doc in rendered:
        key = _identity(doc)
        if key is not None and key in by_identity:
            diagnostics.error(doc.source, f"{key[0]} '{key[1]}' is rendered twice (also at "
                              f"{result[by_identity[key]].source})",
                              "two templates cannot declare the same resource; override it in "
                              "the environment instead")
            continue
        if key is not None:
            by_identity[key] = len(result)
        result.append(doc)
    overridden: dict[tuple[str, str], Document] = {}
    for doc in own:
        key = _identity(doc)
        at = by_identity.get(key) if key else None
        if at is None:
            result.append(doc)
            continue
        if key in overridden:
            diagnostics.error(doc.source, f"{key[0]} '{key[1]}' is overridden twice (also at "
                              f"{overridden[key].source})",
                              "put all changes to a rendered resource into one document")
            continue
        overridden[key] = doc
        result[at] = _override(result[at], doc)
    return result


@dataclass(slots=True)
class _OverriddenDocument(Document):
    """A rendered document with an environment document's fields on top.

    Positions are bare line numbers, so the document remembers which fields
    (and which users/extensions) came from the environment: those are located in
    the manifest, the others in the template that rendered them.
    """

    rendered: Source = field(default_factory=lambda: Source(""))
    top_fields: frozenset = frozenset()
    top_items: dict = field(default_factory=dict)  # keyed list → indexes from the manifest

    def locate(self, *path: str | int) -> Source:
        if path and path[0] in self.body and not self._from_top(path):
            return locate(self.body, self.rendered.file, path, self.rendered.via)
        return locate(self.body, self.source.file, path, self.source.via)

    def _from_top(self, path: tuple) -> bool:
        if path[0] not in self.top_fields:
            return False
        items = self.top_items.get(path[0])
        if items is None or len(path) < 2 or not isinstance(path[1], int):
            return True
        return path[1] in items


def _override(base: Document, top: Document) -> Document:
    """`top`'s fields replace `base`'s; users/extensions merge by their identity."""
    merged = YMap(base.body)
    merged.position = top.body.position
    merged.key_positions = dict(base.body.key_positions)
    top_items = {}
    for key, value in top.body.items():
        if key in KEYED_LISTS and isinstance(value, list) and isinstance(base.body.get(key), list):
            value, top_items[key] = _merge_keyed(base.body[key], value, KEYED_LISTS[key])
        merged[key] = value
        merged.key_positions[key] = top.body.key_positions[key]
    # Fields from the template keep pointing at the template; overridden ones at the manifest.
    return _OverriddenDocument(base.kind, merged, top.file, top.env, top.source, top.env_shown,
                               rendered=base.source, top_fields=frozenset(top.body),
                               top_items=top_items)


def _merge_keyed(base: YList, top: YList, key: str) -> tuple[YList, set[int]]:
    """The merged list, and the indexes of its items that come from `top`."""
    index = {item.get(key): i for i, item in enumerate(base) if isinstance(item, dict)}
    merged = YList(base)
    merged.position = base.position
    merged.item_positions = list(base.item_positions)
    from_top = set()
    for item, position in zip(top, top.item_positions):
        at = index.get(item.get(key)) if isinstance(item, dict) else None
        if at is None or item.get(key) == "auto":
            at = len(merged)
            merged.append(item)
            merged.item_positions.append(position)
        else:
            merged[at] = item
            merged.item_positions[at] = position
        from_top.add(at)
    return merged, from_top


def rendered_documents(documents: list[Document]) -> tuple[list[dict], list[str]]:
    """The final documents for `reconciler render`, plain-text secrets as `{env: NAME}`
    references, and those names."""
    rendered, names = [], []
    for doc in documents:
        body, used = plain_secrets_as_references(doc.kind, doc.body)
        rendered.append(body)
        names.extend(used)
    return rendered, names
