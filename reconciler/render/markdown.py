"""Markdown for one pull-request comment over every planned environment.

The whole comment, all environments and error lists included, stays within
GitHub's 65,536-character limit: it is built from blocks that each know
shorter forms of themselves, and the least important blocks are shortened
first (change details before left-alone names before follow-on errors before
errors; root causes are kept). When anything was shortened, a note points to
the full plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Diagnostic
from ..diff import Action
from ..plan import Plan
from ..risk import RISKS, plan_risks
from . import (
    SYMBOLS,
    WRITE_ONLY_NOTE,
    change_text,
    diagnostic_text,
    group_of,
    problems,
    summary_line,
)
from .costs import cost_markdown, scheduled_markdown
from .escape import markdown_code, markdown_fence, markdown_html, markdown_text

COMMENT_LIMIT = 65_536
MARKER = "<!-- reconciler-plan -->"  # finds the sticky comment again
SMALL_PLAN_LINES = 60  # a plan with at most this many change lines is shown unfolded
HEADS = (400, 200, 100, 50, 20)  # items kept, step by step, when a list or section is shortened
RISK_ICONS = {"delete": ":wastebasket:", "admin": ":crown:", "drift-revert": ":leftwards_arrow_with_hook:",
              "secret": ":key:"}


@dataclass
class Block:
    """A piece of the comment with its shorter forms (longest first)."""

    forms: list[str]
    priority: int  # blocks of lower priority are shortened first
    level: int = 0

    @property
    def text(self) -> str:
        return self.forms[self.level]

    def saving(self) -> int:
        return len(self.text) - len(self.forms[self.level + 1])


@dataclass
class EnvironmentResult:
    """One environment's outcome: a plan, or the errors that stopped it being planned."""

    env: str
    plan: Plan | None = None
    failure: list[Diagnostic] = field(default_factory=list)


def render_markdown(plan: Plan) -> str:
    return render_comment([EnvironmentResult(plan.env, plan)])


def render_comment(results: list[EnvironmentResult], full_plan_url: str | None = None,
                   limit: int = COMMENT_LIMIT) -> str:
    blocks = [Block([MARKER + "\n## reconciler plan\n\n" + _overall(results)], 99)]
    for result in results:
        blocks += _environment_blocks(result)
    note = _shortened_note(full_plan_url)
    return _fit(blocks, limit - len(note) - 1, note)


def _fit(blocks: list[Block], budget: int, note: str) -> str:
    """Shorten blocks (lowest priority, biggest saving first), then drop whole ones from the end."""
    def total() -> int:
        return sum(len(b.text) for b in blocks)

    shortened = False
    while total() > budget:
        candidates = [b for b in blocks if b.level < len(b.forms) - 1]
        if not candidates:
            break
        block = min(candidates, key=lambda b: (b.priority, -b.saving()))
        block.level += 1
        shortened = True
    # Shrinking the least important first may have gone further than needed once the
    # important ones shrank too: give the room left back, most important first.
    for block in sorted(blocks, key=lambda b: -b.priority):
        while block.level and total() - len(block.text) + len(block.forms[block.level - 1]) <= budget:
            block.level -= 1
    kept, used = [], 0
    for index, block in enumerate(blocks):
        if used + len(block.text) > budget:
            kept.append(f"\n… {len(blocks) - index} more parts of this plan left out.\n")
            shortened = True
            break
        kept.append(block.text)
        used += len(block.text)
    return "".join(kept) + ("\n" + note if shortened else "")


def _shortened_note(url: str | None) -> str:
    where = (f"[the full plan]({url.replace(' ', '%20').replace(')', '%29')})" if url
             else "the full plan (`reconciler plan` locally, or the plan artifact of this run)")
    return (f"> :scissors: This comment was shortened to stay under GitHub's "
            f"{COMMENT_LIMIT:,}-character limit. See {where} for everything.\n")


