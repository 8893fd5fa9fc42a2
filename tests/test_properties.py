"""Property tests (hypothesis): the loader keeps digit strings and words as written,
and plan/apply converge on whatever valid environment is declared.

1. Loader: digit strings (leading zeros, a leading '+'), other number-looking
   words and YAML-1.1 booleans load as exactly the string written when quoted
   (single or double), and as YAML 1.2's core schema types them when plain: a
   number that keeps the text as written, or the string — as a mapping value, a
   list item or inside flow collections; every key and list item is located on
   the line it was written.
2. Planner: for random valid environments D1 and D2 that differ only in allowed
   ways, apply(D1); apply(D2) leaves a state equal to D2, and each apply is
   followed by an empty plan.
3. `auto` numbering is deterministic, takes the lowest free numbers, and an
   applied `auto` extension keeps its number when explicit extensions are added.

Plans are built and applied in-process against a fresh SQLite file per example
(hypothesis runs many examples per test function, so function-scoped fixtures
such as `tmp_path` cannot be used).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import shutil
import string
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.apply import apply_plan
from reconciler.catalog import builtin_catalog
from reconciler.diagnostics import Diagnostics, ReconcilerError
from reconciler.loader import YFloat, YInt, YList, YMap, locate, parse_yaml
from reconciler.loader import number_text as as_written
from reconciler.plan import PlanOptions, build_plan, existing_extensions
from reconciler.resources import desired_resources
from reconciler.secrets import password_problem
from reconciler.state.sql import open_store
from reconciler.validate import validate_environment

PLANNER_SETTINGS = settings(max_examples=40, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])
OPTIONS = PlanOptions(allow_delete=True, force=True)


# ---------------------------------------------------------------------------
# 1. Loader
# ---------------------------------------------------------------------------

digit_strings = st.one_of(
    st.text(alphabet=string.digits, min_size=1, max_size=40),
    st.sampled_from(["0100", "030", "0000", "00", "0", "007", "0123456789012345678901234567890"]),
)
signed_digit_strings = st.builds(lambda sign, digits: sign + digits,
                                 st.sampled_from(["", "+"]), digit_strings)
# YAML 1.1 booleans: ours is YAML 1.2 core without 1.1 words, so they are strings.
yaml11_bools = st.sampled_from(["no", "on", "yes", "off", "y", "n", "NO", "No", "ON", "On", "YES",
                                "Yes", "OFF", "Off", "Y", "N"])
# Other words a YAML 1.1 / core resolver would turn into numbers or dates.
number_looking = st.sampled_from(["1_000", "0x1F", "0o17", "0b1010", "1e3", "12:30", ".5", "-1",
                                  "+1.5", ".inf", "-.inf", ".nan", "2026-12-01", "010.50"])
string_scalars = st.one_of(signed_digit_strings, yaml11_bools, number_looking)

STYLES = ("plain", "single", "double")
QUOTED = ("single", "double")  # digit strings in manifests are quoted


def write_scalar(value: str, style: str) -> str:
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    if style == "double":
        return json.dumps(value)
    return value


CONTEXTS = ("value", "list_item", "flow_map", "flow_seq", "nested_value")


def yaml_with(value: str, style: str, context: str) -> tuple[str, tuple]:
    """A YAML document holding `value` in `context`, and the path to find it again."""
    scalar = write_scalar(value, style)
    if context == "value":
        return f"kind: Test\nfield: {scalar}\n", ("field",)
    if context == "list_item":
        return f"kind: Test\nitems:\n  - first\n  - {scalar}\n", ("items", 1)
    if context == "flow_map":
        return f"kind: Test\nblock: {{prefix: {scalar}, from: {scalar}}}\n", ("block", "from")
    if context == "flow_seq":
        return f"kind: Test\nitems: [{scalar}, {scalar}]\n", ("items", 1)
    return f"kind: Test\nouter:\n  inner:\n    - value: {scalar}\n", ("outer", "inner", 0, "value")


def load_one(text: str) -> YMap:
    diagnostics = Diagnostics()
    documents = parse_yaml(text, "t.yaml", diagnostics)
    assert diagnostics.items == [], [str(d) for d in diagnostics.items]
    assert len(documents) == 1
    return documents[0][0]


def walk(node, path):
    for step in path:
        node = node[step]
    return node


@given(string_scalars, st.sampled_from(STYLES), st.sampled_from(CONTEXTS))
def test_digit_strings_and_words_load_as_written(value, style, context):
    # libyaml (a YAML 1.1 scanner) refuses ':' inside a plain scalar in flow context.
    assume(not (":" in value and style == "plain" and context.startswith("flow")))
    text, path = yaml_with(value, style, context)
    loaded = walk(load_one(text), path)
    assert_loaded_as_written(loaded, value, style)


# YAML 1.2 core schema: the plain scalars that are numbers.
CORE_NUMBER = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
                         r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                         r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


def assert_loaded_as_written(loaded, value: str, style: str) -> None:
    if style == "plain" and CORE_NUMBER.fullmatch(value):
        assert type(loaded) in (YInt, YFloat), (value, loaded)
        assert as_written(loaded) == value
    else:
        assert type(loaded) is str
        assert loaded == value


@given(st.lists(st.tuples(string_scalars, st.sampled_from(STYLES)), min_size=1, max_size=10))
def test_many_scalars_in_one_document_all_load_as_written(values):
    values = [(v, "double" if ":" in v else s) for v, s in values]  # see above
    lines = ["kind: Test", "values:"]
    lines += [f"  - {write_scalar(v, s)}" for v, s in values]
    flow = ", ".join(f"k{i}: {write_scalar(v, s)}" for i, (v, s) in enumerate(values))
    lines.append("flow: {" + flow + "}")
    body = load_one("\n".join(lines) + "\n")
    assert len(body["values"]) == len(body["flow"]) == len(values)
    for i, (value, style) in enumerate(values):
        assert_loaded_as_written(body["values"][i], value, style)
        assert_loaded_as_written(body["flow"][f"k{i}"], value, style)


@given(signed_digit_strings)
def test_digit_string_as_key_stays_a_string(value):
    body = load_one(f"kind: Test\n{value}: x\n'{value}x': y\n")
    assert list(body) == ["kind", value, value + "x"]


def test_null_and_booleans_are_the_only_plain_non_strings():
    body = load_one("kind: Test\na: null\nb: ~\nc:\nd: true\ne: False\nf: 'true'\ng: \"null\"\n")
    assert body == {"kind": "Test", "a": None, "b": None, "c": None, "d": True, "e": False,
                    "f": "true", "g": "null"}


keys = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
    digit_strings,
    yaml11_bools,
)
leaf_values = st.one_of(string_scalars, st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,20}[A-Za-z0-9]",
                                                      fullmatch=True))
fillers = st.lists(st.sampled_from(["", "# a comment", "   # indented comment", "  "]), max_size=2)


@st.composite
def located_mappings(draw):
    """(entries, rnd): top-level keys with the kind of their value and the filler lines
    before them; `rnd` shapes the rest (quoting, list lengths, nested keys)."""
    names = draw(st.lists(keys, min_size=1, max_size=8, unique=True))
    entries = []
    for name in names:
        kind = draw(st.sampled_from(["scalar", "scalar", "list", "map"]))
        entries.append((name, kind, draw(fillers)))
    return entries, draw(st.randoms(use_true_random=False))


def render_located(entries, rnd, indent: int, path: tuple, lines: list[str], expected: dict,
                   depth: int = 0) -> None:
    pad = " " * indent
    for name, kind, filler in entries:
        lines.extend(filler)
        key_text = write_scalar(name, rnd.choice(STYLES))
        expected[path + (name,)] = (len(lines) + 1, indent + 1)
        if kind == "scalar":
            value = rnd.choice(["x", "0100", "'030'", "no", "\"+49 30\""])
            lines.append(f"{pad}{key_text}: {value}")
        elif kind == "list":
            lines.append(f"{pad}{key_text}:")
            for index in range(rnd.randint(1, 3)):
                if rnd.random() < 0.3:
                    lines.append("")
                expected[path + (name, index)] = (len(lines) + 1, indent + 5)
                lines.append(f"{pad}  - item{index}")
        else:
            lines.append(f"{pad}{key_text}:")
            children = [(f"c{i}", "scalar" if depth else rnd.choice(["scalar", "list"]), [])
                        for i in range(rnd.randint(1, 3))]
            render_located(children, rnd, indent + 2, path + (name,), lines, expected, depth + 1)


@given(st.lists(located_mappings(), min_size=1, max_size=3), st.sampled_from(["\n", "\r\n"]))
def test_every_key_is_located_on_the_line_it_was_written(documents, newline):
    lines: list[str] = []
    expected_per_doc = []
    for index, (entries, rnd) in enumerate(documents):
        if index:
            lines.append("---")
        expected: dict = {}
        render_located(entries, rnd, 0, (), lines, expected)
        expected_per_doc.append(expected)
    diagnostics = Diagnostics()
    parsed = parse_yaml(newline.join(lines) + newline, "t.yaml", diagnostics)
    assert diagnostics.items == []
    assert len(parsed) == len(documents)
    for (body, _), expected in zip(parsed, expected_per_doc):
        for path, (line, column) in expected.items():
            where = locate(body, "t.yaml", path)
            assert (where.line, where.column) == (line, column), (path, lines)
            assert where.file == "t.yaml"
        assert isinstance(body, YMap)
        for path in expected:
            container = walk(body, path[:-1])
            assert isinstance(container, (YMap, YList))


# ---------------------------------------------------------------------------
# 2. Planner: apply(D1); apply(D2) == D2
# ---------------------------------------------------------------------------

CUSTOMER_NUMBER = "0100200"  # leading zero, written plain
ADMIN_EMAIL = "admin@acme.example"

name_text = st.text(alphabet=string.ascii_letters + string.digits + " äöüÄÖÜß.-'&()",
                    min_size=1, max_size=30)
emails = st.builds(lambda local, domain: f"{local}@{domain}.example",
                   st.from_regex(r"[a-z][a-z0-9._+-]{0,10}", fullmatch=True),
                   st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True))
area_codes = st.from_regex(r"0[1-9][0-9]{1,4}", fullmatch=True)
pins = st.one_of(st.none(), st.just("0000"), st.from_regex(r"[0-9]{4,8}", fullmatch=True))
# Distinct characters from a scrambled alphabet: even the shrunk example is strong.
PASSWORD_ALPHABET = "Zq8!mR2#kT5_wE7%bN4?xJ9=cV3+hL6-uP1*dG0sYfAaWgBiCjDlFnHoIpKrMtOvQySz"
strong_passwords = st.builds(
    lambda chars, size: "".join(chars[:size]),
    st.permutations(PASSWORD_ALPHABET), st.integers(12, 24),
).filter(lambda p: password_problem(p) is None)


@dataclass(frozen=True)
class Ext:
    number: str  # digits of the dial-plan length, or "auto"
    name: str
    display_name: str | None = None
    email: str | None = None
    area_code: str | None = None
    product: str | None = None
    addons: tuple[str, ...] = ()
    start_date: datetime.date | None = None
    reference: str | None = None
    pin: str | None = None
    pin_in_file: bool = False
    style: str = "double"  # how digit strings (number, pin, area code) are quoted

    def expected_attrs(self, tenant: str, number: str) -> dict:
        return {
            "tenant": tenant, "number": number, "auto": self.number == "auto",
            "name": self.name, "display_name": self.display_name, "email": self.email,
            "area_code": self.area_code, "product": self.product, "addons": list(self.addons),
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "reference": self.reference, "did": None, "key": None,
        }


@dataclass(frozen=True)
class UserSpec:
    email: str
    name: str
    role: str = "user"
    password: str | None = None
    password_in_file: bool = False


@dataclass(frozen=True)
class EnvSpec:
    dial_plan: int
    account_name: str
    contact: str | None
    parallel_calls: int
    admin_password: str
    password_in_file: bool
    users: tuple[UserSpec, ...] = ()
    extensions: tuple[Ext, ...] = ()
    tenant: str = "acme"

    @property
    def all_users(self) -> tuple[UserSpec, ...]:
        admin = UserSpec(ADMIN_EMAIL, "IT Admin", "admin", self.admin_password,
                         self.password_in_file)
        return (admin, *self.users)


CATALOG = builtin_catalog()


def number_text(value: int, dial_plan: int) -> str:
    return str(value % 10 ** dial_plan).zfill(dial_plan)


@st.composite
def extension_fields(draw, number: str, name: str) -> Ext:
    """An extension with random valid optional fields."""
    maybe = lambda strategy: draw(st.one_of(st.none(), strategy))  # noqa: E731
    return Ext(
        number=number, name=name,
        display_name=maybe(name_text), email=maybe(emails), area_code=maybe(area_codes),
        product=(product := maybe(st.sampled_from(list(CATALOG.products)))),
        addons=tuple(draw(st.lists(st.sampled_from(sorted(
            CATALOG.products[product] if product else CATALOG.addons)), unique=True, max_size=3))),
        start_date=maybe(st.dates(datetime.date(2020, 1, 1), datetime.date(2025, 12, 31))),
        reference=maybe(st.from_regex(r"PO-[0-9]{1,6}", fullmatch=True)),
        pin=draw(pins), pin_in_file=draw(st.booleans()), style=draw(st.sampled_from(QUOTED)),
    )


@st.composite
def new_extensions(draw, dial_plan: int, used_numbers: set[str], used_auto_names: set[str],
                   max_size: int) -> list[Ext]:
    """Extensions whose numbers and `auto` names do not clash with the ones given."""
    result = []
    for _ in range(draw(st.integers(0, max_size))):
        if draw(st.integers(0, 3)) == 0:
            name = draw(name_text)
            while name in used_auto_names:
                name += "+"
            used_auto_names.add(name)
            number = "auto"
        else:
            value = draw(st.integers(0, 10 ** dial_plan - 1))
            while number_text(value, dial_plan) in used_numbers:
                value += 1
            number = number_text(value, dial_plan)
            used_numbers.add(number)
            name = draw(name_text)
        result.append(draw(extension_fields(number, name)))
    return result


@st.composite
def extra_users(draw, taken: set[str], max_size: int = 2) -> list[UserSpec]:
    users = []
    for _ in range(draw(st.integers(0, max_size))):
        email = draw(emails)
        while email in taken:
            email = "x" + email
        taken.add(email)
        role = draw(st.sampled_from(["user", "admin"]))
        # a new admin needs a password (catalog-and-cost rules); a user may leave it out
        password = draw(strong_passwords if role == "admin" else st.one_of(st.none(),
                                                                          strong_passwords))
        users.append(UserSpec(email, draw(name_text), role, password, draw(st.booleans())))
    return users


@st.composite
def environments(draw, dial_plan: int | None = None, max_extensions: int = 30) -> EnvSpec:
    dial_plan = dial_plan or draw(st.integers(2, 5))
    used_numbers: set[str] = set()
    used_auto_names: set[str] = set()
    return EnvSpec(
        dial_plan=dial_plan,
        account_name=draw(name_text),
        contact=draw(st.one_of(st.none(), name_text)),
        parallel_calls=draw(st.integers(4, 10_000)),  # up to 40 extensions, 10 per call
        admin_password=draw(strong_passwords),
        password_in_file=draw(st.booleans()),
        users=tuple(draw(extra_users({ADMIN_EMAIL}))),
        extensions=tuple(draw(new_extensions(dial_plan, used_numbers, used_auto_names,
                                             max_extensions))),
    )


@st.composite
def allowed_changes(draw, d1: EnvSpec) -> EnvSpec:
    """D2: D1 with changes the platform allows (never dial_plan/type/master/account/package)."""
    kept: list[Ext] = []
    for ext in d1.extensions:
        what = draw(st.sampled_from(["keep", "keep", "drop", "modify", "rename", "pin"]))
        if what == "drop":
            continue
        if what == "modify":
            ext = draw(extension_fields(ext.number, ext.name))
        elif what == "rename":
            ext = replace(ext, display_name=draw(st.one_of(st.none(), name_text)))
        elif what == "pin":
            ext = replace(ext, pin=draw(pins), pin_in_file=draw(st.booleans()))
        kept.append(ext)
    used_numbers = {e.number for e in kept if e.number != "auto"}
    used_auto_names = {e.name for e in kept if e.number == "auto"}
    added = draw(new_extensions(d1.dial_plan, used_numbers, used_auto_names, 10))
    extensions = kept + added
    extensions = draw(st.permutations(extensions)) if draw(st.booleans()) else extensions
    users = list(d1.users)
    users += draw(extra_users({ADMIN_EMAIL, *(u.email for u in users)}, 2))
    return replace(
        d1,
        account_name=draw(st.one_of(st.just(d1.account_name), name_text)),
        contact=draw(st.one_of(st.just(d1.contact), st.none(), name_text)),
        parallel_calls=draw(st.one_of(st.just(d1.parallel_calls), st.integers(4, 10_000))),
        admin_password=draw(st.one_of(st.just(d1.admin_password), strong_passwords)),
        users=tuple(users),
        extensions=tuple(extensions),
    )


def q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_environment(spec: EnvSpec, env: Path) -> Path:
    """Write `spec` as manifests (and secret files) into a fresh directory `env`."""
    if env.exists():
        shutil.rmtree(env)
    (env / "secrets").mkdir(parents=True)
    account = [
        "kind: Account",
        f"customer_number: '{CUSTOMER_NUMBER}'",  # quoted: keeps its leading zero
        f"name: {q(spec.account_name)}",
    ]
    if spec.contact is not None:
        account.append(f"contact: {q(spec.contact)}")
    account += [
        "---",
        "kind: BasePackage",
        "id: cf-acme",
        f"account: '{CUSTOMER_NUMBER}'",
        f"parallel_calls: {spec.parallel_calls}",
        "flatrates: [national]",
    ]
    (env / "account.yaml").write_text("\n".join(account) + "\n", encoding="utf-8")
    (env / "site.yaml").write_text(
        "kind: Site\nid: acme-hq\nbase_package: cf-acme\nusage: cloud_pbx\n"
        "number_blocks:\n  - {prefix: \"+49301234567\", from: \"0\", to: \"99\"}\n", encoding="utf-8")
    tenant = [
        "kind: Tenant",
        f"name: {spec.tenant}",
        f"account: \"{CUSTOMER_NUMBER}\"",
        "type: STANDARD",
        f"dial_plan: {spec.dial_plan}",
        "sites: [acme-hq]",
        'main_number: "+49301234567-0"',
        "users:",
    ]
    for index, user in enumerate(spec.all_users):
        tenant += [f"  - email: {q(user.email)}", f"    name: {q(user.name)}",
                   f"    role: {user.role}"]
        if user.password is not None:
            if user.password_in_file:
                (env / "secrets" / f"user-{index}.txt").write_text(user.password + "\n")
                tenant.append(f"    password: {{file: secrets/user-{index}.txt}}")
            else:
                tenant.append(f"    password: {q(user.password)}")
    tenant.append("extensions:" if spec.extensions else "extensions: []")
    for index, ext in enumerate(spec.extensions):
        digits = lambda value: write_scalar(value, ext.style)  # noqa: E731
        tenant.append(f"  - number: {ext.number if ext.number == 'auto' else digits(ext.number)}")
        tenant.append(f"    name: {q(ext.name)}")
        for name in ("display_name", "email", "reference"):
            if getattr(ext, name) is not None:
                tenant.append(f"    {name}: {q(getattr(ext, name))}")
        if ext.area_code is not None:
            tenant.append(f"    area_code: {digits(ext.area_code)}")
        if ext.product is not None:
            tenant.append(f"    product: {ext.product}")
        if ext.addons:
            tenant.append(f"    addons: [{', '.join(ext.addons)}]")
        if ext.start_date is not None:
            tenant.append(f"    start_date: {ext.start_date.isoformat()}")
        if ext.pin is not None:
            if ext.pin_in_file:
                (env / "secrets" / f"pin-{index}.txt").write_text(ext.pin + "\n")
                tenant.append(f"    pin: {{file: secrets/pin-{index}.txt}}")
            else:
                tenant.append(f"    pin: {digits(ext.pin)}")
    (env / "tenant.yaml").write_text("\n".join(tenant) + "\n", encoding="utf-8")
    return env


@contextmanager
def fresh_store():
    directory = Path(tempfile.mkdtemp(prefix="reconciler-prop-"))
    store = open_store(f"sqlite:///{directory / 'state.db'}", create=True)
    try:
        yield store, directory
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def describe(plan) -> list:
    return ([str(e) for e in plan.errors] + [dataclasses.astuple(f) for f in plan.forbidden]
            + plan.refusals
            + [(a.action, a.kind, a.id, {k: (c.before, c.after) for k, c in a.changes.items()})
               for a in plan.actions])


def plan_and_apply(env: Path, store) -> None:
    """plan → apply → plan again shows no change."""
    plan = build_plan(env, store, OPTIONS)
    assert not plan.rejected, describe(plan)
    with store.lock(0):
        result = apply_plan(plan, store)
    assert result.ok, result.error
    again = build_plan(env, store, OPTIONS)
    assert not again.rejected, describe(again)
    assert again.actions == [], describe(again)


def extension_numbers(store, tenant: str = "acme") -> dict[str, str]:
    """name → number of the applied `auto` extensions."""
    return {r.attrs["name"]: r.attrs["number"] for r in store.snapshot().resources.values()
            if r.kind == "extension" and r.attrs["tenant"] == tenant and r.attrs["auto"]}


def assert_state_is(spec: EnvSpec, env: Path, store) -> None:
    """The state holds exactly the resources `spec` declares, with their attributes."""
    snapshot = store.snapshot()
    state = snapshot.resources
    # Against the planner's own view of the environment: same keys, attrs, scope, secrets.
    manifests, diagnostics = validate_environment(env, need_secrets=True)
    assert not diagnostics.errors, [str(d) for d in diagnostics.errors]
    desired = desired_resources(manifests, existing_extensions(snapshot))
    assert set(state) == set(desired)
    for key, resource in desired.items():
        assert state[key].attrs == resource.attrs, key
        assert state[key].scope == resource.scope == CUSTOMER_NUMBER, key
        for name, secret in resource.secrets.items():
            assert recorded(state[key].secrets.get(name), secret), (key, name)

    # Against the spec itself, independently of the planner.
    account = state[("account", CUSTOMER_NUMBER)].attrs
    assert (account["name"], account["contact"]) == (spec.account_name, spec.contact)
    assert state[("base_package", "cf-acme")].attrs["parallel_calls"] == spec.parallel_calls
    tenant = state[("tenant", spec.tenant)].attrs
    assert (tenant["dial_plan"], tenant["account"]) == (spec.dial_plan, CUSTOMER_NUMBER)
    users = {r.attrs["email"]: r for r in state.values() if r.kind == "user"}
    assert {e: (u.attrs["name"], u.attrs["role"]) for e, u in users.items()} == {
        u.email: (u.name, u.role) for u in spec.all_users}
    for user in spec.all_users:
        if user.password is not None:
            assert literal_recorded(users[user.email].secrets.get("password"), user.password), \
                user.email
    extensions = [r for r in state.values() if r.kind == "extension"]
    assert len(extensions) == len(spec.extensions)
    by_number = {r.attrs["number"]: r for r in extensions}
    explicit = {e.number for e in spec.extensions if e.number != "auto"}
    for ext in spec.extensions:
        if ext.number == "auto":
            found = [r for r in extensions if r.attrs["auto"] and r.attrs["name"] == ext.name]
            assert len(found) == 1, ext.name
            number = found[0].attrs["number"]
            assert len(number) == spec.dial_plan and number.isdigit(), number
            assert number not in explicit
        else:
            number = ext.number
        record = by_number[number]
        assert record.id == f"{spec.tenant}/{number}"
        assert record.attrs == ext.expected_attrs(spec.tenant, number)
        if ext.pin is not None:
            assert literal_recorded(record.secrets.get("pin"), ext.pin), number


def recorded(record: dict | None, secret) -> bool:
    """The state's record of a secret names its reference and holds nothing of its value."""
    if secret.is_initial_pin:
        return record == {"ref": "initial"}
    return record == {"ref": secret.ref, "version": secret.version}  # no key: write-only


