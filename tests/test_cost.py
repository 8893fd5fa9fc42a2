"""Cost: price lists, the monthly cost per account and invoice, in every plan format."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from helpers import Env, applied_templates, make_env  # noqa: F401 - fixtures
from reconciler.cost import Prices, cost_report, money
from reconciler.model import PriceList

MWS = "main-with-subaccounts"
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())

PRICES = Prices.from_model(PriceList.model_validate({
    "kind": "PriceList", "name": "test", "currency": "EUR",
    "products": {"light_user": "4.90", "standard_user": "9.90"},
    "addons": {"voicemail": "1.00", "call_recording": "3.50"},
    "base_package_products": {"CompanyFlex": "29.95"},
    "parallel_call": "2.50", "site": "5.00", "ip_line": "7.50", "number_block": "3.00"}))


def platform(extensions: int = 2, collective: bool = True) -> dict:
    """A main account with a package and site, a sub-account whose tenant uses that site."""
    objects = {
        ("account", "1111111"): {"parent": None, "collective_invoice": False},
        ("account", "2222222"): {"parent": "1111111", "collective_invoice": collective},
        ("base_package", "cf-main"): {"account": "1111111", "product": "CompanyFlex",
                                      "parallel_calls": 4},
        ("site", "hq"): {"base_package": "cf-main", "ip_lines": 2,
                         "number_blocks": [{"prefix": "+4930", "from": "0", "to": "9"}]},
        ("tenant", "sub"): {"account": "2222222", "sites": ["hq"]},
    }
    for n in range(extensions):
        objects[("extension", f"sub/{100 + n}")] = {
            "tenant": "sub", "product": "standard_user", "addons": ["voicemail"]}
    return objects


def test_amounts_per_account_and_invoice_are_exact():
    report = cost_report(PRICES, {}, platform(extensions=3))
    # package 29.95 + 4 calls × 2.50 + site 5.00 + 2 IP lines × 7.50 + 1 block × 3.00 = 62.95
    assert money(report.accounts["1111111"].after) == "62.95"
    assert money(report.accounts["2222222"].after) == "32.70"  # 3 × (9.90 + 1.00)
    assert money(report.total.after) == "95.65"
    assert [(i.label, i.accounts) for i in report.invoices] == [
        ("collective 1111111", ("1111111", "2222222"))]


def test_a_sub_account_without_collective_invoice_gets_its_own():
    report = cost_report(PRICES, {}, platform(extensions=1, collective=False))
    assert {i.label: money(i.amounts.after) for i in report.invoices} == {
        "base package cf-main": "62.95", "account 2222222, base package cf-main": "10.90"}


def test_before_after_and_delta():
    before = platform(extensions=2)
    after = platform(extensions=5)
    after[("base_package", "cf-main")] = {**after[("base_package", "cf-main")], "parallel_calls": 6}
    report = cost_report(PRICES, before, after)
    assert money(report.total.delta) == "37.70"  # 3 × 10.90 + 2 × 2.50
    assert money(report.accounts["1111111"].delta) == "5.00"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["light_user", "standard_user", "premium_user", None]),
                          st.lists(st.sampled_from(["voicemail", "call_recording"]), unique=True)),
                max_size=40),
       st.integers(1, 50), st.booleans())
def test_totals_add_up(extensions, calls, collective):
    objects = platform(extensions=0, collective=collective)
    objects[("base_package", "cf-main")]["parallel_calls"] = calls
    for n, (product, addons) in enumerate(extensions):
        objects[("extension", f"sub/{100 + n}")] = {"tenant": "sub", "product": product,
                                                   "addons": addons}
    report = cost_report(PRICES, platform(extensions=1), objects)
    for side in ("before", "after"):
        total = getattr(report.total, side)
        assert total == sum((getattr(a, side) for a in report.accounts.values()), Decimal(0))
        assert total == sum((getattr(i.amounts, side) for i in report.invoices), Decimal(0))
        assert total == total.quantize(Decimal("0.01"))
    expected = sum((PRICES.products.get(p, Decimal(0))
                    + sum((PRICES.addons[a] for a in addons), Decimal(0))
                    for p, addons in extensions), Decimal(0))
    assert report.accounts["2222222"].after == expected


def test_100k_extensions_cost_in_linear_time():
    small, large = platform(extensions=10_000), platform(extensions=100_000)
    started = time.perf_counter()
    cost_report(PRICES, small, small)
    ten_k = time.perf_counter() - started
    started = time.perf_counter()
    report = cost_report(PRICES, large, large)
    hundred_k = time.perf_counter() - started
    assert money(report.accounts["2222222"].after) == "1090000.00"
    assert hundred_k < max(2.0, 20 * ten_k), (ten_k, hundred_k)


def test_every_plan_format_shows_the_cost(make_env):
    env: Env = make_env(MWS, applied=True)
    env.edit("packages.yaml", "parallel_calls: 8", "parallel_calls: 10")
    data = env.plan_json(expect=(0,))
    jsonschema.validate(data, PLAN_SCHEMA)
    cost = data["cost"]
    assert cost["currency"] == "EUR" and cost["price_list"] == "mustermensch-2026"
    assert cost["total"]["delta"] == "5.00"  # 2 more parallel calls at 2.50
    assert cost["accounts"]["1234567"]["delta"] == "5.00"
    assert cost["accounts"]["1111111"]["delta"] == "0.00"
    total = sum(Decimal(a["after"]) for a in cost["accounts"].values())
    assert money(total) == cost["total"]["after"]
    collective = next(i for i in cost["invoices"] if i["invoice"] == "collective 1111111")
    assert collective["accounts"] == ["1111111", "1234567"]
    text = env.plan().stdout
    assert (f"Monthly cost (EUR, price list mustermensch-2026): {cost['total']['before']} → "
            f"{cost['total']['after']} (+5.00)") in text
    assert "  account 1234567: " in text
    markdown = env.plan("--format", "markdown").stdout
    assert f"| **Total** | {cost['total']['before']} | {cost['total']['after']} | +5.00 |" in markdown


def test_without_a_price_list_there_is_no_cost(make_env):
    env: Env = make_env(MWS)
    env.file("prices.yaml").unlink()
    data = env.plan_json(expect=(0,))
    assert "cost" not in data
    assert "Monthly cost" not in env.plan().stdout