def _overall(results: list[EnvironmentResult]) -> str:
    if len(results) < 2:
        return ""
    outcome = [_outcome(r) for r in results]
    counts = {k: outcome.count(k) for k in ("changes", "no changes", "failed")}
    kept = sum(len(r.plan.left_alone) for r in results if r.plan)
    left = f", {kept} resources left alone" if kept else ""
    return (f"**{len(results)} environments — {counts['changes']} with changes, "
            f"{counts['no changes']} without, {counts['failed']} failed{left}.**\n\n")


def _outcome(result: EnvironmentResult) -> str:
    if result.plan is None or result.plan.rejected:
        return "failed"
    return "changes" if result.plan.has_changes else "no changes"


# ---------------------------------------------------------------------------
# One environment
# ---------------------------------------------------------------------------

def _environment_blocks(result: EnvironmentResult) -> list[Block]:
    title = f"### {markdown_code(result.env)}"
    if result.plan is None:
        lines = [f"{title}: could not be planned :x:", ""]
        lines += [f"- {_where(str(d.source) if d.source else None)}{markdown_text(diagnostic_text(d))}"
                  for d in result.failure]
        return [Block(_list_forms(lines[:2], lines[2:]), 3)]
    plan = result.plan
    s = plan.summary
    head = [f"{title}", "", f"**{markdown_text(summary_line(plan))}**", "",
            "| Create | Update | Delete | Unchanged | Left alone |", "|---:|---:|---:|---:|---:|",
            f"| {s['create']} | {s['update']} | {s['delete']} | {s['unchanged']} | "
            f"{s['left_alone']} |", ""]
    if plan.secrets_mode == "write-only":
        head += [f"> {WRITE_ONLY_NOTE}", ""]
    blocks = [Block(["\n".join(head) + "\n"], 99)]
    blocks += _problem_blocks(plan)
    risks = plan_risks(plan.actions)
    risky = [(a, r) for a, r in zip(plan.actions, risks) if r]
    if risky:
        lines = [_risk_line(a, r) for a, r in risky]
        blocks.append(Block(_list_forms([f"#### :warning: Review carefully ({len(risky)})", ""],
                                        lines), 2))
    if plan.left_alone:
        lines = [f"- {markdown_code(f'{o.kind} {o.id}')} (account {markdown_code(o.scope)}"
                 + (f"; unmanaged on target {markdown_code(o.target)})" if o.target else ")")
                 for o in plan.left_alone]
        intro = [f"#### :pause_button: Left alone: {len(plan.left_alone)} resources are no "
                 "longer in the manifests", "",
                 "They stay on the platform; `--allow-delete` would delete them.", ""]
        blocks.append(Block(_list_forms(intro, lines), 1))
    if plan.cost is not None:
        blocks.append(Block(["\n".join(cost_markdown(plan.cost)) + "\n"], 5))
    if plan.scheduled:
        intro = [f"#### :calendar: Scheduled: {len(plan.scheduled)} creates wait for their "
                 "start date", "", "A later apply on or after the date creates them.", ""]
        blocks.append(Block(_list_forms(intro, scheduled_markdown(plan.scheduled)), 1))
    blocks += _change_blocks(plan, risks)
    if plan.warnings:
        lines = [f"- {_where(str(d.source) if d.source else None)}{markdown_text(d.message)}"
                 for d in plan.warnings]
        summary = f"<details><summary>Warnings ({len(plan.warnings)})</summary>\n"
        blocks.append(Block([summary + "\n" + "\n".join(lines) + "\n\n</details>\n\n",
                             summary + "\nLeft out to fit the comment.\n\n</details>\n\n"], 0))
    return blocks