def literal_recorded(record: dict | None, value: str) -> bool:
    """A record of the secret `value` that holds nothing of it (checked without secrets.py)."""
    if not isinstance(record, dict):
        return False
    if record == {"ref": "initial"}:  # the initial PIN, written literally
        return value == "0000"
    return set(record) == {"ref", "version"} and (
        record["ref"] == "literal" or record["ref"].startswith("file:"))


@st.composite
def environment_pairs(draw):
    d1 = draw(environments())
    return d1, draw(allowed_changes(d1))


@pytest.mark.slow
@PLANNER_SETTINGS
@given(environment_pairs())
def test_apply_d1_then_d2_converges_on_d2(pair):
    d1, d2 = pair
    with fresh_store() as (store, directory):
        env1 = write_environment(d1, directory / "d1" / "env")
        plan_and_apply(env1, store)
        assert_state_is(d1, env1, store)
        autos_after_d1 = extension_numbers(store)

        d2 = without_applied_auto_numbers(d2, autos_after_d1)
        env2 = write_environment(d2, directory / "d2" / "env")
        plan_and_apply(env2, store)
        assert_state_is(d2, env2, store)

        # An `auto` extension that stays keeps its number.
        autos_after_d2 = extension_numbers(store)
        for name, number in autos_after_d2.items():
            if name in autos_after_d1:
                assert number == autos_after_d1[name], name


