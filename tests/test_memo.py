"""The plan memo (reconciler/memo.py): a plan with tenants sealed equals a plan from scratch.

1. Property: an environment of customer files (each an Account, BasePackage, Site and a
   Tenant with extensions, DIDs, users linked to extensions; two tenants filling one shared
   package; a price list) is applied, then
   edited at random: extensions renamed, added, dropped, re-priced, given DIDs (their own,
   another tenant's, one outside the blocks, `auto`), PINs from the environment whose
   values change without a file changing, packages too small for their extensions, users
   and main extensions, files added and removed, applies in between (with deletes). After
   each step the plan made with the memo of the steps before equals, in its JSON form, the
   plan made without any memo.
2. The memo seals: after a change to one extension, the other tenants' extensions are not
   read from the state, and the plan says what the full plan says.
3. A memo made against another state revision, or edited, is not used; on both state
   backends the read leaves out exactly the sealed tenants' extensions.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.apply import apply_plan
from reconciler.plan import PlanOptions, build_plan
from reconciler.planfile import dumps, plan_to_dict
from reconciler.state.sql import open_store

KEY = "memo-test-fingerprint-key-0123456789abcdef"
# Each tenant's admin has its own strong password (the rules insist).
SECRETS = {"RECONCILER_SECRET_KEY": KEY,
           **{f"MEMO_ADMIN_{i}": f"Zq{i}#vX8kLm2pRt{i * 7919}"
              for i in (*range(1, 60), *range(900, 910))}}


@dataclass(frozen=True)
class Ext:
    number: str
    name: str
    did: str | None = None
    product: str = "light_user"
    addons: tuple = ("voicemail",)
    pin_from_env: bool = False
    plain_pin: bool = False  # '4711' written in the manifest


@dataclass(frozen=True)
class Customer:
    index: int
    extensions: tuple[Ext, ...]
    parallel_calls: int = 10
    linked: str | None = None  # the extension the second user is linked to
    main_extension: str | None = None
    shared: bool = False  # on a site of the package all shared tenants fill (shared.yaml)

    @property
    def name(self) -> str:
        return f"kunde-{self.index}"

    @property
    def prefix(self) -> str:
        return f"+4940{self.index:03d}000"


@dataclass
class World:
    customers: dict[int, Customer] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)  # env variable → PIN


SHARED = (901, 902)  # tenants in files of their own, on one package (in shared.yaml)


def customer(index: int, count: int = 4) -> Customer:
    """A customer whose first extension has a DID; customer 1's second extension has its
    PIN from the environment (which keeps its tenant from being sealed)."""
    prefix = f"+4940{index:03d}000"
    extensions = [Ext(str(100 + i), f"Platz {i}") for i in range(count)]
    if count > 1:
        extensions[0] = replace(extensions[0], did=f"{prefix}-500")
        extensions[1] = replace(extensions[1], pin_from_env=index == 1)
    return Customer(index, tuple(extensions), shared=index in SHARED)


def initial_world(customers: int, count: int = 4) -> World:
    # The shared tenants fill their package: one more extension is one too many.
    world = World({**{i: customer(i, count) for i in range(1, customers + 1)},
                   **{i: customer(i, 5) for i in SHARED}})
    world.pins = {"MEMO_PIN_1_101": "0000"}
    return world


def write_customer(env: Path, c: Customer) -> None:
    number = "8000000" if c.shared else f"{8000000 + c.index}"
    lines = [] if c.shared else [
        "kind: Account", f'customer_number: "{number}"', f"name: Kunde {c.index}",
        "contact: Kim", "address: Weg 1, Hamburg", "---",
        "kind: BasePackage", f"id: pk-{c.name}", f'account: "{number}"', "product: CompanyFlex",
        f"parallel_calls: {c.parallel_calls}", "---",
        "kind: Site", f"id: site-{c.name}", f"base_package: pk-{c.name}", "usage: cloud_pbx",
        "address: Weg 1, Hamburg", "number_blocks:",
        f'  - {{prefix: "{c.prefix}", from: "0", to: "999"}}', "---"]
    lines += [
        "kind: Tenant", f"name: {c.name}", f'account: "{number}"', "type: STANDARD",
        "version: BASIC", "dial_plan: 3", f"sites: [site-{c.name}]",
        f'main_number: "{c.prefix}-0"',
    ]
    if c.main_extension:
        lines.append(f'main_extension: "{c.main_extension}"')
    lines += ["users:", f"  - email: admin@{c.name}.example", "    name: Admin", "    role: admin",
              f"    password: {{env: MEMO_ADMIN_{c.index}}}"]
    if c.linked:
        lines += [f"  - email: user@{c.name}.example", "    name: Nutzer",
                  f'    extension: "{c.linked}"']
    if c.extensions:
        lines.append("extensions:")
    for ext in c.extensions:
        lines += [f'  - number: "{ext.number}"', f"    name: {ext.name}",
                  f"    product: {ext.product}", f"    addons: [{', '.join(ext.addons)}]"]
        if ext.pin_from_env:
            lines.append(f"    pin: {{env: MEMO_PIN_{c.index}_{ext.number}}}")
        else:
            lines.append('    pin: "4711"' if ext.plain_pin else '    pin: "0000"')
        if ext.did:
            lines.append(f'    did: "{ext.did}"' if ext.did != "auto" else "    did: auto")
    (env / f"{c.name}.yaml").write_text("\n".join(lines) + "\n")


SHARED_PACKAGE = """kind: Account
customer_number: "8000000"
name: Geteilt
contact: Kim
address: Weg 2, Hamburg
---
kind: BasePackage
id: pk-shared
account: "8000000"
product: CompanyFlex
parallel_calls: 1
""" + "".join(f"""---
kind: Site
id: site-kunde-{index}
base_package: pk-shared
usage: cloud_pbx
address: Weg 2, Hamburg
number_blocks:
  - {{prefix: "+4940{index:03d}000", from: "0", to: "999"}}