def _problem_blocks(plan: Plan) -> list[Block]:
    blocks = []
    roots = [p for p in problems(plan) if p.title != "Error"]
    if roots:
        blocks.append(Block(["#### :no_entry: Forbidden or refused changes — fix these first\n\n"], 99))
    for number, problem in enumerate(roots, start=1):
        head = f"{number}. **{problem.title}:** {_where(problem.source)}{markdown_text(problem.message)}\n"
        if not problem.follow_ons:
            blocks.append(Block([head], 4))
            continue
        n = len(problem.follow_ons)
        follow = [f"   - {_where(str(d.source) if d.source else None)}{markdown_text(diagnostic_text(d))}"
                  for d in problem.follow_ons]
        summary = f"   <details><summary>{n} errors follow from it</summary>\n\n"
        blocks.append(Block([head + summary + "\n".join(follow) + "\n\n   </details>\n",
                             head + f"   - and {n} errors that follow from it (left out to fit "
                                    "the comment)\n"], 2))
    errors = [p for p in problems(plan) if p.title == "Error"]
    if errors:
        lines = [f"- {_where(p.source)}{markdown_text(p.message)}" for p in errors]
        blocks.append(Block(_list_forms([f"\n#### :x: Errors ({len(errors)})", ""], lines), 3))
    return blocks


def _risk_line(action: Action, risks: tuple[str, ...]) -> str:
    marks = ", ".join(f"{RISK_ICONS[r]} {RISKS[r]}" for r in risks)
    return f"- {markdown_code(f'{action.kind} {action.id}')} — {marks}"


def _list_forms(intro: list[str], lines: list[str]) -> list[str]:
    """A list in full, then ever shorter heads of it, then only its heading."""
    def form(items: list[str], more: int) -> str:
        rest = [f"- … and {more} more (see the full plan)"] if more else []
        return "\n".join(intro + items + rest) + "\n\n"

    forms = [form(lines, 0)]
    forms += [form(lines[:head], len(lines) - head) for head in HEADS if head < len(lines)]
    if lines:
        forms.append(form([], len(lines)))
    return forms


def _change_blocks(plan: Plan, risks: list[tuple[str, ...]]) -> list[Block]:
    """One folded-or-open section per customer (account), in customer-number order."""
    by_customer: dict[str, list[tuple[Action, tuple[str, ...]]]] = {}
    for action, marks in zip(plan.actions, risks):
        by_customer.setdefault(action.scope, []).append((action, marks))
    bodies = {scope: [_diff_lines(action, marks) for action, marks in
                      sorted(items, key=lambda item: group_of(item[0]))]
              for scope, items in by_customer.items()}
    small = sum(len(lines) for body in bodies.values() for lines in body) <= SMALL_PLAN_LINES
    blocks = []
    for scope in sorted(by_customer):
        actions = [a for a, _ in by_customer[scope]]
        summary = (f"<summary>Customer <code>{markdown_html(scope or '-')}</code>"
                   f"{_account_name(actions)} ({_counts(actions)})</summary>")
        body = bodies[scope]

        def form(head: int) -> str:
            lines = [line for action_lines in body[:head] for line in action_lines]
            more = (f"… and {len(body) - head} more changes (see the full plan)\n\n"
                    if head < len(body) else "")
            fenced = "\n".join(markdown_fence(lines, "diff"))
            return (f"<details{' open' if small else ''}>{summary}\n\n{fenced}\n\n{more}"
                    "</details>\n\n")

        forms = [form(len(body))] + [form(head) for head in HEADS if 0 < head < len(body)]
        forms.append(f"<details>{summary}\n\nLeft out to fit the comment.\n\n</details>\n\n")
        blocks.append(Block(forms, 0))
    return blocks


def _diff_lines(action: Action, marks: tuple[str, ...]) -> list[str]:
    where = f"  # {action.source}" if action.source else ""
    risk = f"  [{', '.join(marks)}]" if marks else ""
    sign = "!" if action.action == "update" else SYMBOLS[action.action]
    return [f"{SYMBOLS[action.action]} {action.kind} {action.id}{where}{risk}",
            *(f"{sign}     {name}: {change_text(action.action, change)}"
              for name, change in action.changes.items())]


def _account_name(actions: list[Action]) -> str:
    for action in actions:
        name = action.changes.get("name") if action.kind == "account" else None
        if name and name.after:
            return " — " + markdown_html(name.after)
    return ""


def _counts(actions: list[Action]) -> str:
    return ", ".join(f"{SYMBOLS[k]}{sum(a.action == k for a in actions)}"
                     for k in ("create", "update", "delete") if any(a.action == k for a in actions))


def _where(source: str | None) -> str:
    return f"{markdown_code(source)} " if source else ""
