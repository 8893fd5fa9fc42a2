"""Plan JSON is written by orjson, byte for byte as the standard library writes it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.planfile import dumps

# Every character a manifest or a state row can hold, control characters,
# U+2028 and non-BMP characters included (no lone surrogates: UTF-8 files
# cannot hold them).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
# Floats as plans hold them: percentages and amounts, never an exponent.
FLOATS = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False).filter(
    lambda x: "e" not in repr(x))
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | FLOATS | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_same_bytes_as_the_standard_library(data):
    assert dumps(data) == json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_what_orjson_refuses_falls_back_to_the_standard_library():
    for data in ({"big": 2**70}, {"lone": "\ud800"}, {1: "int key"}):
        assert dumps(data) == json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_tuples_are_lists():
    assert dumps({"a": (1, "x")}) == json.dumps({"a": [1, "x"]}, indent=2) + "\n"
