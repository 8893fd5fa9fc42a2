"""GitOps through the real CLI: the five example customers end to end on both state
backends, plans over many environments in one run, `--format github` workflow commands
and the job summary, and the CI examples checked with a real linter."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import EXAMPLES, ROOT, Result, run_cli
from helpers import edit, line_of, regex_edit, remove_extension

TEMPLATES = ROOT / "examples" / "templates"
CUSTOMERS = ROOT / "examples" / "customers"
CUSTOMER_NAMES = sorted(p.name for p in CUSTOMERS.iterdir() if (p / "use.yaml").is_file())
CI = ROOT / "examples" / "ci"


def cli(*args, cwd: Path, env: dict | None = None) -> Result:
    """The CLI with its plan cache inside the test's directory (never the repository's)."""
    return run_cli(*args, cwd=cwd, env={"RECONCILER_CACHE_DIR": str(cwd / ".cache"), **(env or {})})


@pytest.fixture
def customers(tmp_path) -> Path:
    """tmp/templates and tmp/customers/*: copies of the examples; returns tmp/customers."""
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    shutil.copytree(CUSTOMERS, tmp_path / "customers")
    return tmp_path / "customers"


@pytest.fixture
def envs(tmp_path) -> Path:
    """tmp/envs with copies of the plain example environments; returns tmp/envs."""
    shutil.copytree(EXAMPLES, tmp_path / "envs")
    return tmp_path / "envs"


def _sections(output: str) -> list[str]:
    return re.findall(r"^Plan for (\S+) ", output, re.MULTILINE)


def _overall(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Overall: ")]
    assert len(lines) == 1, output
    return lines[0]


# ---------------------------------------------------------------------------
# The five customer environments: validate, plan, apply, plan again (both backends)
# ---------------------------------------------------------------------------

def test_customers_validate_plan_apply_and_plan_no_changes(customers, state_url):
    names = CUSTOMER_NAMES
    validated = cli("validate", "--strict", *names, cwd=customers)
    assert validated.returncode == 0, validated.output
    assert validated.stdout.count("valid (0 errors, 0 warnings)") == 5

    planned = cli("plan", *names, "--state", state_url, "--detailed-exitcode", cwd=customers)
    assert planned.returncode == 2, planned.output
    assert _sections(planned.stdout) == names
    created = [int(n) for n in re.findall(r"^Plan: (\d+) to create, 0 to update, 0 to delete",
                                          planned.stdout, re.MULTILINE)]
    # account, package, site, tenant, admin user + extensions (seats, reception/fax, batch rows)
    assert created == [5 + 2 + 25, 5 + 12, 5 + 2 + 15, 5 + 20 + 1, 5 + 6], planned.stdout
    assert _overall(planned.stdout) == ("Overall: 5 environments — 5 with changes, 0 without, "
                                        "0 failed.")

    applied = cli("apply", *names, "--state", state_url, "--auto-approve", cwd=customers)
    assert applied.returncode == 0, applied.output
    assert applied.stdout.count("Apply complete for ") == 5

    again = cli("plan", *names, "--state", state_url, "--detailed-exitcode", cwd=customers)
    assert again.returncode == 0, again.output
    assert _overall(again.stdout) == ("Overall: 5 environments — 0 with changes, 5 without, "
                                      "0 failed.")
    assert again.stdout.count("No changes. ") == 5
    assert "to create" not in again.stdout


def test_customer_auto_numbers_are_kept_after_apply(customers, sqlite_url):
    """`auto` extensions get numbers once; a second plan after a template change keeps them."""
    assert cli("apply", "praxis-dr-yilmaz", "--state", sqlite_url, "--auto-approve",
               cwd=customers).returncode == 0
    edit(customers / "praxis-dr-yilmaz" / "use.yaml", "seats: 6", "seats: 7")
    result = cli("plan", "praxis-dr-yilmaz", "--state", sqlite_url, "--detailed-exitcode",
                 cwd=customers)
    assert result.returncode == 2, result.output
    assert "Plan: 1 to create, 0 to update, 0 to delete" in result.stdout
    assert "+ extension praxis-yilmaz/16 " in result.stdout


# ---------------------------------------------------------------------------
# Many environments in one run
# ---------------------------------------------------------------------------

def _break(env: Path) -> None:
    edit(env / "use.yaml", 'customer_number: "7000127"', 'customer_number: "70001x"')


def test_one_broken_environment_does_not_stop_the_others(customers, sqlite_url):
    _break(customers / "hotel-seeblick")
    names = ["baeckerei-schulz", "hotel-seeblick", "kanzlei-brandt"]
    for extra in ((), ("--detailed-exitcode",)):
        result = cli("plan", *names, "--state", sqlite_url, *extra, cwd=customers)
        assert result.returncode == 1, result.output
        assert "Traceback" not in result.output
        planned = _sections(result.stdout)
        assert "baeckerei-schulz" in planned and "kanzlei-brandt" in planned
        assert "Plan: 26 to create" in result.stdout  # kanzlei-brandt, after the broken one
        line = line_of(customers / "hotel-seeblick" / "use.yaml", "70001x")
        assert f"hotel-seeblick/use.yaml:{line}:3: template value customer_number" in result.output
        assert _overall(result.stdout) == ("Overall: 3 environments — 2 with changes, 0 without, "
                                           "1 failed (hotel-seeblick).")


def test_many_environments_with_changes_detailed_exitcode(customers, sqlite_url):
    names = ["autohaus-keller", "praxis-dr-yilmaz", "kanzlei-brandt"]
    result = cli("plan", *names, "--state", sqlite_url, "--detailed-exitcode", cwd=customers)
    assert result.returncode == 2, result.output
    assert _sections(result.stdout) == names  # in the order given
    assert _overall(result.stdout) == ("Overall: 3 environments — 3 with changes, 0 without, "
                                       "0 failed.")
    plain = cli("plan", *names, "--state", sqlite_url, cwd=customers)
    assert plain.returncode == 0, plain.output


def test_many_environments_some_unchanged(customers, sqlite_url):
    assert cli("apply", "hotel-seeblick", "--state", sqlite_url, "--auto-approve",
               cwd=customers).returncode == 0
    result = cli("plan", "hotel-seeblick", "baeckerei-schulz", "--state", sqlite_url,
                 "--detailed-exitcode", cwd=customers)
    assert result.returncode == 2, result.output
    assert _overall(result.stdout) == ("Overall: 2 environments — 1 with changes, 1 without, "
                                       "0 failed.")


def test_many_environments_json_is_one_document(customers, sqlite_url):
    _break(customers / "hotel-seeblick")
    result = cli("plan", "baeckerei-schulz", "hotel-seeblick", "--format", "json",
                 "--state", sqlite_url, cwd=customers)
    assert result.returncode == 1, result.output
    plans = json.loads(result.stdout)  # the overall line goes to stderr
    assert [p["environment"] for p in plans] == ["baeckerei-schulz", "hotel-seeblick"]
    assert plans[0]["summary"]["create"] == 17
    assert plans[1]["rejected"] and plans[1]["errors"], plans[1]
    assert "Overall: 2 environments" in result.stderr


# ---------------------------------------------------------------------------
# --format github: workflow commands, and the job summary
# ---------------------------------------------------------------------------

def _commands(output: str) -> list[str]:
    """The workflow commands the runner would run (none between stop-commands markers)."""
    commands, paused = [], None
    for line in output.splitlines():
        if paused:
            paused = None if line == f"::{paused}::" else paused
        elif line.startswith("::stop-commands::"):
            paused = line.removeprefix("::stop-commands::")
        elif line.startswith("::"):
            commands.append(line)
    return commands


def test_github_error_points_at_the_broken_manifest_line(envs, sqlite_url):
    sites = envs / "companyflex-multisite" / "sites.yaml"
    edit(sites, "usage: sip_trunk", "usage: sip_trunkk")
    result = cli("plan", "companyflex-multisite", "--format", "github", "--state", sqlite_url,
                 cwd=envs)
    assert result.returncode == 1, result.output
    line = line_of(sites, "sip_trunkk")
    errors = [c for c in _commands(result.stdout) if "sip_trunkk" in c]
    assert errors == [f"::error file=companyflex-multisite/sites.yaml,line={line},col=1,"
                      "title=reconciler::usage 'sip_trunkk' is not allowed — use one of: "
                      "'cloud_pbx' or 'sip_trunk'"], result.stdout


def test_github_error_of_a_template_points_at_the_values_file(customers, sqlite_url):
    """The customer edits the values (the `kind: Use` document), not the shared template."""
    schema = customers.parent / "templates" / "standard-office" / "parameters.schema.json"
    edit(schema, '"area_code": {"type": "string", "pattern": "^0[1-9][0-9]{1,4}$", ',
         '"area_code": {"type": "string", ')
    edit(customers / "praxis-dr-yilmaz" / "use.yaml", 'area_code: "040"', 'area_code: "30"')
    result = cli("plan", "customers/praxis-dr-yilmaz", "--format", "github", "--state", sqlite_url,
                 cwd=customers.parent)
    assert result.returncode == 1, result.output
    template = customers.parent / "templates" / "standard-office" / "tenant.yaml.j2"
    line = line_of(template, "area_code:")
    errors = _commands(result.stdout)
    assert len(errors) == 6, result.stdout
    for error in errors:
        assert error.startswith("::error file=customers/praxis-dr-yilmaz/use.yaml,line=2,"
                                "title=reconciler::"), error
        assert error.endswith(
            f"(rendered from template templates/standard-office/tenant.yaml.j2:{line})"), error


def test_github_error_of_a_bad_value_points_at_the_values_file(customers, sqlite_url):
    _break(customers / "hotel-seeblick")
    result = cli("plan", "hotel-seeblick", "--format", "github", "--state", sqlite_url,
                 cwd=customers)
    assert result.returncode == 1, result.output
    line = line_of(customers / "hotel-seeblick" / "use.yaml", "70001x")
    assert any(c.startswith(f"::error file=hotel-seeblick/use.yaml,line={line},col=3,")
               for c in _commands(result.stdout)), result.stdout


def test_github_forbidden_change_points_at_the_manifest(envs, sqlite_url):
    env = envs / "main-with-subaccounts"
    assert cli("apply", env.name, "--state", sqlite_url, "--auto-approve", cwd=envs).returncode == 0
    tenant = env / "tenant-mustermensch.yaml"
    edit(tenant, "dial_plan: 3", "dial_plan: 4")
    regex_edit(tenant, r'number: "(\d{3})"', r'number: "\g<1>0"')  # keep it valid otherwise
    result = cli("plan", env.name, "--format", "github", "--state", sqlite_url, cwd=envs)
    assert result.returncode == 1, result.output
    line = line_of(tenant, "dial_plan:")
    assert _commands(result.stdout) == [
        f"::error file=main-with-subaccounts/tenant-mustermensch.yaml,line={line},"
        "title=Forbidden change::tenant mustermensch: dial_plan 3 → 4 — the platform cannot "
        "switch a tenant's dial plan; instead: create a new tenant with the new dial plan and "
        "move the extensions"], result.stdout


def test_github_delete_is_a_warning(envs, sqlite_url):
    env = envs / "main-with-subaccounts"
    assert cli("apply", env.name, "--state", sqlite_url, "--auto-approve", cwd=envs).returncode == 0
    remove_extension(env / "tenant-mustermensch.yaml", "130")
    result = cli("plan", env.name, "--format", "github", "--allow-delete", "--force",
                 "--state", sqlite_url, cwd=envs)
    assert result.returncode == 0, result.output
    assert _commands(result.stdout) == [
        "::warning title=Delete::main-with-subaccounts: extension mustermensch/130 will be deleted"]


def test_github_refused_deletes_are_an_error(envs, sqlite_url):
    env = envs / "main-with-subaccounts"
    assert cli("apply", env.name, "--state", sqlite_url, "--auto-approve", cwd=envs).returncode == 0
    for number in ("100", "120", "130"):  # none linked to a user
        remove_extension(env / "tenant-mustermensch.yaml", number)
    result = cli("plan", env.name, "--format", "github", "--allow-delete",
                 "--state", sqlite_url, cwd=envs)
    assert result.returncode == 1, result.output
    commands = _commands(result.stdout)
    assert any(c.startswith("::error title=Refused::deleting 3 of ") for c in commands), commands
    assert sum(c.startswith("::warning title=Delete::") for c in commands) == 3


def test_github_warning_for_a_validation_warning(envs, sqlite_url):
    tenant = envs / "main-with-subaccounts" / "tenant-mustermensch.yaml"
    edit(tenant, 'main_number: "+49306158830-0"', 'main_number: "+49306158830-1"')
    result = cli("plan", "main-with-subaccounts", "--format", "github", "--state", sqlite_url,
                 cwd=envs)
    assert result.returncode == 0, result.output
    line = line_of(tenant, "main_number:")
    warnings = [c for c in _commands(result.stdout) if c.startswith("::warning")]
    assert len(warnings) == 1, result.stdout
    assert warnings[0].startswith(
        f"::warning file=main-with-subaccounts/tenant-mustermensch.yaml,line={line},")


def test_github_properties_and_message_are_escaped(envs, sqlite_url):
    """Commas and colons in the file name, % and newlines in the message are encoded."""
    env = envs / "companyflex-multisite"
    (env / "sites.yaml").rename(env / "sites,old:1.yaml")
    edit(env / "sites,old:1.yaml", "usage: sip_trunk", "usage: 100%")
    result = cli("plan", env.name, "--format", "github", "--state", sqlite_url, cwd=envs)
    assert result.returncode == 1, result.output
    errors = [c for c in _commands(result.stdout) if "100" in c]
    assert len(errors) == 1, result.stdout
    assert errors[0].startswith("::error file=companyflex-multisite/sites%2Cold%3A1.yaml,line=")
    assert "usage '100%25' is not allowed" in errors[0]


def test_github_step_summary_gets_the_markdown_plan(customers, sqlite_url, tmp_path):
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    github = cli("plan", "praxis-dr-yilmaz", "--format", "github", "--state", sqlite_url,
                 cwd=customers, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert github.returncode == 0, github.output
    markdown = cli("plan", "praxis-dr-yilmaz", "--format", "markdown", "--state", sqlite_url,
                   cwd=customers)
    assert markdown.returncode == 0, markdown.output
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    assert text.removeprefix("# earlier step\n").strip() == markdown.stdout.strip()
    assert "### `praxis-dr-yilmaz`" in text
    assert "`praxis-dr-yilmaz`" not in github.stdout  # stdout: text plan + commands


def test_github_step_summary_of_many_environments(customers, sqlite_url, tmp_path):
    _break(customers / "hotel-seeblick")
    summary = tmp_path / "step-summary.md"
    result = cli("plan", "baeckerei-schulz", "hotel-seeblick", "--format", "github",
                 "--state", sqlite_url, cwd=customers, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 1, result.output
    text = summary.read_text(encoding="utf-8")
    assert "### `baeckerei-schulz`" in text
    assert "### `hotel-seeblick`" in text  # the failed one, with its errors
    assert "70001x" in text


def test_github_without_step_summary_writes_no_file(customers, sqlite_url, tmp_path):
    env = {"GITHUB_STEP_SUMMARY": ""}
    result = cli("plan", "praxis-dr-yilmaz", "--format", "github", "--state", sqlite_url,
                 cwd=customers, env=env)
    assert result.returncode == 0, result.output
    assert not list(customers.glob("*.md"))


def test_plan_out_into_a_new_directory(customers, sqlite_url):
    result = cli("plan", "praxis-dr-yilmaz", "--out", "plans/praxis.json", "--state", sqlite_url,
                 cwd=customers)
    assert "internal error" not in result.output
    assert result.returncode == 0, result.output
    assert (customers / "plans" / "praxis.json").is_file()


# ---------------------------------------------------------------------------
# examples/ci: checked with a real linter
# ---------------------------------------------------------------------------

def _lint(schema: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(path)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("schema, name", [("vendor.github-workflows", "github-actions.yml"),
                                          ("vendor.gitlab-ci", "gitlab-ci.yml")])
def test_ci_example_passes_the_linter(schema, name):
    result = _lint(schema, CI / name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("schema, name, old, new", [
    ("vendor.github-workflows", "github-actions.yml", "runs-on: ubuntu-latest", "runs_on: x"),
    ("vendor.gitlab-ci", "gitlab-ci.yml", "resource_group: reconciler-state",
     "resource_group: [reconciler-state]"),
])
def test_ci_linter_catches_a_broken_file(schema, name, old, new, tmp_path):
    """The linter is not vacuous: a broken copy fails it."""
    broken = tmp_path / name
    broken.write_text((CI / name).read_text(encoding="utf-8").replace(old, new, 1),
                      encoding="utf-8")
    assert _lint(schema, broken).returncode != 0


def test_ci_examples_run_reconciler_the_documented_way():
    """What tests/test_ci_examples.py cannot see by running them: the parts GitHub and
    GitLab do (concurrency, retention, credentials per job)."""
    github = (CI / "github-actions.yml").read_text(encoding="utf-8")
    gitlab = (CI / "gitlab-ci.yml").read_text(encoding="utf-8")
    for text in (github, gitlab):
        assert "pip install reconciler" not in text  # an unrelated PyPI package
        assert "RECONCILER_SOURCE" in text and "--lock-timeout" in text
        assert "--auto-approve" not in text  # the reviewed, saved plans are applied
        assert "--detailed-exitcode" in text
    assert "--format github" in github
    assert "resource_group: reconciler-state" in gitlab
    workflow = YAML(typ="safe").load(github)
    apply_job = workflow["jobs"]["apply"]
    assert "concurrency" not in apply_job and "concurrency" not in workflow  # never cancelled
    assert "RECONCILER_STATE_READONLY" in workflow["jobs"]["plan"]["env"]["RECONCILER_STATE"]
    assert apply_job["environment"] == "production"
    upload = next(s for s in workflow["jobs"]["plan"]["steps"]
                  if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["retention-days"] <= 14


def test_github_workflow_creates_the_plans_directory():
    github = (CI / "github-actions.yml").read_text(encoding="utf-8")
    assert github.index("mkdir -p plans") < github.index("--out \"plans/")


# ---------------------------------------------------------------------------
# One markdown comment for many environments and many errors (the GitHub limit)
# ---------------------------------------------------------------------------

@pytest.mark.slow
def test_markdown_comment_of_several_big_environments_and_many_errors_fits(tmp_path, sqlite_url):
    """Six environments: four with 3,000 new extensions each, one with 1,500 bad batch rows,
    one whose dial-plan switch makes every extension a follow-on error. The issue measured
    123k–225k characters for such comments; the whole comment must stay within 65,536."""
    names = [f"big-{n}" for n in range(4)] + ["bad-rows", "dial-switch"]
    for name in names:
        shutil.copytree(EXAMPLES / "comuniq-one-4digit", tmp_path / name)
        edit(tmp_path / name / "account.yaml", "parallel_calls: 40", "parallel_calls: 400")
    for n in range(4):
        rows = [f"{5000 + i}\tMitarbeiterin Nummer {i}\t0000\t089\tAbteilung {i % 7} (Standort "
                f"München)\tm{i}@lindner-immobilien.example" for i in range(3000)]
        with open(tmp_path / f"big-{n}" / "staff.tsv", "a", encoding="utf-8") as handle:
            handle.write("\n".join(rows) + "\n")
    with open(tmp_path / "bad-rows" / "staff.tsv", "a", encoding="utf-8") as handle:
        handle.write("\n".join(f"{5000 + i}\tName {i}\t12\t089\tAnzeige {i}" for i in range(1500))
                     + "\n")
    dial = tmp_path / "dial-switch"
    assert cli("apply", dial.name, "--state", sqlite_url, "--auto-approve",
               cwd=tmp_path).returncode == 0
    edit(dial / "tenant-lindner-immobilien.yaml", "dial_plan: 4", "dial_plan: 3")
    full = cli("plan", *names, "--state", sqlite_url, "--format", "json", cwd=tmp_path)
    assert len(full.stdout) > 4 * 65_536  # what a comment of everything would be
    result = cli("plan", *names, "--state", sqlite_url, "--format", "markdown",
                 cwd=tmp_path, env={"RECONCILER_FULL_PLAN_URL": "https://ci.example/runs/7"})
    assert result.returncode == 1
    comment = result.stdout
    print(f"comment size: {len(comment)} characters")  # reported by the note
    assert len(comment) <= 65_536
    assert "[the full plan](https://ci.example/runs/7)" in comment
    for name in names:
        assert f"### `{name}`" in comment
    assert "1. **Forbidden change:** `dial-switch/tenant-lindner-immobilien.yaml:" in comment
    assert comment.count("<details") == comment.count("</details>")