def without_applied_auto_numbers(spec: EnvSpec, applied: dict[str, str]) -> EnvSpec:
    """`spec` without explicit extensions on the number of a declared, applied auto
    extension: an applied number never changes, so those are an error (test_stable_numbers)."""
    staying = {applied[e.name] for e in spec.extensions if e.number == "auto" and e.name in applied}
    return replace(spec, extensions=tuple(e for e in spec.extensions
                                          if e.number == "auto" or e.number not in staying))


# ---------------------------------------------------------------------------
# 3. `auto` numbering
# ---------------------------------------------------------------------------


def action_view(plan) -> list:
    """Everything an action says, including the secret records apply would store."""
    return [(a.action, a.kind, a.id, a.scope, a.source, a.rank, a.attrs,
             {k: (c.before, c.after, c.drift, c.applied) for k, c in a.changes.items()},
             a.secret_records) for a in plan.actions]


@PLANNER_SETTINGS
@given(environments())
def test_auto_numbering_is_deterministic_and_takes_the_lowest_free_numbers(spec):
    with fresh_store() as (store, directory):
        env = write_environment(spec, directory / "env")
        first = build_plan(env, store, OPTIONS)
        second = build_plan(env, store, OPTIONS)
        assert not first.rejected, describe(first)
        assert action_view(first) == action_view(second)

        # The `auto` extensions take the lowest free numbers of the dial-plan length.
        explicit = {e.number for e in spec.extensions if e.number != "auto"}
        autos = [e for e in spec.extensions if e.number == "auto"]
        free = (str(n) for n in range(10 ** (spec.dial_plan - 1), 10 ** spec.dial_plan)
                if str(n) not in explicit)
        lowest = [next(free) for _ in autos]
        created = {a.attrs["name"]: a.attrs["number"] for a in first.actions
                   if a.kind == "extension" and a.attrs["auto"]}
        assert sorted(created.values()) == lowest
        assert [created[e.name] for e in autos] == lowest  # in manifest order