""" for index in SHARED)
PRICES = """kind: PriceList
name: memo-prices
currency: EUR
products: {light_user: "4.90", standard_user: "9.90"}
addons: {voicemail: "1.00", call_recording: "3.50"}
base_package_products: {CompanyFlex: "29.95"}
"""


def write_world(env: Path, world: World) -> None:
    for path in env.glob("kunde-*.yaml"):
        if int(path.stem.split("-")[1]) not in world.customers:
            path.unlink()
    for c in world.customers.values():
        write_customer(env, c)  # an unchanged customer: the same bytes
    (env / "prices.yaml").write_text(PRICES)
    (env / "shared.yaml").write_text(SHARED_PACKAGE)


# -- edits (each a function of the world and a random pick) ------------------------

def _pick(world: World, pick: int) -> Customer | None:
    if not world.customers:
        return None
    return world.customers[sorted(world.customers)[pick % len(world.customers)]]


def _with_ext(world: World, pick: int, change) -> None:
    c = _pick(world, pick)
    if c is None or not c.extensions:
        return
    index = pick % len(c.extensions)
    exts = list(c.extensions)
    exts[index] = change(exts[index], c)
    world.customers[c.index] = replace(c, extensions=tuple(exts))


def rename(world, pick):
    _with_ext(world, pick, lambda e, c: replace(e, name=f"Umbenannt {pick}"))


def reprice(world, pick):
    _with_ext(world, pick, lambda e, c: replace(
        e, product=("standard_user", "light_user")[pick % 2],
        addons=(("voicemail", "call_recording"), (), ("voicemail",))[pick % 3]))


def own_did(world, pick):
    _with_ext(world, pick, lambda e, c: replace(e, did=f"{c.prefix}-{500 + pick % 400}"))


def auto_did(world, pick):
    _with_ext(world, pick, lambda e, c: replace(e, did="auto"))


def foreign_did(world, pick):  # another tenant's DID or main number: an error, or not
    other = _pick(world, pick + 1)
    if other is None:
        return
    dids = [e.did for e in other.extensions if e.did and e.did != "auto"]
    target = dids[pick % len(dids)] if dids and pick % 2 else f"{other.prefix}-0"
    _with_ext(world, pick, lambda e, c: replace(e, did=target))


def outside_did(world, pick):  # in no block of the tenant's site
    _with_ext(world, pick, lambda e, c: replace(e, did=f"+4989{pick % 1000:03d}000-1"))


def no_did(world, pick):
    _with_ext(world, pick, lambda e, c: replace(e, did=None))


def pin_from_env(world, pick):
    _with_ext(world, pick, lambda e, c: replace(e, pin_from_env=True, plain_pin=False))
    for c in world.customers.values():
        for e in c.extensions:
            world.pins.setdefault(f"MEMO_PIN_{c.index}_{e.number}", "1234")


def new_pin_values(world, pick):  # no file changes: a sealed tenant's PIN would be stale
    for position, name in enumerate(sorted(world.pins)):
        world.pins[name] = "0000" if (pick + position) % 3 == 0 else f"{pick % 9000 + 1000}"


def add_extension(world, pick):
    c = _pick(world, pick)
    if c is None:
        return
    taken = {e.number for e in c.extensions}
    number = next(str(n) for n in range(100 + pick % 50, 1000) if str(n) not in taken)
    world.customers[c.index] = replace(c, extensions=c.extensions + (Ext(number, f"Neu {pick}"),))


def drop_extension(world, pick):
    c = _pick(world, pick)
    if c is None or not c.extensions:
        return
    exts = list(c.extensions)
    del exts[pick % len(exts)]
    world.customers[c.index] = replace(c, extensions=tuple(exts))


def duplicate_number(world, pick):  # an error in one file
    c = _pick(world, pick)
    if c is None or not c.extensions:
        return
    world.customers[c.index] = replace(c, extensions=c.extensions + (c.extensions[0],))


def tiny_package(world, pick):  # capacity counts every tenant's extensions
    c = _pick(world, pick)
    if c is not None:
        world.customers[c.index] = replace(c, parallel_calls=1 + pick % 2)


def link_user(world, pick):
    c = _pick(world, pick)
    if c is not None:
        world.customers[c.index] = replace(c, linked=str(100 + pick % 8))


def main_extension(world, pick):
    c = _pick(world, pick)
    if c is not None:
        world.customers[c.index] = replace(c, main_extension=str(100 + pick % 8))


def add_customer(world, pick):
    index = max((i for i in world.customers if i not in SHARED), default=0) + 1
    world.customers[index] = customer(index, 1 + pick % 5)


def plain_pin(world, pick):  # a plain-text PIN: a warning, and never sealed
    _with_ext(world, pick, lambda e, c: replace(e, pin_from_env=False, plain_pin=True))


def remove_customer(world, pick):
    c = _pick(world, pick)
    if c is not None and not c.shared:
        del world.customers[c.index]


APPLY = "apply"  # not an edit: apply the plan (with deletes), the state changes
EDITS = [rename, reprice, own_did, auto_did, foreign_did, outside_did, no_did, pin_from_env,
         new_pin_values, plain_pin, add_extension, drop_extension, duplicate_number, tiny_package,
         link_user, main_extension, add_customer, remove_customer, APPLY]
STEPS = st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 10_000)),
                 min_size=1, max_size=8)
OPTIONS = PlanOptions(allow_delete=True, force=True)
# Deletes within the limits only (they count every extension in scope), or none.
PLAN_OPTIONS = st.sampled_from([OPTIONS, PlanOptions(allow_delete=True), PlanOptions()])


@contextmanager
def environment_variables(values: dict[str, str]):
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def planned(env: Path, store, cache: Path, memo: bool, options=OPTIONS):
    """(the plan as JSON, the plan) with the cache (and memo) at `cache`."""
    with environment_variables({"RECONCILER_CACHE_DIR": str(cache)}):
        plan = build_plan(env, store, options, memo=memo)
        for write in plan.later:
            write()
    plan.close()
    return dumps(plan_to_dict(plan)), plan


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, customers=st.integers(1, 3), options=PLAN_OPTIONS)
def test_plans_with_the_memo_equal_plans_without_it(steps, customers, options):
    world = initial_world(customers)
    with tempfile.TemporaryDirectory() as work, environment_variables(SECRETS):
        work = Path(work)
        env = work / "env"
        env.mkdir()
        store = open_store(f"sqlite:///{work / 'state.db'}", create=True)
        spy = SpyStore(store)
        try:
            write_world(env, world)
            with environment_variables(world.pins):
                assert _apply(env, store, work)
                planned(env, store, work / "kept", memo=True)  # the memo of the applied state
            for step, (edit, pick) in enumerate(steps):
                if edit != APPLY:
                    edit(world, pick)
                    write_world(env, world)
                with environment_variables(world.pins):
                    if edit == APPLY:
                        _apply(env, store, work)
                    kept, _ = planned(env, spy, work / "kept", memo=True, options=options)
                    fresh, _ = planned(env, store, work / f"empty-{step}", memo=False,
                                       options=options)
                event(f"sealed tenants: {len(spy.sealed)}")
                assert kept == fresh
        finally:
            spy.store.close()


def _apply(env: Path, store, work: Path) -> bool:
    """Apply the plan of `env` unless it is rejected; whether it was applied."""
    with environment_variables({"RECONCILER_CACHE_DIR": str(work / "apply-cache")}):
        plan = build_plan(env, store, OPTIONS)
        if plan.rejected:
            return False
        with store.lock(0):
            assert apply_plan(plan, store).ok
        return True


# -- the memo seals, and only where it may -----------------------------------------

class SpyStore:
    """A store that remembers which tenants' extensions a plan left out of its read."""

    def __init__(self, store):
        self.store, self.sealed = store, None

    def snapshot(self, scope=None, without_extensions_of=frozenset()):
        self.sealed = without_extensions_of
        return self.store.snapshot(scope, without_extensions_of)

    def __getattr__(self, name):
        return getattr(self.store, name)


