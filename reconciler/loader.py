"""Load stage: environment directories → YAML documents that know their lines.

Most manifests are read by `blockyaml`, a line parser for the plain block YAML
they are written in; any other text goes to ruamel.yaml's C composer (libyaml)
and our own small constructor instead of ruamel's Python constructors: the
round-trip loader is far too slow for 100k extensions, and the safe
constructor loses line numbers. Both type plain scalars as YAML 1.2's core
schema does, which is what editors and JSON Schema validators see:
`null`/`~`/empty, `true`/`false`, and numbers, which keep the text as written
(`YInt`, `YFloat`: "quote it: \"0100\"" needs the zero). Everything else, and
every quoted scalar, is a string. Both record `line:column` of every mapping,
key and list item; the constructor refuses duplicate keys,
custom tags, `%YAML` directives, aliases that expand beyond a small bound and
deep nesting.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import multiprocessing
import os
import re
from array import array
from sys import intern
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from ruamel.yaml.cyaml import CBaseLoader
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .diagnostics import Diagnostic, Diagnostics, Source, display_path
from .digests import file_digest
from .gcpause import paused_gc
from .parsecache import ParseCache, dumps, loads

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml")
# Nodes an alias may add by expansion, across one document. Real manifests
# use a handful of anchors; a "billion laughs" needs millions.
ALIAS_EXPANSION_LIMIT = 10_000
# Real manifests nest about five levels deep.
NESTING_LIMIT = 100
# The C composer recurses once per level on the C stack and crashes the
# process (no exception) somewhere beyond 20,000 levels: text that might nest
# deeper than this is checked event by event before it is composed.
_COMPOSER_SAFE_DEPTH = 5_000
# A flow collection closed on its own line, with nothing inside that could
# hide or add a bracket (quotes, comments, other brackets).
_SIMPLE_FLOW = re.compile(r"\[[^\[\]{}\"'#\n]*\]|\{[^\[\]{}\"'#\n]*\}")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "map", "seq", "null", "bool", "int", "float"))
# YAML 1.2 core schema numbers (what editors and JSON Schema validators read).
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_NUMBER_START = frozenset("0123456789+-.")
_YAML_DIRECTIVE = re.compile(r"^%YAML\b", re.MULTILINE)


def _pack(line: int, column: int) -> int:
    return (line << 16) | min(column, 0xFFFF)  # a longer line must not shift the line


def unpack(position: int) -> tuple[int, int]:
    """(line, column), both 1-based, from a packed position."""
    return position >> 16, position & 0xFFFF


class YMap(dict):
    """A mapping that remembers where it and each of its keys stood."""

    __slots__ = ("position", "key_positions")

    def __reduce__(self):  # one call rebuilds it: ~25 % faster to (un)pickle than slot state
        return _ymap, (dict(self), getattr(self, "position", 0),
                       getattr(self, "key_positions", {}))


class YList(list):
    """A sequence that remembers where it and each item stood."""

    __slots__ = ("position", "item_positions")

    def __reduce__(self):
        return _ylist, (list(self), getattr(self, "position", 0),
                        getattr(self, "item_positions", []))


def _ymap(items: dict, position: int, key_positions: dict) -> YMap:
    mapping = YMap(items)
    mapping.position, mapping.key_positions = position, key_positions
    return mapping


def _ylist(items: list, position: int, item_positions: list) -> YList:
    sequence = YList(items)
    sequence.position, sequence.item_positions = position, item_positions
    return sequence


@dataclass(slots=True)
class Document:
    kind: str
    body: YMap
    file: Path  # absolute path of the manifest
    env: Path  # absolute path of the environment root
    source: Source  # where the document starts
    env_shown: str = ""  # the environment as the user named it
    # A tenant whose extensions the plan memo stands in for (memo.TenantSummary): the
    # body holds no `extensions`; None for every document read from its file.
    sealed: object = None
    # What checking the document against its kind's model gave where the file was parsed
    # (see load_environment's `prepare`): (model or None, diagnostics); None if not done.
    checked: object = None

    def show(self, path: Path) -> str:
        """A path inside the environment as the user should see it."""
        return show_path(path, self.env, self.env_shown)

    def locate(self, *path: str | int) -> Source:
        """The source of a field inside this document, as deep as it can be found."""
        return locate(self.body, self.source.file, path, self.source.via)


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    # A secret is written in plain text (a PIN other than '0000', a password): the parse
    # cache never keeps the file, the entry would outlive the fix of the manifest.
    plain_secret: bool = False


class KeptPositions:
    """What a plan keeps of a validated list of mappings (a tenant's extensions), which
    it only locates fields in from then on: where the list, each item and each item's
    keys stood.

    A few arrays for the whole list (~100 bytes per item) instead of a mapping per item
    (~1.1 KB): pickled from a worker process and kept by the plan, up to a million.
    """

    __slots__ = ("position", "items", "key_sets", "key_set_of", "starts", "marks")

    def __init__(self, items: YList):
        key_sets: dict[tuple, int] = {}
        self.position = items.position
        self.items = array("Q", items.item_positions)
        self.key_set_of, self.starts, self.marks = array("I"), array("I"), array("Q")
        for item in items:
            positions = item.key_positions if isinstance(item, YMap) else {}
            self.key_set_of.append(key_sets.setdefault(tuple(positions), len(key_sets)))
            self.starts.append(len(self.marks))
            self.marks.extend(positions.values())
        self.key_sets = tuple(key_sets)

    def find(self, steps, position: int) -> int:
        """The position of an item (`steps[0]`) or of its key (`steps[1]`), as deep as it
        is known; `position` when the item is not there."""
        index = steps[0]
        if not isinstance(index, int) or not 0 <= index < len(self.items):
            return position
        if len(steps) > 1 and steps[1] in (keys := self.key_sets[self.key_set_of[index]]):
            return self.marks[self.starts[index] + keys.index(steps[1])]
        return self.items[index]


# (file, its parse-cache key) → its load result, or None
Reuse = Callable[[Path, str], "LoadResult | None"]
# Work on a file's result where it is parsed (a worker process); a module-level function.
Prepare = Callable[["LoadResult"], None]


def locate(node: object, file: str, path: tuple | list, via: str = "") -> Source:
    """Walk `path` through YMap/YList and return the deepest known position."""
    position = getattr(node, "position", 0)
    for depth, step in enumerate(path):
        if isinstance(node, YMap) and (step in node or step in node.key_positions):
            position = node.key_positions.get(step, position)
            node = node.get(step)
        elif isinstance(node, YList) and isinstance(step, int) and 0 <= step < len(node):
            position = node.item_positions[step]
            node = node[step]
        else:
            if isinstance(node, KeptPositions):  # values let go of: a key is the deepest
                position = node.find(path[depth:], position)
            break
    line, column = unpack(position)
    return Source(file, line, column, via)


class _Loader(CBaseLoader):
    """libyaml's composer without tag resolution: every node gets its kind's default tag.

    Resolution is ours (see `_Constructor`); skipping ruamel's Python resolver
    per scalar is most of the cost of composing large files.
    """

    def resolve(self, kind, value, implicit):
        return _DEFAULT_TAGS[kind]

    def descend_resolver(self, current_node, current_index):
        pass

    def ascend_resolver(self):
        pass


_DEFAULT_TAGS = {
    ScalarNode: CBaseLoader.DEFAULT_SCALAR_TAG,
    SequenceNode: CBaseLoader.DEFAULT_SEQUENCE_TAG,
    MappingNode: CBaseLoader.DEFAULT_MAPPING_TAG,
}


class YInt(int):
    """An unquoted integer that remembers how it was written (`0100`, `+4930…`)."""

    def __new__(cls, text: str):
        value = int(text, 0) if text[1:2] in ("o", "x") else int(text)
        number = super().__new__(cls, value)
        number.text = text
        return number

    def __reduce__(self):  # parsed in worker processes: pickle the text, not the value
        return YInt, (self.text,)


class YFloat(float):
    """An unquoted decimal number that remembers how it was written (`12.50`)."""

    def __new__(cls, text: str):
        number = super().__new__(cls, text.lower().replace(".inf", "inf").replace(".nan", "nan"))
        number.text = text
        return number

    def __reduce__(self):
        return YFloat, (self.text,)


def number_text(value) -> str:
    """A number as the user wrote it."""
    return getattr(value, "text", None) or str(value).lower()


def plain_scalar(value: str):
    """A plain scalar as YAML 1.2's core schema types it."""
    if value in _NULLS:
        return None
    if value[:1] in _NUMBER_START:
        if _INT.fullmatch(value):
            return YInt(value)
        if _FLOAT.fullmatch(value):
            return YFloat(value)
        return value
    return _BOOLS.get(value, value)


def _tagged_scalar(value: str, tag: str):
    """!!null, !!bool, !!int and !!float as their types when they read as such; else the text."""
    if tag == _CORE + "null":
        return None
    if tag == _CORE + "bool":
        return _BOOLS.get(value, value)
    if tag in (_CORE + "int", _CORE + "float"):
        number = plain_scalar(value)
        return number if isinstance(number, (YInt, YFloat)) else value
    return value  # !!str, and unsupported tags (reported): the text as written


class _Constructor:
    """Turns composed nodes into YMap/YList/str/bool/None, collecting problems."""

    def __init__(self, file: str, diagnostics: Diagnostics):
        from .model import SECRET_FIELDS
        from .secrets import INITIAL_PIN

        self.file = file
        self.diagnostics = diagnostics
        self.secret_keys, self.initial_pin = SECRET_FIELDS, INITIAL_PIN
        self.plain_secret = False  # see LoadResult.plain_secret
        self.new_document()

    def new_document(self) -> None:
        """Forget the previous document: aliases never reach across documents.

        `seen` holds the nodes themselves, not only their id(): an id is unique
        only while its object lives, and the nodes of a finished document are
        freed, so a later node could get the id of an earlier one and be taken
        for an alias.
        """
        self.seen: dict[int, object] = {}
        self.sizes: dict[int, int] = {}
        self.alias_budget = ALIAS_EXPANSION_LIMIT
        self.open: set[int] = set()  # collections being constructed

    def source(self, node) -> Source:
        mark = node.start_mark
        return Source(self.file, mark.line + 1, mark.column + 1)

    def construct(self, node):
        if self.seen.get(id(node)) is node:  # an alias: the composer reuses the anchored node
            self.alias_budget -= self._size(node)
            if self.alias_budget < 0:
                raise _Refused(
                    self.source(node),
                    f"aliases expand to more than {ALIAS_EXPANSION_LIMIT} values",
                    "write the values out or use fewer nested aliases",
                )
        else:
            self.seen[id(node)] = node
        return self._node(node)

    def _node(self, node):
        node_type = type(node)
        if node.ctag is not _DEFAULT_TAGS[node_type]:  # an explicit tag such as !!str
            tag = str(node.ctag)
            if tag not in _ALLOWED_TAGS:  # reported; the value is read as if untagged
                self.diagnostics.error(
                    self.source(node),
                    f"tag '{tag}' is not supported",
                    "remove the tag; manifests use plain YAML values",
                )
            if node_type is ScalarNode:
                return _tagged_scalar(node.value, tag)
        if node_type is ScalarNode:
            value = node.value
            if node.style:  # quoted or block: always the text as written
                return value
            return plain_scalar(value)
        return self._collection(node, node_type)

    def _collection(self, node, node_type):
        if id(node) in self.open:
            raise _Refused(self.source(node), "an alias refers to a collection that contains it",
                           "a value cannot contain itself: write the values out")
        if len(self.open) >= NESTING_LIMIT:
            raise _too_deep(self.source(node))
        self.open.add(id(node))
        try:
            if node_type is MappingNode:
                return self._mapping(node)
            return self._sequence(node)
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: MappingNode) -> YMap:
        result = YMap()
        positions: dict = {}
        for key_node, value_node in node.value:
            mark = key_node.start_mark
            if not isinstance(key_node, ScalarNode) or key_node.value in result:
                self._bad_key(key_node, positions)
                continue
            key = key_node.value
            positions[key] = _pack(mark.line + 1, mark.column + 1)
            result[key] = self.construct(value_node)
            if key in self.secret_keys:
                self._check_plain(result[key])
        result.position = _pack(node.start_mark.line + 1, node.start_mark.column + 1)
        result.key_positions = positions
        return result

    def _check_plain(self, value) -> None:
        """A secret field's value: '0000' (the user chooses a PIN at first login) and
        references ({env:}, {file:}) are not secrets; anything else is."""
        if value != self.initial_pin and not isinstance(value, (dict, list)):
            self.plain_secret = True

    def _bad_key(self, key_node, positions: dict) -> None:
        """Report a key that is not a scalar, or that the mapping already has."""
        if not isinstance(key_node, ScalarNode):
            self.diagnostics.error(
                self.source(key_node), "a key must be a plain name",
                "use a simple string as the key",
            )
            return
        first, _ = unpack(positions[key_node.value])
        self.diagnostics.error(
            self.source(key_node),
            f"duplicate key '{key_node.value}' (first at line {first})",
            "remove one of the two; YAML keeps only one of them",
        )

    def _sequence(self, node: SequenceNode) -> YList:
        result = YList(self.construct(item) for item in node.value)
        result.position = _pack(node.start_mark.line + 1, node.start_mark.column + 1)
        result.item_positions = [
            _pack(item.start_mark.line + 1, item.start_mark.column + 1) for item in node.value
        ]
        return result

    def _size(self, node) -> int:
        key = id(node)
        if key not in self.sizes:
            self.sizes[key] = 0  # guards against recursive aliases
            if isinstance(node, MappingNode):
                size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
            elif isinstance(node, SequenceNode):
                size = 1 + sum(self._size(item) for item in node.value)
            else:
                size = 1
            self.sizes[key] = size
        return self.sizes[key]