@PLANNER_SETTINGS
@given(st.data())
def test_applied_auto_extension_keeps_its_number_when_explicit_ones_are_added(data):
    dial_plan = data.draw(st.integers(2, 5), label="dial_plan")
    base = data.draw(environments(dial_plan=dial_plan, max_extensions=8), label="base")
    lowest = 10 ** (dial_plan - 1)
    # Fillers hold the lowest numbers, so the autos are numbered above them.
    filler_count = data.draw(st.integers(1, 8), label="fillers")
    filler_numbers = [str(lowest + i) for i in range(filler_count)]
    others = [e for e in base.extensions if e.number not in filler_numbers]
    autos = [Ext("auto", f"Auto {i}", pin="0000") for i in
             range(data.draw(st.integers(1, 4), label="autos"))]
    autos = [a for a in autos if a.name not in {e.name for e in others if e.number == "auto"}]
    fillers = [Ext(n, f"Filler {n}") for n in filler_numbers]
    d1 = replace(base, extensions=tuple(fillers + others + autos))

    with fresh_store() as (store, directory):
        plan_and_apply(write_environment(d1, directory / "d1" / "env"), store)
        numbers = extension_numbers(store)
        assert all(int(numbers[a.name]) > int(max(filler_numbers)) for a in autos)

        # Remove the fillers: the autos stay where they are.
        d2 = replace(d1, extensions=tuple(others + autos))
        plan_and_apply(write_environment(d2, directory / "d2" / "env"), store)
        assert extension_numbers(store) == numbers

        # Add explicit extensions on the freed lower numbers (and maybe elsewhere).
        taken = {e.number for e in others if e.number != "auto"} | set(numbers.values())
        lower = [n for n in filler_numbers if n not in taken]
        assume(lower)
        chosen = data.draw(st.lists(st.sampled_from(lower), min_size=1, unique=True), label="new")
        used_auto_names = {e.name for e in d2.extensions if e.number == "auto"}
        more = data.draw(new_extensions(dial_plan, taken | set(chosen), used_auto_names, 3)
                         .map(lambda exts: [e for e in exts if e.number != "auto"]), label="more")
        newcomers = [Ext(n, f"Newcomer {n}", display_name="New") for n in chosen] + more
        d3 = replace(d2, extensions=tuple(newcomers + list(d2.extensions)))
        plan_and_apply(write_environment(d3, directory / "d3" / "env"), store)
        assert extension_numbers(store) == numbers
        assert_state_is(d3, directory / "d3" / "env", store)


