"""Cost: what the platform objects of a plan cost a month, before and after it.

The price list (`kind: PriceList`) prices products and add-ons per extension,
base package products, parallel calls, sites, IP lines and number blocks. The
cost is computed from the state in scope (before) and from the state as the
plan leaves it (after), per customer account and per invoice: one invoice per
base package (seed 001), one collective invoice for a main account and its
sub-accounts with `collective_invoice` (seed 003). Extensions are counted per
tenant and product, so 100,000 of them cost a few dictionary updates each.
Amounts are `Decimal`, never floats.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal("0.00")
CENT = Decimal("0.01")

Attrs = Mapping[str, Any]
Objects = Mapping[tuple[str, str], Attrs]  # (kind, id) → attributes, as resources hold them


@dataclass(frozen=True, slots=True)
class Amounts:
    before: Decimal = ZERO
    after: Decimal = ZERO

    @property
    def delta(self) -> Decimal:
        return self.after - self.before

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.before + other.before, self.after + other.after)


@dataclass(frozen=True, slots=True)
class Invoice:
    """One invoice of the platform: a base package's, or a collective one."""

    label: str  # "base package cf-berlin", "collective 1111111", "account 1298374, base package …"
    accounts: tuple[str, ...]  # the customer numbers billed on it
    amounts: Amounts


@dataclass(frozen=True)
class CostReport:
    price_list: str
    currency: str
    total: Amounts
    accounts: dict[str, Amounts] = field(default_factory=dict)
    invoices: list[Invoice] = field(default_factory=list)


@dataclass(frozen=True)
class Prices:
    """A price list as Decimals; a missing price is zero."""

    name: str
    currency: str
    products: dict[str, Decimal]
    addons: dict[str, Decimal]
    base_package_products: dict[str, Decimal]
    parallel_call: Decimal
    site: Decimal
    ip_line: Decimal
    number_block: Decimal

    @classmethod
    def from_model(cls, model) -> Prices:
        def amount(value: str | None) -> Decimal:
            return Decimal(value) if value is not None else ZERO

        return cls(model.name, model.currency,
                   {k: Decimal(v) for k, v in model.products.items()},
                   {k: Decimal(v) for k, v in model.addons.items()},
                   {k: Decimal(v) for k, v in model.base_package_products.items()},
                   amount(model.parallel_call), amount(model.site), amount(model.ip_line),
                   amount(model.number_block))


def cost_report(prices: Prices, before: Objects, after: Objects,
                unchanged_lines: Counter | None = None) -> CostReport:
    """The monthly cost of `before` and `after`, per account, per invoice and in total.
    `unchanged_lines`: (tenant, product, add-ons) → extensions in both that are not in
    `before` and `after` (sealed by the plan memo)."""
    charges_before = _charges(prices, before, unchanged_lines)
    charges_after = _charges(prices, after, unchanged_lines)
    invoice_of = _invoice_labels({**_of_kind(before, "account"), **_of_kind(after, "account")},
                                 {**_of_kind(before, "base_package"),
                                  **_of_kind(after, "base_package")})
    per_account: dict[str, Amounts] = {}
    per_invoice: dict[str, Amounts] = {}
    billed: dict[str, set[str]] = {}
    for (account, package), amount in charges_before.items():
        _add(per_account, account, Amounts(before=amount))
        label = invoice_of(account, package)
        _add(per_invoice, label, Amounts(before=amount))
        billed.setdefault(label, set()).add(account)
    for (account, package), amount in charges_after.items():
        _add(per_account, account, Amounts(after=amount))
        label = invoice_of(account, package)
        _add(per_invoice, label, Amounts(after=amount))
        billed.setdefault(label, set()).add(account)
    total = sum(per_account.values(), Amounts())
    invoices = [Invoice(label, tuple(sorted(billed[label])), per_invoice[label])
                for label in sorted(per_invoice)]
    return CostReport(prices.name, prices.currency, total,
                      dict(sorted(per_account.items())), invoices)


def _add(table: dict[str, Amounts], key: str, amounts: Amounts) -> None:
    table[key] = table.get(key, Amounts()) + amounts


def order_line(attrs: Attrs) -> tuple[str | None, tuple[str, ...]]:
    """What an extension is charged as: (product, add-ons)."""
    return attrs.get("product"), tuple(attrs.get("addons") or ())


