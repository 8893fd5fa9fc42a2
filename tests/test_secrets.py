"""Secret canaries: PINs and passwords never appear in any output, saved plan or state."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import pytest

from sqlalchemy import MetaData, Table, create_engine, inspect, select

from conftest import EXAMPLES, run_cli
from helpers import Env, applied_templates, edit, make_env  # noqa: F401 - fixtures
from reconciler.secrets import password_problem

MWS = "main-with-subaccounts"
HEAD = "tenant-mustermensch.yaml"
_EXAMPLE_TEXT = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                          for p in (EXAMPLES / MWS).rglob("*") if p.is_file())


def _digits(n: int) -> str:
    while True:
        value = "".join(secrets.choice(string.digits) for _ in range(n))
        if value not in _EXAMPLE_TEXT:
            return value


def _password(n: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits + "#%+-.:=?@^_~"
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(n))
        if password_problem(value) is None:
            return value


def _use_canaries(env: Env) -> None:
    """Admin password and one PIN from the environment, one plain-text PIN."""
    edit(env.file(HEAD), "password: {file: secrets/mustermensch-admin.txt}",
         "password: {env: CANARY_PASSWORD}")
    edit(env.file(HEAD), "pin: {file: secrets/mustermensch-gf-pin.txt}", "pin: {env: CANARY_PIN}")
    edit(env.file(HEAD), '    name: Lager\n    display_name: Lager Oranienplatz\n    pin: "0000"',
         '    name: Lager\n    display_name: Lager Oranienplatz\n    pin: "{PLAIN_PIN}"')


def _state_bytes(state_url: str) -> bytes:
    """Everything the state holds: the SQLite files' raw bytes, or a dump of every table."""
    if state_url.startswith("sqlite:///"):
        db = Path(state_url.removeprefix("sqlite:///"))
        files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
        assert db in files
        return b"".join(p.read_bytes() for p in files)
    engine = create_engine("postgresql+psycopg://" + state_url.split("://", 1)[1])
    try:
        dump = []
        with engine.connect() as conn:
            for name in inspect(conn).get_table_names():
                table = Table(name, MetaData(), autoload_with=conn)
                dump += [repr(tuple(row)) for row in conn.execute(select(table))]
        return "\n".join(dump).encode()
    finally:
        engine.dispose()


def _validate(target: Env, *args: str, **kw):
    return run_cli("validate", *args, target.name, cwd=target.path.parent, **kw)


def _assert_absent(canaries: list[str], where: str, blob: str | bytes) -> None:
    for canary in canaries:
        needle = canary.encode() if isinstance(blob, bytes) else canary
        assert needle not in blob, f"a secret leaked into {where}"


@pytest.mark.slow  # ~45 s per backend: every output format and command
def test_secret_values_never_leave_the_manifests(make_env, state_url, tmp_path):
    env = make_env(MWS)
    pin, plain_pin, new_pin = _digits(8), _digits(8), _digits(8)
    password, new_password = _password(), _password()
    _use_canaries(env)
    edit(env.file(HEAD), "{PLAIN_PIN}", plain_pin)
    canaries = [pin, plain_pin, new_pin, password, new_password]
    key = {"RECONCILER_SECRET_KEY": secrets.token_hex(32)}  # changed values are noticed only keyed
    variables = {"CANARY_PIN": pin, "CANARY_PASSWORD": password, **key}
    outputs: dict[str, str] = {}

    def run(label: str, result, *codes: int):
        assert result.returncode in codes, result.output
        outputs[label] = result.output
        return result

    run("validate --strict", _validate(env, "--strict", env=variables), 1)
    run("plan", env.plan(env=variables), 0)
    run("plan markdown", env.plan("--format", "markdown", env=variables), 0)
    run("plan json", env.plan("--format", "json", env=variables), 0)
    plan_file = tmp_path / "plan.json"
    run("plan --out", env.plan("--out", plan_file, env=variables), 0)
    run("apply FILE", env.apply_file(plan_file, env=variables), 0)
    assert "(sensitive value)" in outputs["plan"] and "(sensitive value)" in outputs["plan json"]
    assert "PIN of extension 'Lager' is written in plain text" in outputs["plan"]

    # a new PIN and a new admin password: shown as changed, never as values
    variables = {"CANARY_PIN": new_pin, "CANARY_PASSWORD": new_password, **key}
    changed = run("plan changed", env.plan(env=variables), 0).stdout
    assert "~ extension mustermensch/101" in changed
    assert "~ user mustermensch/it@mustermensch.example" in changed
    assert changed.count("(sensitive value) → (sensitive value changed)") == 2, changed
    run("plan changed json", env.plan("--format", "json", env=variables), 0)
    run("plan changed markdown", env.plan("--format", "markdown", env=variables), 0)
    run("apply ENV", env.apply("--auto-approve", env=variables), 0)
    run("plan after", env.plan("--detailed-exitcode", env=variables), 0)
    assert "No changes." in outputs["plan after"]
    run("plan old values", env.plan("--detailed-exitcode",
                                    env={"CANARY_PIN": pin, "CANARY_PASSWORD": password, **key}), 2)

    for label, output in outputs.items():
        _assert_absent(canaries, label, output)
    _assert_absent(canaries, "the saved plan", plan_file.read_bytes())
    # nor any other file reconciler wrote (plan cache, lock files, the SQLite state)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and env.path not in p.parents]
    assert plan_file in written
    for path in written:
        _assert_absent(canaries, str(path.relative_to(tmp_path)), path.read_bytes())
    state = _state_bytes(state_url)
    assert b"mustermensch/101" in state and b"hmac-sha256:" in state  # keyed fingerprints
    _assert_absent(canaries, "the state", state)


def test_error_messages_never_echo_secrets(make_env):
    env = make_env(MWS)
    bad_pin, short_password = _digits(9), _password(20)[:10]  # 9 digits; under 12 characters
    plain_bad_pin = "P" + _digits(7)  # not digits
    _use_canaries(env)
    edit(env.file(HEAD), "{PLAIN_PIN}", plain_bad_pin)
    # the same admin password in a second tenant: reuse is an error that names the other place
    reused = _password()
    edit(env.file("tenant-mustermensch-filiale.yaml"),
         "password: {file: secrets/mustermensch-filiale-admin.txt}", "password: {env: REUSED}")
    edit(env.file("tenant-mustermensch-hamburg.yaml"),
         "password: {file: secrets/mustermensch-hamburg-admin.txt}", "password: {env: REUSED}")
    variables = {"CANARY_PIN": bad_pin, "CANARY_PASSWORD": short_password, "REUSED": reused}
    for args in (("plan",), ("plan", "--format", "json"), ("plan", "--format", "markdown"),
                 ("validate",)):
        result = (_validate(env, env=variables) if args == ("validate",)
                  else env.plan(*args[1:], env=variables))
        assert result.returncode == 1, result.output
        assert "must be 4–8 digits" in result.output
        assert "shorter than 12 characters" in result.output
        assert "is also used in tenant" in result.output
        _assert_absent([bad_pin, plain_bad_pin, short_password, reused], " ".join(args),
                       result.output)