# ---------------------------------------------------------------------------
# Known bugs outside the files this suite may fix (plan.py / rules.py).
# ---------------------------------------------------------------------------



@pytest.mark.parametrize(("dial_plan", "copies", "pins"), [(2, 2, True), (4, 3, False)])
def test_auto_extensions_with_the_same_name_are_refused_or_converge(dial_plan, copies, pins):
    spec = EnvSpec(dial_plan, "Acme", None, 5, "Zq8!mR2#kT5_wE7%", False, (),
                   tuple(Ext("auto", "Zentrale", pin="0000" if pins else None)
                         for _ in range(copies)))
    with fresh_store() as (store, directory):
        env = write_environment(spec, directory / "env")
        plan = build_plan(env, store, OPTIONS)
        if plan.rejected:  # refusing the ambiguity is a fine answer
            return
        assert len([a for a in plan.actions if a.kind == "extension"]) == copies
        plan_and_apply(env, store)
        assert_state_is(spec, env, store)




def test_auto_extension_never_gets_a_number_longer_than_the_dial_plan():
    full = tuple(Ext(str(n), f"Platz {n}") for n in range(10, 100))
    spec = EnvSpec(2, "Acme", None, 5, "Zq8!mR2#kT5_wE7%", False, (),
                   full + (Ext("auto", "Einer zu viel"),))
    with fresh_store() as (store, directory):
        with pytest.raises(ReconcilerError, match="no free 2-digit number"):
            build_plan(write_environment(spec, directory / "env"), store, OPTIONS)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(environments(max_extensions=5), st.integers(2, 5), st.integers(1, 3))
def test_changing_the_dial_plan_is_always_rejected(d1, new_dial_plan, autos):
    assume(new_dial_plan != d1.dial_plan)
    # D2 keeps only `auto` extensions, so it is valid under the new dial plan.
    d2 = replace(d1, dial_plan=new_dial_plan,
                 extensions=tuple(Ext("auto", f"Auto {i}") for i in range(autos)))
    with fresh_store() as (store, directory):
        plan_and_apply(write_environment(d1, directory / "d1" / "env"), store)
        serial = store.snapshot().serial
        plan = build_plan(write_environment(d2, directory / "d2" / "env"), store, OPTIONS)
        assert plan.rejected
        assert [(f.kind, f.field, f.before, f.after) for f in plan.forbidden] == [
            ("tenant", "dial_plan", d1.dial_plan, new_dial_plan)]
        assert store.snapshot().serial == serial
