"""The documentation a newcomer reads is complete and true: links resolve, examples work."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT, new_sqlite_state, run_cli

DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")
TEAM_ONLY = re.compile(r"\.\./shar[e]d\b|/wor[k]/")  # [x]: this file must not match itself


def _pages():
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md")),
            *sorted((ROOT / "examples").rglob("README.md"))]


def test_relative_links_resolve():
    broken = []
    for page in _pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(re.sub(r"``.*?``|`[^`\n]*`", "", text)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_every_page_is_in_the_index():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    missing = [page.name for page in DOCS.glob("*.md")
               if page.name != "README.md" and f"({page.name})" not in index]
    assert not missing, f"link these from docs/README.md: {missing}"
    assert "(docs/README.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_repository_names_no_team_only_files():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    offending = []
    for name in tracked:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".db"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if TEAM_ONLY.search(text):
            offending.append(name)
    assert not offending, offending


def test_getting_started_environment_validates_and_plans(tmp_path):
    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    manifest = re.search(r"`environments/acme/acme.yaml`:\n\n```yaml\n(.*?)```", text, re.S)
    env = tmp_path / "environments" / "acme"
    env.mkdir(parents=True)
    (env / "acme.yaml").write_text(manifest.group(1), encoding="utf-8")
    secret = {"ACME_ADMIN_PASSWORD": "a long and unguessable one"}
    validated = run_cli("validate", "environments/acme", cwd=tmp_path, env=secret)
    assert validated.returncode == 0 and "valid (0 errors, 0 warnings)" in validated.stdout, (
        validated.output)
    planned = run_cli("plan", "environments/acme", "--state", new_sqlite_state(tmp_path / "s.db"),
                      "--detailed-exitcode", cwd=tmp_path, env=secret)
    assert planned.returncode == 2 and "7 to create" in planned.stdout, planned.output