class _PlainConstructor(_Constructor):
    """The constructor for a text without anchors: no node can be reached twice.

    Nearly every manifest has no anchor, and then the alias bookkeeping of
    `_Constructor` (a dict entry per node, a set of open collections) is pure
    cost; this one keeps only the nesting depth. Scalar values, most of a
    manifest, are converted inline. Keys are interned: 100k extensions share
    one string per field name, in the worker, through pickling, and after.
    """

    def new_document(self) -> None:
        self.depth = 0

    def construct(self, node):
        if type(node) is ScalarNode and node.ctag is _SCALAR_TAG:
            value = node.value
            if not node.style:
                value = plain_scalar(value)
            return intern(value) if type(value) is str and len(value) <= _SHARED_LENGTH else value
        return self._node(node)

    def _collection(self, node, node_type):
        if self.depth >= NESTING_LIMIT:
            raise _too_deep(self.source(node))
        self.depth += 1
        try:
            if node_type is MappingNode:
                return self._mapping(node)
            return self._sequence(node)
        finally:
            self.depth -= 1

    def _mapping(self, node: MappingNode) -> YMap:
        result = YMap()
        positions: dict = {}
        construct, secret_keys = self.construct, self.secret_keys
        for key_node, value_node in node.value:
            if type(key_node) is not ScalarNode or key_node.value in result:
                self._bad_key(key_node, positions)
                continue
            key = intern(key_node.value)
            mark = key_node.start_mark
            column = mark.column + 1
            positions[key] = ((mark.line + 1) << 16) | (column if column < 0xFFFF else 0xFFFF)
            if type(value_node) is ScalarNode and value_node.ctag is _SCALAR_TAG:
                value = value_node.value
                if not value_node.style:
                    value = plain_scalar(value)
                if type(value) is str and len(value) <= _SHARED_LENGTH:
                    value = intern(value)
                result[key] = value
            else:
                result[key] = construct(value_node)
            if key in secret_keys:
                self._check_plain(result[key])
        mark = node.start_mark
        result.position = _pack(mark.line + 1, mark.column + 1)
        result.key_positions = positions
        return result


