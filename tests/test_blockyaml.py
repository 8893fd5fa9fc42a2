"""The line parser reads exactly what libyaml's composer reads, or leaves the text to it.

`blockyaml.parse` is a fast path: for every text it either returns None or the
same documents as `loader._compose` — same values and types, same key order,
same positions of every mapping, key and item, same "a secret is written in
plain text" — and then libyaml reports no problem with the text. The property
tests generate texts in many styles, then damage them with YAML's own special
characters, and compare.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler import blockyaml, loader
from reconciler.diagnostics import Diagnostics

ROOT = Path(__file__).resolve().parent.parent

# Mostly what manifests hold, sometimes what YAML reads otherwise or the parser leaves.
COMMON_KEYS = st.sampled_from(["kind", "name", "number", "pin", "password", "addons", "a-b",
                               "x_y", "1", "0100", "true", "null", "k", "database"])
ODD_KEYS = st.sampled_from(["-x", "a b", "k:", "'q'", '"d"', "é", "<<", "? k", "a#b",
                            "sip_password"])
COMMON = st.sampled_from([
    "Empfang", "Kunde 4 GmbH", "Müller & Söhne", "admin@t.example", "2026-11-01", "0100",
    "0000", "1234", "true", "false", "null", "~", "x", "a-b", "Kundenweg 5, Berlin",
    "../secrets/a.txt", "+4930", "-5", "1.5", "1e3", "0x1F", "a:b", "12:30", "it's", "ä€😀"])
ODD = st.sampled_from([
    "http://x.y/z?a=1&b=2", "a #b", "a#b", "x: y", "- x", "-x", "-.5", "0o17", ".5", "1.",
    ".inf", "-.inf", ".nan", "1_000", "True", "TRUE", "tRue", "yes", "off", "Null", "", " ",
    "a  b", "a b ", "a::b", "a:", "[x]", "{x}", "a,b", "a, b", "x]", 'say "hi"', "back\\slash",
    "tab\there", "@home", "`tick", "%pct", "!bang", "!!str 12", "*star", "&amp x", "|", ">",
    "?q", "? q", ":c", "#hash", "\u00a0nbsp", "a\u2028b", "a\x85b", "---", "...", "=", "<<",
    "a\rb", "\ufeffb", "x\x07",
])
# (keys, scalars): as manifests write them, or now and then odd.
PLAIN = (COMMON_KEYS, COMMON)
MIXED = (st.one_of(*[COMMON_KEYS] * 9, ODD_KEYS), st.one_of(*[COMMON] * 5, ODD))
STYLES = st.sampled_from(["plain", "plain", "single", "double"])


def render_scalar(value: str, style: str) -> str:
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    if style == "double":
        return '"' + value + '"'
    return value


@st.composite
def flows(draw, pools) -> str:
    keys, scalars = pools
    items = draw(st.lists(st.tuples(scalars, STYLES), max_size=4))
    space = draw(st.sampled_from(["", " ", "  "]))
    rendered = [render_scalar(value, style) for value, style in items]
    if draw(st.booleans()):
        keys = draw(st.lists(keys, min_size=len(rendered), max_size=len(rendered),
                             unique=draw(st.integers(0, 9)) > 0))
        rendered = [f"{key}: {value}" for key, value in zip(keys, rendered)]
        return "{" + space + ("," + space).join(rendered) + space + "}"
    return "[" + space + ("," + space).join(rendered) + space + "]"


def entries(depth: int, pools, max_size: int = 4):
    """A mapping's (key, value) pairs; a key now and then twice."""
    return st.lists(st.tuples(pools[0], values(depth, pools)), min_size=1, max_size=max_size,
                    unique_by=lambda entry: entry[0]).flatmap(
        lambda items: st.sampled_from([items] * 9 + [items + items[:1]]))


