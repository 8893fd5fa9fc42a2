"""Partner templates through the real CLI: golden renders of the five example customers,
determinism, JSON Schema parameter errors at the values file's lines, the sandbox,
provenance of errors in rendered resources, and overrides next to the `Use` document.

Regenerate the golden files after a deliberate change (then review the diff):

    UPDATE_GOLDEN=1 python -m pytest -q tests/test_templates.py -k golden
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, Result, new_sqlite_state, run_cli
from helpers import edit, line_of

TEMPLATES = ROOT / "examples" / "templates"
CUSTOMERS = ROOT / "examples" / "customers"
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "render"
CUSTOMER_NAMES = sorted(p.name for p in CUSTOMERS.iterdir() if (p / "use.yaml").is_file())


def cli(*args, cwd: Path, env: dict | None = None) -> Result:
    """The CLI with its plan cache inside the test's directory (never the repository's)."""
    return run_cli(*args, cwd=cwd, env={"RECONCILER_CACHE_DIR": str(cwd / ".cache"), **(env or {})})


def assert_clean_failure(result: Result) -> None:
    """Exit 1 with a message, no traceback, no 'internal error', nothing rendered."""
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert result.stdout == "", result.stdout
    assert result.stderr.strip()


@pytest.fixture
def workspace(tmp_path):
    """A copy of examples/templates and examples/customers, laid out as in the repository."""

    def copy(customer: str) -> Path:
        if not (tmp_path / "templates").exists():
            shutil.copytree(TEMPLATES, tmp_path / "templates")
        target = tmp_path / "customers" / customer
        shutil.copytree(CUSTOMERS / customer, target)
        return target

    return copy


# ---------------------------------------------------------------------------
# Golden renders and determinism
# ---------------------------------------------------------------------------

def test_there_are_five_customers_on_two_templates():
    assert len(CUSTOMER_NAMES) == 5
    used = {(CUSTOMERS / name / "use.yaml").read_text(encoding="utf-8").split("template: ")[1]
            .split()[0] for name in CUSTOMER_NAMES}
    assert used == {"../../templates/standard-office", "../../templates/comuniq-one"}


@pytest.mark.parametrize("customer", CUSTOMER_NAMES)
def test_render_matches_golden(customer):
    result = run_cli("render", f"examples/customers/{customer}", cwd=ROOT)
    assert result.returncode == 0, result.output
    assert result.stderr == ""
    golden = GOLDEN / f"{customer}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(result.stdout.encode("utf-8"))
    assert golden.is_file(), f"no golden file {golden}: run with UPDATE_GOLDEN=1 and review it"
    assert result.stdout.encode("utf-8") == golden.read_bytes()


@pytest.mark.parametrize("customer", CUSTOMER_NAMES)
def test_render_is_deterministic(customer):
    """Same input, same bytes: other hash seeds, another working directory."""
    first = run_cli("render", f"examples/customers/{customer}", cwd=ROOT,
                    env={"PYTHONHASHSEED": "1"})
    second = run_cli("render", customer, cwd=CUSTOMERS, env={"PYTHONHASHSEED": "2"})
    assert first.returncode == second.returncode == 0, first.output + second.output
    assert first.stdout.encode() == second.stdout.encode()


def test_render_shows_secrets_as_references_and_keeps_leading_zeros():
    text = (GOLDEN / "kanzlei-brandt.yaml").read_text(encoding="utf-8")
    assert "file: secrets/admin-password.txt" in text
    assert "Qa9$" not in text  # the password file's content
    assert 'area_code: "089"' in text and 'pin: "0000"' in text and "dial_plan: 4\n" in text


def test_plain_text_secret_is_a_reference_in_render(workspace):
    env = workspace("kanzlei-brandt")
    edit(env / "overrides.yaml", 'pin: "0000"', 'pin: "4711"')
    result = cli("render", env.name, cwd=env.parent)
    assert result.returncode == 0, result.output
    assert "4711" not in result.stdout + result.stderr
    assert "pin: {env: RECONCILER_SECRET_KANZLEI_BRANDT_1999_PIN}\n" in result.stdout
    assert "export RECONCILER_SECRET_KANZLEI_BRANDT_1999_PIN with the values" in result.stderr


@pytest.mark.parametrize("customer", ["kanzlei-brandt", "hotel-seeblick"])
def test_rendered_manifests_plan_like_the_template(customer, workspace):
    """`render` prints the final manifests: as an environment of their own they validate
    and plan the same, against an empty state and against the applied template."""
    env = workspace(customer)
    # The same directory name: the rendered copy is the same environment (it owns the same objects).
    flat = env.parent / "flat" / customer
    flat.mkdir(parents=True)
    flat_arg = str(flat.relative_to(env.parent))
    rendered = cli("render", env.name, cwd=env.parent)
    assert rendered.returncode == 0, rendered.output
    assert rendered.stderr == ""  # no plain-text secret to turn into a reference
    (flat / "rendered.yaml").write_text(rendered.stdout, encoding="utf-8")
    shutil.copytree(env / "secrets", flat / "secrets")
    if (env / "staff.tsv").exists():
        shutil.copy(env / "staff.tsv", flat / "staff.tsv")
    validated = cli("validate", "--strict", flat_arg, cwd=env.parent)
    assert validated.returncode == 0, validated.output
    state = _state(env)
    plans = []
    for directory in (env.name, flat_arg):
        result = cli("plan", directory, "--format", "json", "--state", state, cwd=env.parent)
        assert result.returncode == 0, result.output
        plans.append(json.loads(result.stdout))
    strip = [[{k: v for k, v in a.items() if k != "source"} for a in p["actions"]] for p in plans]
    assert strip[0] == strip[1]
    assert plans[0]["summary"]["create"] > 20
    applied = cli("apply", env.name, "--auto-approve", "--state", state, cwd=env.parent)
    assert applied.returncode == 0, applied.output
    again = cli("plan", flat_arg, "--state", state, "--detailed-exitcode", cwd=env.parent)
    assert again.returncode == 0, again.output
    assert "No changes." in again.stdout


# ---------------------------------------------------------------------------
# JSON Schema parameters: reported at the values file's file:line
# ---------------------------------------------------------------------------

def _values_case(env: Path, case: str) -> tuple[int, str]:
    """Break use.yaml; return the line the error must name and a phrase of the message."""
    use = env / "use.yaml"
    if case == "missing-required":
        edit(use, "  admin_email: praxis@yilmaz.example\n", "")
        return line_of(use, "values:"), "missing template value 'admin_email'"
    if case == "wrong-pattern":
        edit(use, 'customer_number: "7000124"', 'customer_number: "70001"')
        return line_of(use, "customer_number:"), "'70001' does not match"
    if case == "wrong-type":
        edit(use, "seats: 6", "seats: sechs")
        return line_of(use, "seats:"), "'sechs' is not of type 'integer'"
    if case == "out-of-range":
        edit(use, "dial_plan: 2", "dial_plan: 6")
        return line_of(use, "dial_plan:"), "6 is greater than the maximum of 5"
    if case == "unknown-parameter":
        edit(use, "  fax: true\n", "  fax: true\n  voicemial: false\n")
        return line_of(use, "voicemial"), "unknown template value 'voicemial'"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing-required", "wrong-pattern", "wrong-type",
                                  "out-of-range", "unknown-parameter"])
def test_bad_value_is_reported_at_the_values_file_line(case, workspace):
    env = workspace("praxis-dr-yilmaz")
    line, phrase = _values_case(env, case)
    result = cli("render", env.name, cwd=env.parent)
    assert_clean_failure(result)
    assert f"praxis-dr-yilmaz/use.yaml:{line}:" in result.stderr, result.stderr
    assert phrase in result.stderr
    assert "parameters.schema.json" in result.stderr  # where the rule is


def test_unknown_parameter_gets_a_did_you_mean_hint(workspace):
    env = workspace("praxis-dr-yilmaz")
    _values_case(env, "unknown-parameter")
    result = cli("render", env.name, cwd=env.parent)
    assert "did you mean 'voicemail'?" in result.stderr


def test_all_bad_values_are_reported_in_one_run(workspace):
    env = workspace("praxis-dr-yilmaz")
    expected = [_values_case(env, case) for case in
                ("wrong-pattern", "wrong-type", "unknown-parameter", "missing-required")]
    result = cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    for line, phrase in expected:
        assert any(f"use.yaml:{line}:" in out and phrase in out
                   for out in result.stderr.splitlines()), (line, phrase, result.stderr)
    assert result.stderr.count("missing template value 'admin_email'") == 1
    assert "invalid (4 errors" in result.stdout


def test_format_of_a_value_is_checked(workspace):
    """`"format": "date"` in the schema is enforced: 30 February is not a start date."""
    env = workspace("autohaus-keller")
    edit(env / "use.yaml", 'start_date: "2026-09-01"', 'start_date: "2027-02-30"')
    result = cli("render", env.name, cwd=env.parent)
    assert_clean_failure(result)
    line = line_of(env / "use.yaml", "start_date")
    assert f"autohaus-keller/use.yaml:{line}:" in result.stderr
    assert "'2027-02-30' is not a 'date'" in result.stderr


def test_slug_is_required_by_standard_office(workspace):
    """The template uses `slug` everywhere; leaving it out is a values error, not a crash."""
    env = workspace("baeckerei-schulz")
    edit(env / "use.yaml", "  slug: baeckerei-schulz\n", "")
    result = cli("render", env.name, cwd=env.parent)
    assert_clean_failure(result)
    assert f"use.yaml:{line_of(env / 'use.yaml', 'values:')}:" in result.stderr
    assert "missing template value 'slug'" in result.stderr


def test_defaults_from_the_schema_are_used(workspace):
    """praxis-dr-yilmaz gives no parallel_calls and no contact: the schema's defaults apply."""
    text = (GOLDEN / "praxis-dr-yilmaz.yaml").read_text(encoding="utf-8")
    assert "parallel_calls: 10\n" in text
    assert "contact: IT" in text