_SCALAR_TAG = CBaseLoader.DEFAULT_SCALAR_TAG
# Short values repeat across extensions (products, add-ons, area codes, dates,
# PINs "0000", numbers across tenants): one shared string each saves ~300
# bytes per extension and makes the pickles from the workers smaller.
_SHARED_LENGTH = 12
# An anchor is '&' and its name. Text without '&' before a non-blank has no
# anchor, and so no alias ("Müller & Söhne" has a blank after it); anything
# else ("A&B", "?a=1&b=2") takes the constructor that checks aliases.
_ANCHOR = re.compile(r"&\S")


class _Refused(Exception):
    """A document the loader will not construct (alias bomb, deep nesting)."""

    def __init__(self, source: Source, message: str, hint: str):
        super().__init__(message)
        self.source = source
        self.hint = hint


def _too_deep(source: Source) -> _Refused:
    return _Refused(source, f"the document nests deeper than {NESTING_LIMIT} levels",
                    "flatten the structure")


def _check_nesting(text: str, shown: str) -> None:
    """Raise _Refused before the C composer could recurse deep enough to crash."""
    # An upper bound of the depth: every bracket that is left, plus one simple
    # collection, plus two block levels per column of the longest line.
    # Counting every bracket first spares removing the simple ones (most files).
    blocks = 2 * max(map(len, text.split("\n"))) + 4
    if text.count("[") + text.count("{") + blocks <= _COMPOSER_SAFE_DEPTH:
        return
    flows = _SIMPLE_FLOW.sub("", text)
    if flows.count("[") + flows.count("{") + blocks <= _COMPOSER_SAFE_DEPTH:
        return
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > NESTING_LIMIT:
                    mark = event.start_mark
                    raise _too_deep(Source(shown, mark.line + 1, mark.column + 1))
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except MarkedYAMLError:
        pass  # reported when the text is composed, before any deep level is reached
    finally:
        loader.dispose()