def _charges(prices: Prices, objects: Objects, unchanged_lines: Counter | None
             ) -> dict[tuple[str, str], Decimal]:
    """(customer number, base package id or '') → the monthly amount charged there."""
    packages: dict[str, Attrs] = {}
    sites: dict[str, Attrs] = {}
    tenants: dict[str, Attrs] = {}
    order_lines: Counter = Counter(unchanged_lines)  # (tenant, product, add-ons) → extensions
    for (kind, ident), attrs in objects.items():
        if kind == "extension":
            order_lines[(attrs["tenant"], *order_line(attrs))] += 1
        elif kind == "base_package":
            packages[ident] = attrs
        elif kind == "site":
            sites[ident] = attrs
        elif kind == "tenant":
            tenants[ident] = attrs
    charges: Counter = Counter()
    for ident, attrs in packages.items():
        charges[(attrs["account"], ident)] += (
            prices.base_package_products.get(attrs.get("product"), ZERO)
            + prices.parallel_call * int(attrs.get("parallel_calls") or 0))
    for attrs in sites.values():
        package_id = attrs.get("base_package")
        account = packages.get(package_id, {}).get("account", "")
        charges[(account, package_id)] += (
            prices.site + prices.ip_line * int(attrs.get("ip_lines") or 0)
            + prices.number_block * len(attrs.get("number_blocks") or ()))
    for (tenant, product, addons), count in order_lines.items():
        attrs = tenants.get(tenant, {})
        package_id = next((sites[s]["base_package"] for s in attrs.get("sites") or ()
                           if s in sites), "")
        unit = prices.products.get(product, ZERO) + sum(
            (prices.addons.get(addon, ZERO) for addon in addons), ZERO)
        charges[(attrs.get("account", ""), package_id)] += unit * count
    return {key: amount.quantize(CENT) for key, amount in charges.items()}


def _of_kind(objects: Objects, wanted: str) -> dict[str, Attrs]:
    return {ident: attrs for (kind, ident), attrs in objects.items() if kind == wanted}


def _invoice_labels(accounts: Mapping[str, Attrs], packages: Mapping[str, Attrs]):
    """A function (account, base package) → the invoice its charges appear on.

    A sub-account's extensions on a site of its main account's package are its
    own: they appear on an invoice of that sub-account, unless it collects.
    """
    collective = {number: attrs["parent"] for number, attrs in accounts.items()
                  if attrs.get("parent") and attrs.get("collective_invoice")}
    mains_collecting = set(collective.values())

    def label(account: str, package: str) -> str:
        main = collective.get(account, account if account in mains_collecting else None)
        if main is not None:
            return f"collective {main}"
        owner = packages.get(package, {}).get("account")
        if package and owner not in (None, account):
            return f"account {account}, base package {package}"
        if package:
            return f"base package {package}"
        return f"account {account}"  # e.g. a tenant on no site: billed to its account

    return label


def money(amount: Decimal) -> str:
    """An amount as plans show it: two decimals, like '12.50'."""
    return str(amount.quantize(CENT))


def signed(amount: Decimal) -> str:
    return ("+" if amount > 0 else "") + money(amount)


def report_to_dict(report: CostReport) -> dict[str, Any]:
    def amounts(a: Amounts) -> dict[str, str]:
        return {"before": money(a.before), "after": money(a.after), "delta": money(a.delta)}

    return {
        "price_list": report.price_list,
        "currency": report.currency,
        "total": amounts(report.total),
        "accounts": {number: amounts(a) for number, a in report.accounts.items()},
        "invoices": [{"invoice": i.label, "accounts": list(i.accounts), **amounts(i.amounts)}
                     for i in report.invoices],
    }


def report_from_dict(data: dict[str, Any]) -> CostReport:
    def amounts(item: dict) -> Amounts:
        return Amounts(Decimal(item["before"]), Decimal(item["after"]))

    return CostReport(
        data.get("price_list", ""), data["currency"], amounts(data["total"]),
        {number: amounts(a) for number, a in data["accounts"].items()},
        [Invoice(i["invoice"], tuple(i["accounts"]), amounts(i)) for i in data.get("invoices", [])])
