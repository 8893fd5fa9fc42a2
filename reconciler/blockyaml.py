"""A line parser for the plain block YAML that manifests are written in.

Composing a YAML text with libyaml builds a Python node object (and two marks)
for every scalar before our constructor turns it into a value; that is most of
a cold plan's time. Manifests, and generated ones above all, are written in a
small part of YAML: block mappings and sequences, one `key: value` per line,
plain or quoted scalars, one-line flow collections (`[voicemail]`,
`{file: pin.txt}`) and comments. This module reads that part line by line,
straight into the loader's values (YMap/YList, the same types, positions and
interned strings as `loader._PlainConstructor`).

It is a fast path, never a second dialect: anything it does not fully know —
anchors, tags, block scalars, multi-line scalars, escapes, tabs, `\\r`, odd
indentation, a duplicate key, any error — makes `parse` return None, and the
loader composes the text with libyaml as before. A property test compares the
two on generated and mutated texts, positions included.
"""

from __future__ import annotations

import re
from sys import intern

from .loader import YList, YMap, _pack, plain_scalar

# Characters libyaml reads as printable text without a second meaning: no
# tab or carriage return, no NEL/LS/PS line breaks, no byte-order mark.
_UNUSUAL = re.compile("[^\n -~\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
                      "\U00010000-\U0010ffff]")

# A plain scalar's first character: not an indicator, or '-' before a digit/dot.
_PLAIN_START = r"(?:[^ \n\-?:,\[\]{}#&*!|>'\"%@`]|-(?=[0-9.]))"
# In a block: any non-blank, ':' only before a non-blank; after blanks, no '#'.
_BLOCK_PLAIN = (_PLAIN_START + r"[^ \n:]*(?::+[^ \n:]+)*"
                r"(?: +[^ \n:#][^ \n:]*(?::+[^ \n:]+)*)*")
# In a flow collection: no ',[]{}' and no ':' at all.
_FLOW_PLAIN = (_PLAIN_START + r"[^ \n:,\[\]{}]*"
               r"(?: +[^ \n:#,\[\]{}][^ \n:,\[\]{}]*)*")
_QUOTED = r"\"[^\"\\\n]*\"|'(?:[^'\n]|'')*'"
_KEY = r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}"
# A one-line flow collection of scalars; its items are read by _FLOW_ITEM.
_FLOW = r"\[[^\[\]{}\n]*\]|\{[^\[\]{}\n]*\}"

# indent, "- " (a sequence item), key (with ':'), value; then a comment.
_LINE = re.compile(
    rf"( *)(- +)?(?:({_KEY}):(?: +({_QUOTED}|{_FLOW}|{_BLOCK_PLAIN}))?"
    rf"|({_QUOTED}|{_FLOW}|{_BLOCK_PLAIN}))(?: +#.*)? *")
# A plain scalar that starts with a letter is a string, unless it is one of these.
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WORDS = frozenset(("null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"))
_BLANK = re.compile(r" *(?:#.*)?")
_DOCUMENT_START = re.compile(r"--- *")
_FLOW_ITEM = re.compile(rf" *(?:({_KEY}): +)?({_QUOTED}|{_FLOW_PLAIN}) *(,|$)")

# Deeper than real manifests nest; the loader's own limit is checked by libyaml's path.
_DEPTH_LIMIT = 50


class _NotSimple(Exception):
    """The text leaves the subset: libyaml composes it."""


def parse(text: str) -> tuple[list, bool] | None:
    """Every document of `text` as a YMap, and whether a secret is written in plain
    text; None when the text is not in the subset."""
    if _UNUSUAL.search(text):
        return None
    try:
        return _Parser().run(text)
    except _NotSimple:
        return None


class _Frame:
    """An open block collection: its indentation, and for a mapping the key whose
    value is on the next lines."""

    __slots__ = ("indent", "value", "is_map", "pending", "indentless")

    def __init__(self, indent: int, value, is_map: bool, indentless: bool = False):
        self.indent, self.value, self.is_map = indent, value, is_map
        self.pending = None
        self.indentless = indentless  # a sequence at its parent key's indentation