@st.composite
def values(draw, depth: int, pools):
    """('scalar', text) or ('map', [(key, value)]) or ('seq', [value])."""
    choice = draw(st.integers(0, 9 if depth < 3 else 5))
    if choice <= 4:
        value, style = draw(pools[1]), draw(STYLES)
        return ("scalar", render_scalar(value, style))
    if choice == 5:
        return ("scalar", draw(flows(pools)))
    if choice <= 7:
        return ("map", draw(entries(depth + 1, pools)))
    return ("seq", draw(st.lists(values(depth + 1, pools), min_size=1, max_size=4)))


@st.composite
def layouts(draw):
    """How a tree is written: indentation, blanks after '-', comments, blank lines."""
    return {
        "indent": draw(st.integers(1, 4)),
        "dash": draw(st.sampled_from(["- ", "- ", "-  ", "-   "])),
        "indentless": draw(st.booleans()),
        "comment": draw(st.sampled_from(["", "", "", "  # note", " #x", "", "", "\t# tab"])),
        "blank": draw(st.sampled_from(["", "", "\n", "\n   \n", "\n# between\n", "\n  # c\n"])),
        "after_colon": draw(st.sampled_from([" ", " ", "  "])),
        "trailing": draw(st.sampled_from(["", "", " ", "  "])),
    }


def render_map(items, indent: int, layout: dict, first_prefix: str | None = None) -> list[str]:
    lines = []
    for position, (key, value) in enumerate(items):
        prefix = first_prefix if position == 0 and first_prefix is not None else " " * indent
        lines.extend(render_entry(prefix + key + ":", value, indent, layout))
    return lines


def render_entry(head: str, value, indent: int, layout: dict) -> list[str]:
    kind, content = value
    if kind == "scalar":
        return [head + layout["after_colon"] + content + layout["trailing"] + layout["comment"]]
    lines = [head + layout["comment"]]
    if kind == "map":
        lines.extend(render_map(content, indent + layout["indent"], layout))
        return lines
    inner = indent if layout["indentless"] else indent + layout["indent"]
    lines.extend(render_seq(content, inner, layout))
    return lines


def render_seq(items, indent: int, layout: dict) -> list[str]:
    lines = []
    dash = layout["dash"]
    for kind, content in items:
        prefix = " " * indent + dash
        if kind == "scalar":
            lines.append(prefix + content + layout["comment"])
        elif kind == "map":
            lines.extend(render_map(content, indent + len(dash), layout, first_prefix=prefix))
        else:
            lines.append(prefix.rstrip() + layout["comment"])
            lines.extend(render_seq(content, indent + layout["indent"], layout))
    return lines


@st.composite
def texts(draw, pools=MIXED) -> str:
    documents = draw(st.lists(entries(0, pools, max_size=5), min_size=1, max_size=3))
    layout = draw(layouts())
    rendered = []
    for items in documents:
        lines = render_map(items, draw(st.sampled_from([0, 0, 0, 2])), layout)
        rendered.append(layout["blank"].join(line + "\n" for line in lines))
    separator = draw(st.sampled_from(["---\n", "---\n", "--- \n", "---\n\n", "... \n---\n"]))
    head = draw(st.sampled_from(["", "", "---\n", "# comment\n", "\n"]))
    return head + separator.join(rendered)


DAMAGE = st.sampled_from(list(":-#'\"[]{},&*!|>?%@`\\\t\n ") + ["\n  ", ": ", "- ", "  "])


@st.composite
def damaged(draw) -> str:
    text = draw(texts(PLAIN))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(DAMAGE)
        if action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1:]
        else:
            text = text[:at] + piece + text[at + 1:]
    return text


def tree(value):
    """Values with their types, `.text` of numbers and every position, for comparing."""
    if isinstance(value, loader.YMap):
        return ("map", loader.unpack(value.position),
                [(key, loader.unpack(value.key_positions[key]), tree(item))
                 for key, item in value.items()])
    if isinstance(value, loader.YList):
        return ("seq", loader.unpack(value.position),
                [(loader.unpack(at), tree(item))
                 for at, item in zip(value.item_positions, value)])
    return (type(value).__name__, repr(value), getattr(value, "text", None))  # repr: nan