def read_text(path: Path, shown: str, diagnostics: Diagnostics,
              data: bytes | None = None) -> str | None:
    """The file (or its content `data`) as UTF-8 text, or None with a diagnostic for
    binary/non-UTF-8 files."""
    if data is None:
        data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        diagnostics.error(Source(shown, 1), "the file is UTF-16 text, not UTF-8",
                          "save the file as UTF-8")
        return None
    if b"\x00" in data:
        diagnostics.error(
            Source(shown, 1), "this is a binary file, not YAML text",
            "remove it from the environment or give it another extension",
        )
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        diagnostics.error(
            Source(shown, line, column),
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8",
        )
        return None
    return text.removeprefix("\ufeff")


def parse_yaml(text: str, shown: str, diagnostics: Diagnostics) -> list[tuple[YMap, Source]]:
    """Every document of a YAML text, each as (mapping, where it starts)."""
    return _parse(text, shown, diagnostics)[0]


def _parse(text: str, shown: str, diagnostics: Diagnostics
           ) -> tuple[list[tuple[YMap, Source]], bool]:
    """parse_yaml's documents, and whether a secret is written in plain text.

    Most manifests are read line by line (`blockyaml`); what that does not fully know
    is composed by libyaml."""
    match = _YAML_DIRECTIVE.search(text) if "%YAML" in text else None
    if match:
        line = text.count("\n", 0, match.start()) + 1
        diagnostics.error(
            Source(shown, line, 1), "a %YAML directive is not allowed",
            "remove the line; manifests are read as YAML 1.2 without directives",
        )
        return [], False
    from . import blockyaml  # here: blockyaml builds this module's values

    with paused_gc():
        simple = blockyaml.parse(text)
    if simple is not None:
        bodies, plain_secret = simple
        return [(body, Source(shown, *unpack(body.position))) for body in bodies], plain_secret
    return _compose(text, shown, diagnostics)


