"""Canary PINs and passwords through every way in and every artifact out.

Random 4-digit canary PINs (plain, `{env:}`, `{file:}`, a TSV row, a template's
TSV) and canary passwords go through validate, plan in every format, saved
plans, apply of a saved plan, `render`, `export`, `-v` logs, a forced internal
error and a failed write; then every output, every file reconciler wrote and a
dump of the state (raw SQLite bytes, or `pg_dump`) are searched for the
canaries, and all 10,000 PINs are tried against all of it together
(`bruteforce.recover_pins`): nothing may be found.
"""

from __future__ import annotations

import glob
import hashlib
import re
import secrets
import shutil
import string
import subprocess
from pathlib import Path

import pytest

from bruteforce import recover_pins
from conftest import EXAMPLES, ROOT, Result, new_sqlite_state, run_cli
from helpers import edit
from reconciler.secrets import password_problem

MWS = "main-with-subaccounts"
HEAD = "tenant-mustermensch.yaml"
KEY = {"RECONCILER_SECRET_KEY": secrets.token_hex(32)}
# 4-digit strings the examples already hold (extension numbers, years …) make no canary.
_EXAMPLE_NUMBERS = set(re.findall(r"(?<!\d)\d{4}(?!\d)", "\n".join(
    p.read_text(encoding="utf-8", errors="replace")
    for p in (ROOT / "examples").rglob("*") if p.is_file())))


def _pin(taken: set[str]) -> str:
    while True:
        value = f"{secrets.randbelow(10_000):04d}"
        if value not in _EXAMPLE_NUMBERS and value not in taken:
            taken.add(value)
            return value


def _password() -> str:
    alphabet = string.ascii_letters + string.digits + "#%+-.:=?@^_~"
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(20))
        if password_problem(value) is None:
            return value


