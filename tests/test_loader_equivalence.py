"""Our loader reads what ruamel's safe loader reads, and never mistakes a node for an alias.

Aliases are recognised by node identity; the nodes of a finished document are
freed and their ids reused, which once made a large document after a few
small ones fail with "aliases expand to more than 10000 values". The property
test compares with ruamel's safe loader on generated multi-document files up
to 5,000 extensions, with and without real anchors and aliases.
"""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.diagnostics import Diagnostics
from reconciler.loader import YList, YMap, parse_yaml

# Plain words that every YAML resolver keeps as strings, and quoted digit strings.
WORDS = st.sampled_from(["Empfang", "Lager", "Buero", "it", "berlin-hq", "a.b_c", "x"])
DIGITS = st.from_regex(r"[0-9]{2,5}", fullmatch=True)


def plain(value):
    """YMap/YList → dict/list, for comparing with ruamel's result."""
    if isinstance(value, YMap):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, YList):
        return [plain(v) for v in value]
    return value


def _small_document(index: int, words: list[str], anchored: bool) -> str:
    anchor = f" &shared{index}" if anchored else ""
    lines = ["kind: Account", f'customer_number: "{1000000 + index}"',
             f"name: {words[0]}", f"tags:{anchor} [{', '.join(words)}]"]
    if anchored:
        lines.append(f"copy: *shared{index}")
    return "\n".join(lines) + "\n"


def _tenant(extensions: int, words: list[str], digits: list[str], with_alias: bool) -> str:
    lines = ["kind: Tenant", "name: big", 'account: "1000000"', 'dial_plan: "5"']
    if with_alias:
        lines.append('defaults: &defaults {area_code: "030", product: light_user}')
    lines.append("extensions:")
    for number in range(extensions):
        word = words[number % len(words)]
        lines.append(f'  - number: "{10000 + number}"')
        lines.append(f"    name: {word}")
        lines.append(f'    pin: "{digits[number % len(digits)]}"')
        if with_alias and number % 97 == 0:
            lines.append("    settings: *defaults")
        lines.append(f"    enabled: {'true' if number % 2 else 'false'}")
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    small=st.lists(st.tuples(st.lists(WORDS, min_size=1, max_size=4), st.booleans()),
                   max_size=6),
    extensions=st.one_of(st.integers(0, 50), st.integers(1000, 5000)),
    words=st.lists(WORDS, min_size=1, max_size=5),
    digits=st.lists(DIGITS, min_size=1, max_size=5),
    with_alias=st.booleans(),
    tenant_first=st.booleans(),
)
def test_loader_matches_ruamel_safe_loader(small, extensions, words, digits, with_alias,
                                           tenant_first):
    documents = [_small_document(i, w, anchored) for i, (w, anchored) in enumerate(small)]
    tenant = _tenant(extensions, words, digits, with_alias)
    documents = [tenant, *documents] if tenant_first else [*documents, tenant]
    text = "---\n".join(documents)

    diagnostics = Diagnostics()
    ours = [plain(body) for body, _ in parse_yaml(text, "m.yaml", diagnostics)]
    theirs = list(YAML(typ="safe", pure=False).load_all(io.StringIO(text)))

    assert not diagnostics.items, [str(d) for d in diagnostics.items]
    assert ours == theirs


def test_many_small_documents_then_a_large_tenant_load():
    """The reported case: a few small documents, then 2,000 extensions, no alias."""
    text = "---\n".join([_small_document(i, ["a", "b"], False) for i in range(5)]
                        + [_tenant(2000, ["Lager"], ["1234"], False)])
    diagnostics = Diagnostics()
    documents = parse_yaml(text, "m.yaml", diagnostics)
    assert not diagnostics.items, [str(d) for d in diagnostics.items]
    assert len(documents) == 6
    assert len(documents[-1][0]["extensions"]) == 2000


def test_a_real_alias_bomb_is_still_refused():
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 6):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    diagnostics = Diagnostics()
    parse_yaml("kind: Account\n" + "\n".join(lines) + "\n", "bomb.yaml", diagnostics)
    assert any("aliases expand" in d.message for d in diagnostics.items)


def _with_positions(value):
    """Values and every recorded position, for comparing the two constructors."""
    if isinstance(value, YMap):
        return ("map", value.position, dict(value.key_positions),
                {k: _with_positions(v) for k, v in value.items()})
    if isinstance(value, YList):
        return ("seq", value.position, list(value.item_positions),
                [_with_positions(v) for v in value])
    return value


TRICKY = st.sampled_from(["x", "0100", "no", "~", "null", "", "TRUE", "1e3", "'q'", '"0000"',
                          "!!str 12", "[a, b]", "{a: 1}", "Müller & Söhne", "a&b", "x\ty"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small=st.lists(st.tuples(st.lists(WORDS, min_size=1, max_size=4), st.booleans()),
                      max_size=4),
       extensions=st.integers(0, 40), words=st.lists(WORDS, min_size=1, max_size=5),
       digits=st.lists(DIGITS, min_size=1, max_size=5), values=st.lists(TRICKY, max_size=8))
def test_the_fast_constructor_builds_what_the_alias_checking_one_builds(
        small, extensions, words, digits, values):
    """Without anchors the loader takes `_PlainConstructor`: same values, positions, errors."""
    import reconciler.loader as loader

    documents = [_small_document(i, w, False) for i, (w, _) in enumerate(small)]
    extra = "".join(f"v{i}: {value}\n" for i, value in enumerate(values))
    text = "---\n".join([*documents, _tenant(extensions, words, digits, False) + extra])
    results = []
    for pattern in (loader._ANCHOR, loader.re.compile("")):  # "" matches: always the slow one
        original, loader._ANCHOR = loader._ANCHOR, pattern
        try:
            diagnostics = Diagnostics()
            parsed, _ = loader._compose(text, "m.yaml", diagnostics)
        finally:
            loader._ANCHOR = original
        results.append(([(_with_positions(body), source) for body, source in parsed],
                        [str(d) for d in diagnostics.items]))
    assert results[0] == results[1]
