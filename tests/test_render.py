"""Renderers on hand-built plans (no diffing involved): the markdown budget over several
environments and many errors, the order and summary of GitHub annotations, risk marks."""

from __future__ import annotations

from reconciler.diagnostics import Diagnostic, Source
from reconciler.diff import SENSITIVE, SENSITIVE_CHANGED, Action, FieldChange
from reconciler.plan import ForbiddenChange, LeftAlone, Plan
from reconciler.render.github import render_github
from reconciler.render.markdown import COMMENT_LIMIT, MARKER, EnvironmentResult, render_comment
from reconciler.render.text import render_text
from reconciler.risk import action_risks


def _create(kind: str, ident: str, scope: str, **attrs) -> Action:
    changes = {k: FieldChange(None, v) for k, v in attrs.items()}
    return Action("create", kind, ident, scope, f"env/{ident}.yaml:1", changes, attrs)


def _big_plan(env: str, extensions: int, errors: int) -> Plan:
    plan = Plan(env, 7, ["1111111", "2222222"])
    for scope in plan.scope:
        plan.actions.append(_create("account", scope, scope, name=f"Kunde {scope}"))
        plan.actions += [_create("extension", f"t{scope}/{n}", scope, name=f"Nebenstelle {n}" * 3,
                                 display_name="Empfang Berlin " * 4, pin=SENSITIVE)
                         for n in range(extensions)]
    dial = ForbiddenChange("tenant", "t1111111", "dial_plan", 3, 4, "cannot switch", "new tenant",
                           f"{env}/tenant.yaml:9", tuple(
                               Diagnostic(Source(f"{env}/tenant.yaml", 20 + n), f"extension {n} has 3 digits")
                               for n in range(7)))
    plan.forbidden.append(dial)
    plan.errors += [Diagnostic(Source(f"{env}/batch.tsv", n), f"column 3 (pin): bad PIN {n} " * 5,
                               "use '0000'") for n in range(errors)]
    plan.left_alone += [LeftAlone("extension", f"old/{n}", "1111111") for n in range(300)]
    return plan


def test_one_budget_for_several_environments_and_many_errors():
    results = [EnvironmentResult(f"env-{n}", _big_plan(f"env-{n}", 2000, 800)) for n in range(5)]
    results.append(EnvironmentResult("broken", failure=[Diagnostic(Source("broken/a.yaml", 3),
                                                                   "not YAML")] * 2000))
    full = render_comment(results, limit=10**9)
    assert len(full) > 4 * COMMENT_LIMIT  # the issue measured 123k–225k; this is larger
    comment = render_comment(results, "https://ci.example/run/1")
    assert len(comment) <= COMMENT_LIMIT
    assert comment.startswith(MARKER + "\n")
    assert "[the full plan](https://ci.example/run/1)" in comment
    for n in range(5):  # every environment keeps its heading and its root cause
        assert f"### `env-{n}`" in comment
        assert (f"1. **Forbidden change:** `env-{n}/tenant.yaml:9` tenant t1111111: "
                "dial\\_plan 3 → 4") in comment
    assert "### `broken`: could not be planned" in comment
    assert comment.count("<details") == comment.count("</details>")


def test_small_plan_is_unfolded_and_not_shortened():
    plan = Plan("small", 1, ["1111111"])
    plan.actions = [_create("account", "1111111", "1111111", name="Mustermensch GmbH")]
    comment = render_comment([EnvironmentResult("small", plan)], "https://ci.example/x")
    assert "<details open><summary>Customer <code>1111111</code> — Mustermensch GmbH (+1)" in comment
    assert "shortened" not in comment and "https://ci.example/x" not in comment


def test_user_text_cannot_inject_markdown_or_html():
    plan = Plan("env", 1, ["1111111"])
    plan.errors.append(Diagnostic(Source("env/a`b.yaml", 1),
                                  "name '<img src=x> @admins [x](http://evil) | ```' is bad"))
    plan.actions = [_create("account", "1111111", "1111111", name="```\n</details><b>x</b>")]
    comment = render_comment([EnvironmentResult("env", plan)])
    assert "<img" not in comment and "@admins" not in comment
    assert "\\[x\\](http://evil)" in comment  # literal brackets: no link
    assert "``env/a`b.yaml:1``" in comment  # a longer code span
    fence = next(line for line in comment.splitlines() if line.endswith("diff"))
    assert fence == "````diff"  # longer than any backtick run inside
    before, inside, after = comment.partition("````diff\n")[0], *comment.partition(
        "````diff\n")[2].partition("\n````\n")[::2]
    assert "<b>" in inside and "\n" not in inside.split("name: ")[1].split("  #")[0].strip()
    assert "<b>" not in before + after  # literal text only inside the code block


def test_github_annotations_root_cause_first_and_summary_past_ten():
    plan = _big_plan("env", 1, 5)
    lines = render_github([plan]).splitlines()
    errors = [line for line in lines if line.startswith("::error")]
    assert len(errors) == 1 + 1 + 7 + 5
    assert errors[0].startswith("::error title=reconciler%3A 13 errors::13 errors in all; the 1 "
                                "forbidden changes (root causes) come first.")
    assert errors[1].startswith("::error file=env/tenant.yaml,line=9,title=Forbidden change::")
    assert all("title=Follows from the forbidden change above" in e for e in errors[2:9])


def test_github_ten_errors_need_no_summary():
    plan = Plan("env", 1, [])
    plan.errors = [Diagnostic(Source("a.yaml", n), "bad") for n in range(1, 11)]
    errors = render_github([plan]).splitlines()
    assert len(errors) == 10 and errors[0].startswith("::error file=a.yaml,line=1,")


def test_risk_marks():
    new_tenant = _create("tenant", "neu", "1")
    assert action_risks(_create("user", "neu/a@b.example", "1", role="admin"), {"neu"}) == ()
    assert action_risks(_create("user", "alt/a@b.example", "1", role="admin"), {"neu"}) == ("admin",)
    promoted = Action("update", "user", "alt/a@b.example", "1", None,
                      {"role": FieldChange("user", "admin")}, {})
    assert action_risks(promoted) == ("admin",)
    reverted = Action("update", "extension", "alt/100", "1", None,
                      {"name": FieldChange("Lager", "Empfang", drift=True, applied="Empfang"),
                       "pin": FieldChange(SENSITIVE, SENSITIVE_CHANGED)}, {})
    assert action_risks(reverted) == ("drift-revert", "secret")
    gone = Action("delete", "tenant", "alt", "1", None, {}, None)
    assert action_risks(gone) == ("delete",)
    assert action_risks(new_tenant) == ()
    plan = Plan("env", 1, ["1"])
    plan.actions = [promoted, reverted]
    text = render_text(plan)
    assert "~ user alt/a@b.example  [admin]" in text
    assert "~ extension alt/100  [drift-revert, secret]" in text