def _compose(text: str, shown: str, diagnostics: Diagnostics
             ) -> tuple[list[tuple[YMap, Source]], bool]:
    """_parse through libyaml's composer: any YAML text, with its errors reported."""
    plain = _ANCHOR.search(text) is None
    constructor = (_PlainConstructor if plain else _Constructor)(shown, diagnostics)
    documents = []
    loader = _Loader(text)
    try:
        _check_nesting(text, shown)
        with paused_gc():
            _compose_all(loader, constructor, documents, diagnostics)
    except MarkedYAMLError as exc:
        diagnostics.items.append(_syntax_diagnostic(exc, text, shown))
    except _Refused as exc:
        diagnostics.error(exc.source, str(exc), exc.hint)
    except RecursionError:
        diagnostics.error(Source(shown, 1), "the document is nested too deeply",
                          "flatten the structure")
    finally:
        loader.dispose()
    return documents, constructor.plain_secret


def _compose_all(loader, constructor, documents: list, diagnostics: Diagnostics) -> None:
    while loader.check_node():
        node = loader.get_node()
        constructor.new_document()
        source = constructor.source(node)
        value = constructor.construct(node)
        if isinstance(value, YMap):
            documents.append((value, source))
        elif value is not None:
            diagnostics.error(
                source, "a document must be a mapping with a 'kind'",
                "start the document with 'kind: Account' (or BasePackage, Site, Tenant)",
            )