def _memoized_world(work: Path, monkeypatch, options=OPTIONS, customers: int = 3):
    """An applied world of `customers` × 20 extensions, its state (through a SpyStore), and
    the memo of a plan of it."""
    world = World({i: Customer(i, tuple(Ext(str(100 + n), f"Platz {n}") for n in range(20)))
                   for i in range(1, customers + 1)})
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    env = work / "env"
    env.mkdir()
    write_world(env, world)
    store = open_store(f"sqlite:///{work / 'state.db'}", create=True)
    assert _apply(env, store, work)
    spy = SpyStore(store)
    planned(env, spy, work / "kept", memo=True, options=options)
    assert spy.sealed == frozenset()
    return world, env, spy


def test_one_changed_file_leaves_the_others_sealed(tmp_path, monkeypatch):
    world, env, spy = _memoized_world(tmp_path, monkeypatch)
    rename(world, 0)  # kunde-1
    write_world(env, world)
    kept, plan = planned(env, spy, tmp_path / "kept", memo=True)
    assert spy.sealed == {"kunde-2", "kunde-3"}
    assert [(a.action, a.id) for a in plan.actions] == [("update", "kunde-1/100")]
    assert kept == planned(env, spy.store, tmp_path / "empty", memo=False)[0]
    spy.store.close()


