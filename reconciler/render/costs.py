"""Lines for the cost and the scheduled creates of a plan, in text and markdown.

Only display: the amounts are computed in `reconciler.cost`.
"""

from __future__ import annotations

from ..cost import Amounts, CostReport, money, signed
from ..diff import Action
from .escape import markdown_code, plain


def _change(a: Amounts) -> str:
    return f"{money(a.before)} → {money(a.after)} ({signed(a.delta)})"


def cost_text(cost: CostReport) -> list[str]:
    lines = [f"Monthly cost ({plain(cost.currency)}, price list {plain(cost.price_list)}): "
             f"{_change(cost.total)}"]
    lines += [f"  account {plain(number)}: {_change(a)}" for number, a in cost.accounts.items()]
    lines += [f"  invoice [{plain(i.label)}] for {plain(', '.join(i.accounts))}: {_change(i.amounts)}"
              for i in cost.invoices]
    return lines


def cost_markdown(cost: CostReport) -> list[str]:
    def row(label: str, a: Amounts) -> str:
        return f"| {label} | {money(a.before)} | {money(a.after)} | {signed(a.delta)} |"

    lines = [f"#### :moneybag: Monthly cost ({markdown_code(cost.currency)}, price list "
             f"{markdown_code(cost.price_list)})", "",
             "| | Before | After | Change |", "|---|---:|---:|---:|",
             row("**Total**", cost.total)]
    lines += [row(f"Account {markdown_code(n, table=True)}", a) for n, a in cost.accounts.items()]
    lines += [row(f"Invoice {markdown_code(i.label, table=True)}", i.amounts)
              for i in cost.invoices]
    return lines + [""]


def scheduled_text(scheduled: list[Action]) -> list[str]:
    lines = [f"Scheduled, applied on or after their start date ({len(scheduled)}):"]
    for action in scheduled:
        where = f"  ({plain(action.source)})" if action.source else ""
        lines.append(f"  > {action.kind} {plain(action.id)} from "
                     f"{plain(action.attrs['start_date'])}{where}")
    return lines


def scheduled_markdown(scheduled: list[Action]) -> list[str]:
    return [f"- {markdown_code(f'{a.kind} {a.id}')} from {markdown_code(a.attrs['start_date'])}"
            for a in scheduled]