def _workspace(tmp_path: Path, pins: dict[str, str], passwords: dict[str, str]) -> Path:
    """tmp/repo with three environments carrying canaries every way they can come in."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / MWS, repo / "mws")
    shutil.copytree(EXAMPLES / "comuniq-one-4digit", repo / "tsv")
    shutil.copytree(ROOT / "examples" / "templates", repo / "templates")
    shutil.copytree(ROOT / "examples" / "customers" / "autohaus-keller", repo / "customers" / "tpl")
    mws = repo / "mws"
    edit(mws / HEAD, '    name: Lager\n    display_name: Lager Oranienplatz\n    pin: "0000"',
         f'    name: Lager\n    display_name: Lager Oranienplatz\n    pin: "{pins["plain"]}"')
    edit(mws / HEAD, "pin: {file: secrets/mustermensch-gf-pin.txt}", "pin: {env: CANARY_PIN}")
    (mws / "secrets" / "palmer-pin.txt").write_text(pins["file"] + "\n", encoding="utf-8")
    (mws / "secrets" / "mustermensch-admin.txt").write_text(passwords["file"] + "\n",
                                                            encoding="utf-8")
    edit(mws / "tenant-mustermensch-filiale.yaml",
         "password: {file: secrets/mustermensch-filiale-admin.txt}", "password: {env: CANARY_PW}")
    edit(repo / "tsv" / "staff.tsv", "1100\tAnna Becker\t0000\t", f"1100\tAnna Becker\t{pins['tsv']}\t")
    edit(repo / "customers" / "tpl" / "staff.tsv", "\t0000\t", f"\t{pins['template']}\t")
    (repo / "customers" / "tpl" / "secrets" / "admin-password.txt").write_text(
        passwords["template"] + "\n", encoding="utf-8")
    return repo


def _state_dump(state_url: str, tmp_path: Path) -> bytes:
    if state_url.startswith("sqlite:///"):
        db = Path(state_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    pg_dump = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    out = tmp_path / "dump.sql"
    subprocess.run([pg_dump, "--no-owner", "-f", str(out), state_url.replace("+psycopg", "")],
                   check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.slow
def test_no_artifact_reveals_or_lets_anyone_test_a_pin(state_url, tmp_path):
    taken: set[str] = set()
    pins = {way: _pin(taken) for way in ("plain", "env", "file", "tsv", "template", "new")}
    passwords = {way: _password() for way in ("env", "file", "template", "new")}
    repo = _workspace(tmp_path, pins, passwords)
    cache = tmp_path / "cache"
    summary = tmp_path / "step-summary.md"
    variables = {**KEY, "CANARY_PIN": pins["env"], "CANARY_PW": passwords["env"],
                 "RECONCILER_CACHE_DIR": str(cache), "GITHUB_STEP_SUMMARY": str(summary)}
    envs = ["mws", "tsv", "customers/tpl"]
    outputs: list[tuple[str, Result]] = []

    def run(label: str, *args, codes=(0,), extra: dict | None = None) -> Result:
        result = run_cli(*args, "--state", state_url, cwd=repo, env={**variables, **(extra or {})})
        assert result.returncode in codes, f"{label}: {result.output}"
        outputs.append((label, result))
        return result

    def run_plain(label: str, *args, codes=(0,)) -> Result:
        result = run_cli(*args, cwd=repo, env=variables)
        assert result.returncode in codes, f"{label}: {result.output}"
        outputs.append((label, result))
        return result

    for env in envs:
        run_plain(f"validate {env}", "validate", env, codes=(0, 1))
        run_plain(f"render {env}", "render", env)
        for fmt in ("text", "markdown", "json", "github"):
            run(f"plan {env} {fmt}", "plan", env, "--format", fmt)
        run(f"plan -v {env}", "-v", "plan", env)
        saved = tmp_path / "plans" / f"{env.replace('/', '-')}.json"
        run(f"plan --out {env}", "plan", env, "--out", saved)
        run(f"apply -v {env}", "-v", "apply", saved)
    run("plan without key", "plan", "mws", extra={"RECONCILER_SECRET_KEY": ""})
    # A changed PIN and password: noticed through the keyed fingerprints, never shown.
    changed = {"CANARY_PIN": pins["new"], "CANARY_PW": passwords["new"]}
    result = run("plan changed", "plan", "mws", "--format", "json", extra=changed)
    assert result.stdout.count("(sensitive value changed)") == 2, result.stdout
    run("plan changed text", "plan", "mws", extra=changed)
    run("apply changed -v", "-v", "apply", "mws", "--auto-approve", extra=changed)
    run("forced internal error", "-v", "plan", "mws", codes=(1,), extra={"RECONCILER_FAULT_BUG": "1"})
    assert "internal error: RuntimeError" in outputs[-1][1].stderr
    run("failed write", "-v", "apply", "mws", "--auto-approve", codes=(1,),
        extra={**changed, "CANARY_PIN": pins["env"], "RECONCILER_FAULT_FAIL_AT": "1"})
    run("export", "export", "--account", "1111111", "--to", tmp_path / "export")

    # Every output, every file reconciler wrote (plans, cache, export, summary, state), the dump.
    artifacts: dict[str, bytes] = {f"{label} (output)": r.output.encode() for label, r in outputs}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and repo not in p.parents]
    assert any(p.suffix == ".json" and cache in p.parents for p in written), "the cache was used"
    for path in written:
        artifacts[str(path.relative_to(tmp_path))] = path.read_bytes()
    artifacts["state dump"] = _state_dump(state_url, tmp_path)
    assert b"hmac-sha256:" in artifacts["state dump"]  # the fingerprints are there to attack

    canaries = [*pins.values(), *passwords.values()]
    for name, blob in artifacts.items():
        for canary in passwords.values():
            assert canary.encode() not in blob, f"a password leaked into {name}"
        for way, pin in pins.items():
            # A 4-digit PIN occurs in any long text by chance: look for it as a value.
            for needle in (f'"{pin}"', f"'{pin}'", f": {pin}\n", f"\t{pin}\t", f"={pin}"):
                assert needle.encode() not in blob, f"the {way} PIN leaked into {name}"
    assert canaries

    subjects = [f"extension/{t}/pin" for t in ("mustermensch/130", "mustermensch/101",
                                                "mustermensch/102", "lindner-immobilien/1100")]
    everything = b"\n".join(artifacts.values())
    assert recover_pins(everything, subjects) == set(), "a PIN was recovered by brute force"


def test_the_brute_force_finds_what_version_1_stored():
    """The brute force can fail: it recovers PINs from v1's `salt$sha256(salt, PIN)`."""
    salt = secrets.token_hex(8)
    stored = salt + "$" + hashlib.sha256((salt + "\0" + "4821").encode()).hexdigest()
    assert recover_pins(f'{{"secrets": "{{\\"pin\\": \\"{stored}\\"}}"}}') == {"4821"}
    keyed = "hmac-sha256:" + secrets.token_hex(6) + ":" + hashlib.sha256(b"x").hexdigest()
    assert recover_pins(keyed) == set()