def test_a_change_outside_the_extension_lists_plans_everything(tmp_path, monkeypatch):
    world, env, spy = _memoized_world(tmp_path, monkeypatch)
    tiny_package(world, 1)  # kunde-2's package: the capacity check needs every count
    write_world(env, world)
    kept, plan = planned(env, spy, tmp_path / "kept", memo=True)
    assert spy.sealed == frozenset()
    assert kept == planned(env, spy.store, tmp_path / "empty", memo=False)[0]
    spy.store.close()


def test_a_memo_of_another_state_revision_or_edited_is_not_used(tmp_path, monkeypatch):
    world, env, spy = _memoized_world(tmp_path, monkeypatch)
    drop_extension(world, 0)
    write_world(env, world)
    _apply(env, spy.store, tmp_path)  # a new state revision
    rename(world, 0)
    write_world(env, world)
    planned(env, spy, tmp_path / "kept", memo=True)
    assert spy.sealed == frozenset()  # the memo was of the revision before
    rename(world, 1)
    write_world(env, world)
    (memo,) = (tmp_path / "kept" / "memo").iterdir()
    content = bytearray(memo.read_bytes())
    content[-10] ^= 1
    memo.write_bytes(bytes(content))
    kept, _ = planned(env, spy, tmp_path / "kept", memo=True)
    assert spy.sealed == frozenset()
    assert kept == planned(env, spy.store, tmp_path / "empty", memo=False)[0]
    spy.store.close()


def test_the_delete_limit_counts_the_extensions_of_sealed_tenants(tmp_path, monkeypatch):
    options = PlanOptions(allow_delete=True)
    world, env, spy = _memoized_world(tmp_path, monkeypatch, options)
    for pick in range(3):
        drop_extension(world, pick * 3)  # kunde-1 loses 3 of its 20 (3 of 60 in scope)
    write_world(env, world)
    kept, plan = planned(env, spy, tmp_path / "kept", memo=True, options=options)
    assert spy.sealed == {"kunde-2", "kunde-3"}
    assert not plan.refusals and plan.count("delete") == 3  # 5 %: within the limit
    assert kept == planned(env, spy.store, tmp_path / "empty", memo=False, options=options)[0]
    spy.store.close()


def test_the_state_read_leaves_out_the_extensions_of_sealed_tenants(state_url, tmp_path,
                                                                    monkeypatch):
    """On both backends: tenant names that are prefixes of others, and ids with '/'."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    world = World({i: Customer(i, tuple(Ext(str(100 + n), f"Platz {n}") for n in range(3)))
                   for i in (1, 10, 11)})
    env = tmp_path / "env"
    env.mkdir()
    write_world(env, world)
    store = open_store(state_url, create=True)
    try:
        assert _apply(env, store, tmp_path)
        read = store.snapshot(None, frozenset({"kunde-1", "kunde-11"})).resources
        extensions = sorted(ident for kind, ident in read if kind == "extension")
        assert extensions == ["kunde-10/100", "kunde-10/101", "kunde-10/102"]
        assert ("tenant", "kunde-1") in read and ("user", "kunde-1/admin@kunde-1.example") in read
    finally:
        store.close()


TENANT_NAMES = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,6}\Z")


@given(left_out=st.sets(TENANT_NAMES, max_size=6), ids=st.lists(
    st.tuples(TENANT_NAMES, st.from_regex(r"\A[0-9]{2,5}\Z")), max_size=30))
def test_the_id_ranges_hold_exactly_the_extensions_of_the_other_tenants(left_out, ids):
    """SQLite reads the extensions of all tenants but the sealed ones as index ranges."""
    from reconciler.state.sql import _gaps_between

    gaps = _gaps_between(sorted(left_out))
    for tenant, number in ids:
        ident = f"{tenant}/{number}"
        inside = sum(low <= ident < high for low, high in gaps)
        assert inside == (0 if tenant in left_out else 1), (ident, gaps)