def assert_same_as_libyaml(text: str) -> bool:
    """Compare the line parser with libyaml on `text`; whether the line parser took it."""
    fast = blockyaml.parse(text)
    if fast is None:
        return False
    diagnostics = Diagnostics()
    composed, plain_secret = loader._compose(text, "m.yaml", diagnostics)
    assert [str(d) for d in diagnostics.items] == [], text
    bodies, fast_secret = fast
    assert [tree(body) for body in bodies] == [tree(body) for body, _ in composed], text
    assert [loader.unpack(body.position) for body in bodies] == [
        (source.line, source.column) for _, source in composed]
    assert fast_secret == plain_secret, text
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts())
@example("kind: Tenant\nextensions:\n- number: '1'\n  pin: \"0000\"\n- number: '2'\nname: x\n")
@example("a:\n  - b: 1\n    c:\n    - x\n    - y\n  - z\nd: {pin: '1'}\n")
@example("a: [x,y]  # c\nb:\n\n  # note\n  c: 'it''s'\n")
def test_generated_texts_read_as_libyaml_reads_them(text):
    assert_same_as_libyaml(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts(PLAIN))
def test_texts_as_manifests_write_them_read_as_libyaml_reads_them(text):
    """Layouts of every kind (indentation, blanks after '-', comments, blank lines) with
    the values manifests hold: mostly taken by the line parser, so its structure is tested."""
    assert_same_as_libyaml(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_texts_read_as_libyaml_reads_them_or_go_to_it(text):
    assert_same_as_libyaml(text)


def test_plain_manifests_take_the_line_parser():
    """The fast path is real: the layouts partners and generators write are not sent on."""
    text = (
        "# yaml-language-server: $schema=../schemas/document.schema.json\n"
        "kind: Account\ncustomer_number: \"7000004\"\nname: Kunde 4 GmbH\n"
        "address: Kundenweg 5, Berlin\n---\n"
        "kind: Site\nid: site-4\nnumber_blocks:\n  - {prefix: \"+4930\", from: \"0\", to: \"99\"}\n"
        "---\nkind: Tenant\nname: t\ndial_plan: 4\nsites: [site-4]\n"
        "users:\n  - email: admin@t.example\n    password: {file: ../secrets/t.txt}\n"
        "extensions:\n  - number: \"1000\"\n    name: Mitarbeiter 4-0\n    pin: \"0000\"\n"
        "    addons: [voicemail]\n    start_date: 2026-11-01\n    enabled: true\n"
        "  - number: '1001'  # the second\n    name: Lager\n")
    assert assert_same_as_libyaml(text)


def test_the_example_environments_read_as_libyaml_reads_them():
    files = sorted((ROOT / "examples").rglob("*.y*ml"))
    taken = [path for path in files if assert_same_as_libyaml(path.read_text(encoding="utf-8"))]
    assert len(taken) >= 0.8 * len(files), sorted(set(files) - set(taken))


def test_bad_inputs_are_left_to_libyaml_or_read_alike():
    for path in sorted((ROOT / "tests" / "bad_inputs").rglob("*.y*ml")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert_same_as_libyaml(text)


def test_what_the_line_parser_leaves_to_libyaml():
    for text in ["a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  text\n", "a: b\n  c\n",
                 "a: 1\na: 2\n", "a:\tb\n", "a: b\r\n", "- a\n", "a: \"x\\ty\"\n",
                 "a: [b, [c]]\n", "a: [b,\n  c]\n", "%TAG ! x\n---\na: 1\n", "? a\n: b\n",
                 "a: b # c\n  d: e\n", "a: 'x\n  y'\n", "a: [b, ]\n"]:
        assert blockyaml.parse(text) is None, text