@pytest.mark.slow
def test_no_sip_password_or_ha1_leaves_the_kamailio_target(tmp_path):
    """SIP passwords (env and file) through plan, saved plan, apply, drift and failures of
    the Kamailio path: neither they nor the ha1/ha1b hashes written to Kamailio (each one
    lets a reader test password guesses offline) appear in any output, file or the state."""
    from kamailio import DOMAIN, Platform, ha1, init_db

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "sip-kamailio", repo / "sip")
    canary = {"100": _password(), "101": _password()}
    edit(repo / "sip" / "tenant-sonnenschein.yaml", "sip_password: {file: secrets/sip-100.txt}",
         "sip_password: {env: CANARY_SIP}")
    (repo / "sip" / "secrets" / "sip-101.txt").write_text(canary["101"] + "\n")
    kamailio = tmp_path / "kamailio" / "kamailio.sqlite"
    kamailio.parent.mkdir()
    init_db(f"sqlite:///{kamailio}")
    (tmp_path / "state").mkdir()
    state = new_sqlite_state(tmp_path / "state" / "state.db")
    variables = {**KEY, "CANARY_SIP": canary["100"], "KAMAILIO_DB": f"sqlite:///{kamailio}",
                 "RECONCILER_CACHE_DIR": str(tmp_path / "cache")}
    outputs: list[Result] = []

    def run(*args, codes=(0,), extra: dict | None = None) -> Result:
        result = run_cli(*args, cwd=repo, env={**variables, **(extra or {})})
        assert result.returncode in codes, result.output
        outputs.append(result)
        return result

    run("validate", "sip")
    run("render", "sip")
    for fmt in ("text", "markdown", "json", "github"):
        run("plan", "sip", "--state", state, "--format", fmt)
    saved = tmp_path / "plans" / "sip.json"
    run("-vv", "plan", "sip", "--state", state, "--out", saved)
    run("-vv", "apply", saved, "--state", state)
    Platform(f"sqlite:///{kamailio}").sql("update subscriber set ha1 = 'x' where username = '101'")
    for fmt in ("text", "json"):
        run("-vv", "plan", "sip", "--state", state, "--format", fmt)
    run("-vv", "apply", "sip", "--state", state, "--auto-approve", codes=(1,),
        extra={"RECONCILER_FAULT_FAIL_AT": "1"})
    run("-vv", "plan", "sip", "--state", state, codes=(1,), extra={"RECONCILER_FAULT_BUG": "1"})
    run("-vv", "apply", "sip", "--state", state, "--auto-approve",
        extra={"CANARY_SIP": _password()})  # a new password: the old ha1 is replaced
    run("export", "--state", state, "--account", "4455660", "--to", tmp_path / "export")

    artifacts = {f"output {n}": r.output.encode() for n, r in enumerate(outputs)}
    for path in tmp_path.rglob("*"):
        if path.is_file() and repo not in path.parents and kamailio.parent not in path.parents:
            artifacts[str(path.relative_to(tmp_path))] = path.read_bytes()
    needles = {}
    for number, password in canary.items():
        needles[f"password {number}"] = password
        needles[f"ha1 {number}"] = ha1(number, DOMAIN, password)
        needles[f"ha1b {number}"] = ha1(f"{number}@{DOMAIN}", DOMAIN, password)
    for name, blob in artifacts.items():
        for what, needle in needles.items():
            assert needle.encode() not in blob, f"the {what} leaked into {name}"