# ---------------------------------------------------------------------------
# The sandbox: no code execution, no files outside the template, a clean error
# ---------------------------------------------------------------------------

PARAMETERS = {"type": "object", "additionalProperties": False,
              "properties": {"who": {"type": "string", "default": "Tester"}}}


def _template_env(tmp_path: Path, template: str, extra: dict[str, str] | None = None) -> Path:
    """tmp/tpl (a template with one file) and tmp/env (a Use of it); returns tmp/env."""
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "parameters.schema.json").write_text(json.dumps(PARAMETERS), encoding="utf-8")
    (tpl / "account.yaml.j2").write_text(template, encoding="utf-8")
    for name, text in (extra or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    env = tmp_path / "env"
    env.mkdir()
    (env / "use.yaml").write_text("kind: Use\ntemplate: ../tpl\nvalues:\n  who: Eve\n",
                                  encoding="utf-8")
    return env


ACCOUNT = 'kind: Account\ncustomer_number: "1234567"\nname: {}\ncontact: IT\n'
UNSAFE = "the template tried something unsafe"
NOT_OWN = "which is not a file of this template"
ESCAPES = {
    "str-class-mro": ("{{ ''.__class__.__mro__ }}", UNSAFE),
    "str-class-subclasses": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", UNSAFE),
    "cycler-globals": ("{{ cycler.__init__.__globals__ }}", UNSAFE),
    "cycler-globals-os": ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", UNSAFE),
    "lipsum-globals": ("{{ lipsum.__globals__['os'].popen('id').read() }}", UNSAFE),
    "self-init": ("{{ self.__init__.__globals__ }}", UNSAFE),
    "format-attribute": ("{{ '{0.__class__}'.format(who) }}", UNSAFE),
    "include-absolute": ("{% include '/etc/passwd' %}", NOT_OWN),
    "include-parent": ("{% include '../secret.yaml.j2' %}", NOT_OWN),
    "include-parent-nested": ("{% include 'sub/../../secret.yaml.j2' %}", NOT_OWN),
    "include-env-file": ("{% include '../env/use.yaml' %}", NOT_OWN),
    "import-outside": ("{% import '../macros.j2' as m %}{{ m.x() }}", NOT_OWN),
    "from-import-absolute": ("{% from '/etc/passwd' import root %}", NOT_OWN),
    "extends-outside": ("{% extends '../secret.yaml.j2' %}", NOT_OWN),
    "string-bomb": ("{{ 'a' * 100000000 }}", UNSAFE),
    "list-bomb": ("{{ [who] * 100000000 }}", UNSAFE),
    "power-bomb": ("{{ 10 ** 100000000 }}", UNSAFE),
    "huge-range": ("{{ range(100000000) | list | length }}", "Range too big"),
    "endless-recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
                          "the template recurses without end"),
    "division-by-zero": ("{{ 1 / 0 }}", "ZeroDivisionError"),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_sandbox_refuses_cleanly(case, tmp_path):
    expression, phrase = ESCAPES[case]
    env = _template_env(tmp_path, ACCOUNT.format(expression), {
        "secret.yaml.j2": "name: leaked-secret\n",
        "macros.j2": "{% macro x() %}leaked-macro{% endmacro %}\n",
    })
    result = cli("render", "env", cwd=tmp_path)
    assert_clean_failure(result)
    assert phrase in result.stderr, result.stderr
    assert "tpl/account.yaml.j2:3 (values env/use.yaml:1)" in result.stderr, result.stderr
    for leaked in ("leaked-", "root:", "uid="):
        assert leaked not in result.output


def test_symlink_out_of_the_template_is_refused(tmp_path):
    (tmp_path / "outside.txt").write_text("leaked-through-symlink\n", encoding="utf-8")
    env = _template_env(tmp_path, ACCOUNT.format("{% include 'link.txt' %}"))
    (tmp_path / "tpl" / "link.txt").symlink_to(tmp_path / "outside.txt")
    result = cli("render", "env", cwd=tmp_path)
    assert_clean_failure(result)
    assert "'link.txt' leads outside the template directory" in result.stderr
    assert "leaked" not in result.output


def test_symlinked_template_file_out_of_the_template_is_refused(tmp_path):
    (tmp_path / "outside.yaml.j2").write_text(ACCOUNT.format("leaked"), encoding="utf-8")
    env = _template_env(tmp_path, ACCOUNT.format("ok"))
    (tmp_path / "tpl" / "more.yaml.j2").symlink_to(tmp_path / "outside.yaml.j2")
    result = cli("render", "env", cwd=tmp_path)
    assert_clean_failure(result)
    assert "'more.yaml.j2' leads outside the template directory" in result.stderr


def test_include_inside_the_template_works(tmp_path):
    """The sandbox is not a ban on includes, loops and conditions."""
    env = _template_env(tmp_path, ACCOUNT.format("{% include 'name.j2' %}"))
    (tmp_path / "tpl" / "name.j2").write_text(
        "{% for part in [who, 'GmbH'] %}{{ part }}{% if not loop.last %} {% endif %}{% endfor %}",
        encoding="utf-8")
    result = cli("render", "env", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert "name: Eve GmbH\ncontact: IT\n" in result.stdout


def test_inline_condition_keeps_its_line(tmp_path):
    """trim_blocks removes the newline after a block tag: not after a line that renders output
    (`name: {% if … %}…{% endif %}` must not run into the next line)."""
    env = _template_env(tmp_path, 'kind: Account\ncustomer_number: "1234567"\n'
                        "name: {% if who == 'Eve' %}Eve AG{% else %}Other{% endif %}\n"
                        "contact: {{ who }}{# the contact #}\n"
                        "{% if who %}\naddress: Somewhere 1\n{% endif %}\n")
    result = cli("render", "env", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert result.stdout == ('kind: Account\ncustomer_number: "1234567"\nname: Eve AG\n'
                             "contact: Eve\naddress: Somewhere 1\n")


@pytest.mark.parametrize("path, phrase", [
    ("/etc", "the template path '/etc' is absolute"),
    ("/tmp", "the template path '/tmp' is absolute"),
    ("../../../../../../../../../../etc", "is not a template directory"),
    ("../env", "is not a template directory"),
])
def test_use_template_path_outside(path, phrase, tmp_path):
    """Absolute template paths are refused (a repository must render the same on every
    machine); a relative path must name a template directory."""
    env = _template_env(tmp_path, ACCOUNT.format("x"))
    edit(env / "use.yaml", "template: ../tpl", f"template: {path}")
    result = cli("render", "env", cwd=tmp_path)
    assert_clean_failure(result)
    assert f"env/use.yaml:{line_of(env / 'use.yaml', 'template:')}:" in result.stderr
    assert phrase in result.stderr


@pytest.mark.parametrize("field, value, phrase", [
    ("password", "{file: /etc/passwd}", "secret file '/etc/passwd' lies outside the environment"),
    ("password", "{file: ../../etc/passwd}", "lies outside the environment"),
    ("extensions_from", "[/etc/passwd]", "batch file '/etc/passwd' lies outside the environment"),
])
def test_rendered_file_references_stay_inside_the_environment(field, value, phrase, workspace):
    """A template cannot make reconciler read files outside the environment either."""
    env = workspace("hotel-seeblick")
    template = env.parent.parent / "templates" / "comuniq-one" / "customer.yaml.j2"
    if field == "password":
        edit(template, "{file: secrets/admin-password.txt}", value)
    else:
        edit(template, "extensions_from: [{{ staff_file | tojson }}]", f"extensions_from: {value}")
    result = cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    assert phrase in result.stderr
    assert "customer.yaml.j2:" in result.stderr
    assert "(values hotel-seeblick/use.yaml:2)" in result.stderr
    assert "root:" not in result.output


# ---------------------------------------------------------------------------
# Provenance: errors in rendered resources name the template line and the values
# ---------------------------------------------------------------------------

def test_invalid_rendered_value_names_template_line_and_values_file(workspace):
    """A schema that forgot the area code's pattern: the rule catches the rendered value."""
    env = workspace("praxis-dr-yilmaz")
    schema = env.parent.parent / "templates" / "standard-office" / "parameters.schema.json"
    edit(schema, '"area_code": {"type": "string", "pattern": "^0[1-9][0-9]{1,4}$", ',
         '"area_code": {"type": "string", ')
    edit(env / "use.yaml", 'area_code: "040"', 'area_code: "30"')
    result = cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    template = env.parent.parent / "templates" / "standard-office" / "tenant.yaml.j2"
    line = line_of(template, "area_code:")
    use_line = line_of(env / "use.yaml", "kind: Use")
    errors = [e for e in result.stderr.splitlines() if "30" in e and "area code" in e.lower()]
    assert len(errors) == 6, result.stderr  # one per seat
    for error in errors:
        assert f"standard-office/tenant.yaml.j2:{line}:" in error, error
        assert f"(values praxis-dr-yilmaz/use.yaml:{use_line})" in error, error


@pytest.mark.parametrize("broken, phrase", [
    ("name: [{{ who }}\n", "YAML syntax error"),
    ("name: {{ who }\n", "template syntax error"),
    ("name: {{ nobody }}\n", "'nobody' is undefined"),
    ("name: {{ who | nosuchfilter }}\n", "No filter named 'nosuchfilter'"),
])
def test_template_errors_name_the_template_line(broken, phrase, tmp_path):
    template = 'kind: Account\ncustomer_number: "1234567"\n{% if who %}\ncontact: IT\n{% endif %}\n'
    env = _template_env(tmp_path, template + broken)
    result = cli("render", "env", cwd=tmp_path)
    assert_clean_failure(result)
    assert phrase in result.stderr, result.stderr
    assert "tpl/account.yaml.j2:6" in result.stderr, result.stderr  # the line of `broken`
    assert "(values env/use.yaml:1)" in result.stderr


def test_unknown_field_in_a_rendered_document_names_the_template_line(tmp_path):
    env = _template_env(tmp_path, ACCOUNT.format("{{ who }}")
                        + "{% if true %}\ncolour: red\n{% endif %}\n")
    result = cli("validate", "env", cwd=tmp_path)
    assert result.returncode == 1, result.output
    assert "tpl/account.yaml.j2:6:1 (values env/use.yaml:1)" in result.stderr, result.stderr
    assert "colour" in result.stderr


# ---------------------------------------------------------------------------
# Overrides next to the Use document
# ---------------------------------------------------------------------------

def _state(env: Path) -> str:
    """The URL of the workspace's state beside `env`, created when missing."""
    path = env.parent / "state.db"
    return f"sqlite:///{path}" if path.exists() else new_sqlite_state(path)


def _plan_json(env: Path, *args) -> dict:
    result = cli("plan", env.name, "--format", "json", "--state",
                 _state(env), *args, cwd=env.parent)
    assert result.returncode in (0, 2), result.output
    return json.loads(result.stdout)


def _action(plan: dict, kind: str, ident: str) -> dict:
    found = [a for a in plan["actions"] if a["kind"] == kind and a["id"] == ident]
    assert len(found) == 1, [(a["kind"], a["id"]) for a in plan["actions"]]
    return found[0]


def test_override_changes_a_field_and_adds_an_extension(workspace):
    env = workspace("kanzlei-brandt")
    plan = _plan_json(env)
    tenant = _action(plan, "tenant", "kanzlei-brandt")
    assert tenant["changes"]["version"]["after"] == "PRO"  # the template says BASIC
    added = _action(plan, "extension", "kanzlei-brandt/1999")
    assert added["changes"]["name"]["after"] == "Notfall-Hotline"
    overrides = env / "overrides.yaml"
    assert added["source"] == f"kanzlei-brandt/overrides.yaml:{line_of(overrides, '1999')}"
    seats = [a for a in plan["actions"] if a["kind"] == "extension"
             and a["id"] != "kanzlei-brandt/1999"]
    assert len(seats) == 20
    assert all("addons" not in a["changes"] for a in seats)  # voicemail: false


def test_override_replaces_a_rendered_extension_by_number(workspace):
    env = workspace("hotel-seeblick")
    (env / "overrides.yaml").write_text(
        "kind: Tenant\nname: hotel-seeblick\nextensions:\n"
        '  - number: "1000"\n    name: Lobby\n    pin: "0000"\n    area_code: "07531"\n',
        encoding="utf-8")
    plan = _plan_json(env)
    reception = _action(plan, "extension", "hotel-seeblick/1000")
    assert reception["changes"]["name"]["after"] == "Lobby"
    assert reception["changes"]["area_code"]["after"] == "07531"
    assert reception["source"] == "hotel-seeblick/overrides.yaml:4"
    # the template's other extensions are still there
    _action(plan, "extension", "hotel-seeblick/3000")


def test_override_of_an_applied_environment_is_an_update(workspace):
    env = workspace("kanzlei-brandt")
    state = _state(env)
    applied = cli("apply", env.name, "--auto-approve", "--state", state, cwd=env.parent)
    assert applied.returncode == 0, applied.output
    edit(env / "overrides.yaml", "version: PRO", "version: BASIC")
    plan = _plan_json(env)
    assert plan["summary"]["update"] == 1, plan["summary"]
    tenant = _action(plan, "tenant", "kanzlei-brandt")
    assert tenant["changes"]["version"] == {"before": "PRO", "after": "BASIC"}
    assert tenant["source"].startswith("kanzlei-brandt/overrides.yaml:")


def test_fields_kept_from_the_template_point_at_the_template(workspace):
    """In an overridden Tenant, dial_plan still comes from the template: a forbidden change of
    it names the template line (and values), not the override file."""
    env = workspace("kanzlei-brandt")
    state = _state(env)
    assert cli("apply", env.name, "--auto-approve", "--state", state,
               cwd=env.parent).returncode == 0
    edit(env / "use.yaml", "dial_plan: 4", "dial_plan: 5")
    result = cli("plan", env.name, "--state", state, cwd=env.parent)
    assert result.returncode == 1, result.output
    forbidden = [line for line in result.stdout.splitlines() if line.startswith("Forbidden: ")]
    assert len(forbidden) == 1, result.stdout
    template = env.parent.parent / "templates" / "standard-office" / "tenant.yaml.j2"
    use_line = line_of(env / "use.yaml", "kind: Use")
    assert (f"standard-office/tenant.yaml.j2:{line_of(template, 'dial_plan:')} "
            f"(values kanzlei-brandt/use.yaml:{use_line})") in forbidden[0]
    assert "dial_plan 4 → 5" in forbidden[0]
    assert "overrides.yaml" not in forbidden[0]


def _second_use(env: Path, name: str = "use-again.yaml") -> Path:
    path = env / name
    path.write_text((env / "use.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_two_uses_rendering_the_same_tenant_is_an_error(workspace):
    env = workspace("hotel-seeblick")
    _second_use(env)
    result = cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    tenant = [e for e in result.stderr.splitlines()
              if "Tenant 'hotel-seeblick' is rendered twice" in e]
    assert len(tenant) == 1, result.stderr
    assert "values hotel-seeblick/use.yaml:2" in tenant[0]
    assert "values hotel-seeblick/use-again.yaml:2" in tenant[0]
    assert "Traceback" not in result.output


def test_two_uses_of_different_templates_for_the_same_tenant_is_an_error(workspace):
    env = workspace("baeckerei-schulz")
    (env / "other.yaml").write_text(
        "kind: Use\ntemplate: ../../templates/comuniq-one\nvalues:\n"
        '  customer_number: "7000999"\n  name: Andere\n  slug: baeckerei-schulz\n'
        '  number_prefix: "+4930999000"\n  admin_email: a@b.example\n', encoding="utf-8")
    result = cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    assert "Tenant 'baeckerei-schulz' is rendered twice" in result.stderr
    assert "standard-office/tenant.yaml.j2" in result.stderr
    assert "comuniq-one/customer.yaml.j2" in result.stderr


def test_two_overrides_of_one_rendered_resource_is_an_error(workspace):
    env = workspace("kanzlei-brandt")
    (env / "more-overrides.yaml").write_text("kind: Tenant\nname: kanzlei-brandt\nversion: BASIC\n",
                                            encoding="utf-8")
    result = cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    assert "internal error" not in result.output
    assert "Tenant 'kanzlei-brandt' is overridden twice" in result.stderr
    assert "kanzlei-brandt/more-overrides.yaml:1" in result.stderr
    assert "kanzlei-brandt/overrides.yaml:3" in result.stderr


# ---------------------------------------------------------------------------
# Command-line errors
# ---------------------------------------------------------------------------

def test_render_of_a_missing_directory_is_a_usage_error(tmp_path):
    # Usage errors exit 1 like every error: under --detailed-exitcode, 2 means "changes".
    result = cli("render", "no-such-env", cwd=tmp_path)
    assert result.returncode == 1, result.output
    assert "internal error" not in result.output
    assert "does not exist" in result.stderr


@pytest.mark.xfail(strict=True, reason="an overridden document has one `file` (the override's), "
                   "and validate.py resolves every relative path of it against that file: the "
                   "template's `password: {file: secrets/…}` breaks when the override lives in a "
                   "sub-directory of the environment")
def test_override_in_a_subdirectory_keeps_the_template_paths(workspace):
    env = workspace("kanzlei-brandt")
    (env / "sub").mkdir()
    (env / "overrides.yaml").rename(env / "sub" / "overrides.yaml")
    result = cli("validate", "--strict", env.name, cwd=env.parent)
    assert result.returncode == 0, result.output


# ---------------------------------------------------------------------------
# Hard limits: time, memory and output per template use, in a child process
# ---------------------------------------------------------------------------

STOPPED = "the template was stopped"
LIMITS = {
    "nested-loops": ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                     "{% endfor %}", "took longer than the limit"),
    "loop-building-output": ("{% for i in range(100000) %}{% for j in range(100000) %}x"
                             "{% endfor %}{% endfor %}", STOPPED),
    "center": ("{{ who.center(4000000000) }}", "more memory than allowed"),
    "ljust-under-the-memory-limit": ("{{ who.ljust(20000000) }}", "larger than 16 MB"),
    "percent-width": ("{{ '%4000000000d' % 1 }}", "more memory than allowed"),
    "format-width": ("{{ '{:>4000000000}'.format(who) }}", "more memory than allowed"),
    "format-filter": ("{{ '%4000000000s' | format(who) }}", "more memory than allowed"),
}


@pytest.mark.parametrize("case", list(LIMITS))
def test_template_limits_cannot_be_bypassed(case, tmp_path):
    expression, phrase = LIMITS[case]
    env = _template_env(tmp_path, ACCOUNT.format(expression))
    result = cli("render", "env", cwd=tmp_path, env={"RECONCILER_TEMPLATE_TIMEOUT": "3"})
    assert_clean_failure(result)
    assert STOPPED in result.stderr and phrase in result.stderr, result.stderr


def test_slow_pattern_in_the_parameter_schema_is_stopped(tmp_path):
    env = _template_env(tmp_path, ACCOUNT.format("{{ who }}"))
    schema = tmp_path / "tpl" / "parameters.schema.json"
    parameters = json.loads(schema.read_text(encoding="utf-8"))
    parameters["properties"]["who"]["pattern"] = "^(a+)+$"  # catastrophic backtracking
    schema.write_text(json.dumps(parameters), encoding="utf-8")
    (env / "use.yaml").write_text("kind: Use\ntemplate: ../tpl\nvalues:\n  who: "
                                  + "a" * 40 + "!\n", encoding="utf-8")
    result = cli("validate", "env", cwd=tmp_path, env={"RECONCILER_TEMPLATE_TIMEOUT": "2"})
    assert result.returncode == 1 and "Traceback" not in result.output, result.output
    assert "took longer than the limit of 2 s" in result.stderr, result.stderr


@pytest.mark.parametrize("ref", ["file:///etc/passwd", "http://127.0.0.1:9/x.json",
                                 "../env/secrets/admin.json", "other.schema.json#/nope"])
def test_schema_refs_outside_the_template_are_never_fetched(ref, tmp_path):
    env = _template_env(tmp_path, ACCOUNT.format("{{ who }}"))
    (env / "secrets").mkdir()
    (env / "secrets" / "admin.json").write_text('{"leaked-secret": true}', encoding="utf-8")
    schema = tmp_path / "tpl" / "parameters.schema.json"
    parameters = json.loads(schema.read_text(encoding="utf-8"))
    parameters["properties"]["who"] = {"$ref": ref}
    schema.write_text(json.dumps(parameters), encoding="utf-8")
    result = cli("validate", "env", cwd=tmp_path, env={"RECONCILER_TEMPLATE_TIMEOUT": "5"})
    assert result.returncode == 1 and "Traceback" not in result.output, result.output
    assert "not a schema file of this template" in result.stderr, result.stderr
    assert "leaked" not in result.output and "root:" not in result.output


def test_schema_ref_to_a_file_of_the_template_works(tmp_path):
    env = _template_env(tmp_path, ACCOUNT.format("{{ who }}"))
    (tmp_path / "tpl" / "names.json").write_text(
        json.dumps({"$defs": {"name": {"type": "string", "pattern": "^[A-Z]"}}}), encoding="utf-8")
    schema = tmp_path / "tpl" / "parameters.schema.json"
    parameters = json.loads(schema.read_text(encoding="utf-8"))
    parameters["properties"]["who"] = {"$ref": "names.json#/$defs/name"}
    schema.write_text(json.dumps(parameters), encoding="utf-8")
    assert cli("validate", "env", cwd=tmp_path).returncode == 0
    (env / "use.yaml").write_text("kind: Use\ntemplate: ../tpl\nvalues:\n  who: eve\n",
                                  encoding="utf-8")
    result = cli("validate", "env", cwd=tmp_path)
    assert result.returncode == 1 and "does not match" in result.stderr, result.output


def test_template_includes_only_template_files(tmp_path):
    env = _template_env(tmp_path, ACCOUNT.format("{% include 'admin-password.txt' %}"))
    (tmp_path / "tpl" / "admin-password.txt").write_text("leaked-secret\n", encoding="utf-8")
    result = cli("render", "env", cwd=tmp_path)
    assert_clean_failure(result)
    assert "'admin-password.txt' is not a template file (*.j2)" in result.stderr
    assert "leaked" not in result.output


@pytest.mark.parametrize("where", [".", ".."])
def test_a_template_directory_cannot_be_or_contain_the_environment(where, tmp_path):
    """`template: .` with `{% include 'secrets/…' %}` would print a secret into the plan."""
    env = tmp_path / "outer" / "env"
    (env / "secrets").mkdir(parents=True)
    (env / "secrets" / "pin.yaml.j2").write_text("leaked-secret\n", encoding="utf-8")
    home = env if where == "." else env.parent
    (home / "parameters.schema.json").write_text(json.dumps(PARAMETERS), encoding="utf-8")
    (home / "t.yaml.j2").write_text(ACCOUNT.format("{% include 'secrets/pin.yaml.j2' %}"),
                                    encoding="utf-8")
    (env / "use.yaml").write_text(f"kind: Use\ntemplate: {where}\nvalues:\n  who: Eve\n",
                                  encoding="utf-8")
    result = cli("render", "env", cwd=env.parent)
    assert_clean_failure(result)
    assert "is or contains this environment" in result.stderr, result.stderr
    assert "leaked" not in result.output