class _Parser:
    def __init__(self):
        from .model import SECRET_FIELDS
        from .secrets import INITIAL_PIN

        self.secret_keys, self.initial_pin = SECRET_FIELDS, INITIAL_PIN
        self.plain_secret = False

    def run(self, text: str):
        documents = []
        stack: list[_Frame] = []
        line_match, blank_match = _LINE.fullmatch, _BLANK.fullmatch
        secret_keys, words = self.secret_keys, _WORDS
        # The open mapping and its indentation, when its next key needs no more than the
        # loop below (no pending key); the list it is an item of, and that list's indent.
        mapping, indent, column, positions = {}, -1, 0, None
        item_list, list_indent = None, -1
        for number, line in enumerate(text.split("\n"), 1):
            match = line_match(line)
            if match is None:
                if blank_match(line):
                    continue
                if _DOCUMENT_START.fullmatch(line):
                    self._end_document(stack, documents)
                    stack, mapping, indent, list_indent = [], {}, -1, -1
                    continue
                raise _NotSimple
            spaces, dash, key, value, _ = match.groups()
            # Most lines: the next `key: value` of the open mapping, or the first of the
            # next mapping in its list.
            if value is not None and (
                    dash is None and len(spaces) == indent and key not in mapping
                    or dash is not None and len(spaces) == list_indent):
                if dash is not None:
                    indent = list_indent + len(dash)
                    column = min(indent + 1, 0xFFFF)
                    mapping = YMap()
                    mapping.position = _pack(number, indent + 1)
                    mapping.key_positions = positions = {}
                    item_list.append(mapping)
                    item_list.item_positions.append(mapping.position)
                    stack[-1] = _Frame(indent, mapping, True)
                first = value[0]
                if first == '"':
                    value = value[1:-1]
                elif first not in _LETTERS or value in words:
                    value = self._value(value, number, match.start(4))
                if type(value) is str and len(value) <= 12:
                    value = intern(value)
                key = intern(key)
                positions[key] = (number << 16) | column  # _pack, with `column` capped once
                mapping[key] = value
                if key in secret_keys:
                    self._check_secret(key, value)
                continue
            self._line(stack, number, match)
            top = stack[-1]
            if top.is_map and top.pending is None:
                mapping, indent, positions = top.value, top.indent, top.value.key_positions
                column = min(indent + 1, 0xFFFF)
                below = stack[-2] if len(stack) > 1 else None
                if below is not None and not below.is_map and below.value[-1] is mapping:
                    item_list, list_indent = below.value, below.indent
                else:
                    item_list, list_indent = None, -1
            else:
                mapping, indent, list_indent = {}, -1, -1
        self._end_document(stack, documents)
        return documents, self.plain_secret

    def _end_document(self, stack: list[_Frame], documents: list) -> None:
        for frame in stack:
            if frame.pending is not None:
                self._set_null(frame)
        if stack:
            documents.append(stack[0].value)

    def _line(self, stack: list[_Frame], number: int, match) -> None:
        spaces, dash, key, value, item = match.groups()
        indent = len(spaces)
        if stack:
            top = stack[-1]
            if top.pending is not None:
                if self._open_nested(stack, top, indent, dash is not None, number):
                    top = stack[-1]
                else:
                    self._set_null(top)
            while top.indent > indent or (top.indentless and top.indent == indent and not dash):
                stack.pop()
                if not stack:
                    raise _NotSimple  # less indented than the document
                top = stack[-1]
            if top.indent != indent:
                raise _NotSimple  # a continued scalar, or indentation YAML refuses
        elif dash:
            raise _NotSimple  # the document is not a mapping: libyaml reports it
        else:
            top = self._push(stack, self._mapping(number, indent), indent, True)
        if top.is_map:
            if dash:
                raise _NotSimple
            self._key(top, match, number)
        elif not dash:
            raise _NotSimple
        elif key is not None:  # "- key: …": a mapping as the item
            column = match.start(3)
            mapping = self._mapping(number, column)
            top.value.append(mapping)
            top.value.item_positions.append(mapping.position)
            self._key(self._push(stack, mapping, column, True), match, number)
        elif item is not None:
            column = match.start(5)
            top.value.append(self._value(item, number, column))
            top.value.item_positions.append(_pack(number, column + 1))
        else:
            raise _NotSimple

    def _mapping(self, number: int, column: int):
        mapping = YMap()
        mapping.position = _pack(number, column + 1)
        mapping.key_positions = {}
        return mapping

    @staticmethod
    def _push(stack: list[_Frame], value, indent: int, is_map: bool,
              indentless: bool = False) -> _Frame:
        frame = _Frame(indent, value, is_map, indentless)
        stack.append(frame)
        if len(stack) > _DEPTH_LIMIT:
            raise _NotSimple
        return frame

    def _open_nested(self, stack, top: _Frame, indent: int, dash: bool, number: int) -> bool:
        """Open the collection that the pending key's value starts with on this line."""
        if indent > top.indent:
            indentless = False
        elif indent == top.indent and dash:
            indentless = True
        else:
            return False
        if dash:
            value = YList()
            value.position = _pack(number, indent + 1)
            value.item_positions = []
        else:
            value = self._mapping(number, indent)
        top.value[top.pending] = value
        top.pending = None
        self._push(stack, value, indent, not dash, indentless)
        return True

    def _set_null(self, frame: _Frame) -> None:
        if frame.pending in self.secret_keys:
            self.plain_secret = True  # as the loader: an empty secret is not a reference
        frame.pending = None

    def _key(self, frame: _Frame, match, number: int) -> None:
        key, value = match.group(3, 4)
        mapping = frame.value
        if key is None or key in mapping:
            raise _NotSimple  # a bare value in a mapping, or a duplicate key (reported there)
        key = intern(key)
        mapping.key_positions[key] = _pack(number, match.start(3) + 1)
        if value is None:
            mapping[key] = None
            frame.pending = key
            return
        mapping[key] = self._check_secret(key, self._value(value, number, match.start(4)))

    def _check_secret(self, key: str, value):
        """`value`, noting a secret written in plain text (see loader._check_plain)."""
        if key in self.secret_keys and value != self.initial_pin and not isinstance(
                value, (dict, list)):
            self.plain_secret = True
        return value

    def _value(self, text: str, number: int, column: int):
        first = text[0]
        if first == '"':
            value = text[1:-1]
        elif first == "'":
            value = text[1:-1].replace("''", "'")
        elif first in "[{":
            return self._flow(text, number, column)
        else:
            value = plain_scalar(text)
            if type(value) is not str:
                return value
        return intern(value) if len(value) <= 12 else value

    def _flow(self, text: str, number: int, column: int):
        """A one-line flow sequence or mapping of scalars, starting at `column`."""
        is_map = text[0] == "{"
        if is_map:
            result = self._mapping(number, column)
        else:
            result = YList()
            result.position = _pack(number, column + 1)
            result.item_positions = []
        inner = text[1:-1]
        position, end = 0, len(inner)
        if inner.strip(" "):
            while position < end:
                match = _FLOW_ITEM.match(inner, position)
                if match is None or (match.group(1) is None) == is_map or (
                        match.group(3) == "," and match.end() == end):
                    raise _NotSimple
                value_column = column + 1 + match.start(2)
                value = self._value(match.group(2), number, value_column)
                if is_map:
                    key = intern(match.group(1))
                    if key in result:
                        raise _NotSimple
                    result.key_positions[key] = _pack(number, column + 2 + match.start(1))
                    result[key] = self._check_secret(key, value)
                else:
                    result.append(value)
                    result.item_positions.append(_pack(number, value_column + 1))
                position = match.end()
        return result