def _syntax_diagnostic(exc: MarkedYAMLError, text: str, shown: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 0)
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    lines = text.split("\n")  # as YAML counts lines: not at U+2028 and friends
    bad_line = lines[line - 1] if 0 < line <= len(lines) else ""
    hint = "check the indentation, quotes and brackets around this position"
    if "\t" in bad_line[: max(column, 1)] or (column and bad_line[column - 1 : column] == "\t"):
        problem = "a tab character is used for indentation"
        hint = "indent with spaces; YAML does not allow tabs"
    elif _UNCLOSED.get(exc.context) and exc.context_mark and exc.context_mark.line < line - 1:
        # the parser notices only lines later: point at what was left open
        opened, closing = _UNCLOSED[exc.context]
        problem = f"{opened} is not closed ({exc.problem.strip()} at line {line})"
        hint = f"close it with {closing}"
        line, column = exc.context_mark.line + 1, exc.context_mark.column + 1
    elif exc.context and exc.problem:
        problem = f"{exc.context.strip()}: {exc.problem.strip()}"
    return Diagnostic(Source(shown, line, column), f"YAML syntax error: {problem}", hint)


# Parser contexts that mean "something opened here was never closed".
_UNCLOSED = {
    "while parsing a flow sequence": ("the '[' here", "']'"),
    "while parsing a flow mapping": ("the '{' here", "'}'"),
    "while scanning a quoted scalar": ("the quoted value here", "the same quote character"),
}


def show_path(path: Path, env: Path, env_shown: str) -> str:
    """`path` relative to the environment as the user named it (e.g. envs/acme/a.yaml)."""
    try:
        return str(Path(env_shown) / path.resolve().relative_to(env))
    except ValueError:
        return display_path(path)


# A line whose first non-blank is not '#': the file is not empty (found at
# once, where splitting 100k lines to find out cost more than parsing them).
_CONTENT = re.compile(r"^\s*[^\s#]", re.MULTILINE)


def load_file(path: Path, env: Path, env_shown: str, data: bytes | None = None) -> LoadResult:
    """Load one manifest file (whose content is `data`, when given); never raises for bad
    content."""
    result = LoadResult()
    shown = show_path(path, env, env_shown)
    text = read_text(path, shown, result.diagnostics, data)
    if text is None:
        return result
    if _CONTENT.search(text) is None and all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        result.diagnostics.error(
            Source(shown, 1), "the file is empty",
            "add a document ('kind: …') or delete the file",
        )
        return result
    documents, result.plain_secret = _parse(text, shown, result.diagnostics)
    for body, source in documents:
        kind = body.get("kind")
        if kind is None:
            result.diagnostics.error(
                source, "the document has no 'kind'",
                "add 'kind: Account' (or BasePackage, Site, Tenant) as its first line",
            )
            continue
        result.documents.append(Document(str(kind), body, path, env, source, env_shown))
    return result


def manifest_files(env: Path) -> list[Path]:
    """Every *.yaml/*.yml under env, sorted, skipping hidden directories."""
    files = []
    for path in env.rglob("*"):
        relative = path.relative_to(env)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix in MANIFEST_SUFFIXES and path.is_file():
            files.append(path)
    return sorted(files)


# Below this many bytes of YAML, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD_BYTES = 2_000_000


def load_environment(env: Path, each_file: Callable[[list[Document]], None] | None = None,
                     reuse: Reuse | None = None, prepare: Prepare | None = None
                     ) -> LoadResult:
    """All documents of one environment directory, in file order. `each_file` is given
    each file's documents as soon as they are loaded, while later files are still being
    parsed (the caller can validate them meanwhile). `reuse(path, entry)` may give a
    file's result instead of the parse cache (`entry`: the file's parse-cache key).
    `prepare(result)` runs on each parsed file's result where it is parsed, and the
    parse cache keeps what it made of it."""
    result = LoadResult()
    env_shown = str(env)
    env = env.resolve()
    files = []
    for path in manifest_files(env):
        if path.resolve().is_relative_to(env):
            files.append(path)
        else:
            result.diagnostics.error(
                Source(str(Path(env_shown) / path.relative_to(env))),
                "the file links outside its environment",
                "copy the file into the environment instead of linking to it",
            )
    for loaded in _load_files(files, env, env_shown, reuse, prepare):
        result.documents.extend(loaded.documents)
        result.diagnostics.extend(loaded.diagnostics)
        if each_file is not None:
            each_file(loaded.documents)
    _check_is_one_environment(result, files, env, env_shown)
    log.info("%s: read %d documents from %d files", env_shown, len(result.documents), len(files))
    return result


def _check_is_one_environment(result: LoadResult, files: list[Path], env: Path,
                              env_shown: str) -> None:
    """An empty directory, or a directory of environments, is not an environment.

    Planning either would be wrong in a way that looks right: "no changes" for a
    typo in the path, or several customers merged into one scope.
    """
    if not result.documents and not result.diagnostics.items:
        result.diagnostics.error(
            Source(env_shown), "no manifests here (no *.yaml or *.yml file with a document)",
            "check the path: an environment is a directory of manifests")
        return
    if any(path.parent == env for path in files):
        return  # manifests at the top: one environment, whatever lies below
    homes = {doc.file.parent.relative_to(env) for doc in result.documents
             if doc.kind in ("Account", "Use")}
    roots = sorted(home for home in homes if not any(other in home.parents for other in homes))
    if len(roots) >= 2:  # report this alone: the merged documents would only add noise
        shown = [str(Path(env_shown) / root) for root in roots]
        parents = {root.parent for root in roots}
        example = (Path(env_shown) / next(iter(parents)) / "*") if len(parents) == 1 else shown[0]
        result.documents.clear()
        result.diagnostics = Diagnostics()
        result.diagnostics.error(
            Source(env_shown), f"this directory holds {len(roots)} environments: "
            + ", ".join(shown),
            f"pass each environment directory on its own, e.g. 'reconciler plan {example}'")


def _load_files(files: list[Path], env: Path, env_shown: str, reuse: Reuse | None,
                prepare: Prepare | None) -> Iterator[LoadResult]:
    """Results in file order: given by `reuse`, else from the parse cache where a file is
    unchanged, the others parsed (on every core when there is much to parse) and kept for
    the next run. Results are unpickled as they arrive, while the workers parse the files
    after them."""
    cache = ParseCache.open()
    variant = _variant(prepare)
    entries = [cache.entry(path, env, env_shown, file_digest(path), variant) if cache else None
               for path in files]
    reused = [reuse(path, entry.name) if reuse and entry else None
              for path, entry in zip(files, entries)]
    blobs = [cache.get(entry) if entry and done is None else None
             for entry, done in zip(entries, reused)]
    missing = [path for path, blob, done in zip(files, blobs, reused)
               if blob is None and done is None]
    log.info("parse cache: %d of %d files unchanged", len(files) - len(missing), len(files))
    parsed = _parse_all(missing, env, env_shown, cache, prepare)
    for index, blob in enumerate(blobs):
        blobs[index] = None  # each pickle is dropped once loaded (240 MB at 1M extensions)
        if reused[index] is not None:
            yield reused[index]
        else:
            yield loads(blob if blob is not None else next(parsed))
    if missing and cache:
        cache.prune()


def _variant(prepare: Prepare | None) -> str:
    """What distinguishes parse-cache entries made with `prepare` from plain ones."""
    return "" if prepare is None else f"{prepare.__module__}.{prepare.__qualname__}"


def _parse_all(files: list[Path], env: Path, env_shown: str, cache: ParseCache | None,
               prepare: Prepare | None):
    """Parse (and keep) each file, yielding its result pickled, in order (large sets on
    several processes)."""
    if not files:
        return
    work = partial(_parse_and_keep, env=env, env_shown=env_shown, cache=cache,
                   prepare=prepare)
    workers = min(os.cpu_count() or 1, 4)
    size = sum(path.stat().st_size for path in files)
    if workers < 2 or len(files) < 2 or size < PARALLEL_THRESHOLD_BYTES:
        yield from map(work, files)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(work, files, chunksize=max(1, len(files) // (workers * 4)))


def _parse_and_keep(path: Path, env: Path, env_shown: str, cache: ParseCache | None,
                    prepare: Prepare | None) -> bytes:
    """The pickled result of parsing `path`, kept under the digest of the bytes parsed (not
    of those the caller hashed: the file may have changed in between)."""
    data = path.read_bytes()
    result = load_file(path, env, env_shown, data)
    if prepare is not None:
        with paused_gc():
            prepare(result)
    blob = dumps(result)
    if cache and not result.plain_secret:
        digest = hashlib.sha256(data).digest()
        cache.put(cache.entry(path, env, env_shown, digest, _variant(prepare)), blob)
    return blob
