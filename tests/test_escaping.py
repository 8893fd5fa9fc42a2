"""Output injection: user text cannot steer a terminal, a GitHub Actions log or a PR comment."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from helpers import Env, applied_templates, make_env  # noqa: F401 - fixtures
from reconciler.render.escape import (
    github_data,
    github_log,
    github_property,
    markdown_code,
    markdown_fence,
    markdown_html,
    markdown_text,
    plain,
    stop_commands,
)

MWS = "main-with-subaccounts"
HEAD = "tenant-mustermensch.yaml"
# Clear screen, cursor home, fake prompt, GitHub commands old and new, a fence, HTML, a mention.
HOSTILE = ("\x1b[2J\x1b[H\u009b31m\r::error file=x::forged\n::add-mask::hidden\n##[warning]old\n"
           "```\n</details><img src=x onerror=alert(1)>|pipe|@octocat\u202egnp.exe\u2028::set-output")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


# -- the functions -------------------------------------------------------------

@given(st.text())
def test_plain_leaves_no_control_characters(text):
    assert not _CONTROLS.search(plain(text))


@given(st.text())
def test_the_fast_paths_give_what_the_general_escapes_give(text):
    """`plain` and `show` skip the regex and json.dumps for printable text: same result."""
    import json

    from reconciler.render import show
    from reconciler.render.escape import _CONTROL, _visible

    assert plain(text) == _CONTROL.sub(_visible, text)
    if not text.startswith("(sensitive value"):
        assert show(text) == json.dumps(text, ensure_ascii=False)


def test_plain_shows_what_it_removed():
    assert plain("a\x1b[2Jb\nc\u202e") == "a\\x1b[2Jb\\nc\\u202e"


@given(st.text())
def test_github_log_lines_are_never_commands(text):
    line = github_log(text)
    assert "\n" not in line and not line.lstrip().startswith("::") and "##[" not in line


@given(st.text())
def test_github_data_and_properties_stay_on_one_line(text):
    data, prop = github_data(text), github_property(text)
    for value in (data, prop):
        assert "\n" not in value and "\r" not in value and not _CONTROLS.search(value)
    assert "," not in prop and ":" not in prop
    # The runner unescapes %0A, %0D, %25 (and %3A, %2C in properties): the round trip is exact.
    unescaped = data.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
    assert unescaped == "\n".join(plain(line) for line in text.split("\n"))


def test_stop_commands_token_cannot_be_guessed_from_the_text():
    wrapped = stop_commands("::error::x\n")
    first, body, last = wrapped.splitlines()
    token = first.removeprefix("::stop-commands::")
    assert len(token) > 30 and last == f"::{token}::" and body == "::error::x"
    assert stop_commands("a") != stop_commands("a")


@given(st.text())
def test_markdown_fence_cannot_be_closed_from_inside(text):
    fence = markdown_fence(text.split("\n"))
    opening, body, closing = fence[0], fence[1:-1], fence[-1]
    assert opening == closing
    assert not any(line.lstrip().startswith(opening) for line in body)


@given(st.text())
def test_markdown_code_span_cannot_be_closed_from_inside(text):
    span = markdown_code(text)
    ticks = len(span) - len(span.lstrip("`"))
    inner = span[ticks:-ticks]
    assert "`" * ticks not in inner and not _CONTROLS.search(span)


@given(st.text())
def test_markdown_text_and_html_have_no_markup(text):
    for value in (markdown_text(text), markdown_html(text)):
        assert "<" not in value and ">" not in value and not _CONTROLS.search(value)
        assert not re.search(r"(?<![\w.])@\w", value)
    assert not re.search(r"(?<!\\)[`|*_\[\]]", markdown_text(text).replace("\\\\", ""))


# -- through the CLI -----------------------------------------------------------

def _hostile_env(make_env) -> Env:
    env = make_env(MWS)
    quoted = HOSTILE.encode("unicode_escape").decode().replace('"', '\\"')
    env.edit(HEAD, "    name: Lager\n", f'    name: "{quoted}"\n')
    return env


def test_text_plan_cannot_control_the_terminal(make_env):
    env = _hostile_env(make_env)
    result = env.plan()
    assert result.returncode == 0, result.output
    assert not _CONTROLS.search(result.stdout.replace("\n", ""))
    line = next(line for line in result.stdout.splitlines() if "forged" in line)
    assert line.strip().startswith("name:") and "u001b[2J" in line and "\\x9b31m" in line


def test_github_format_forges_no_workflow_command(make_env, tmp_path):
    env = _hostile_env(make_env)
    summary = tmp_path / "summary.md"
    result = env.plan("--format", "github", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    start = lines[0]
    assert start.startswith("::stop-commands::")
    token = start.removeprefix("::stop-commands::")
    end = lines.index(f"::{token}::")
    # Between the markers the runner executes nothing; after them only our annotations.
    for line in lines[1:end]:
        assert not line.lstrip().startswith("::") and "##[" not in line
    assert all(re.match(r"^::(error|warning) [^\n]*::", line) for line in lines[end + 1:])
    assert "add-mask" not in "".join(lines[end + 1:])
    assert not _CONTROLS.search(result.stdout.replace("\n", ""))
    _assert_safe_markdown(summary.read_text(encoding="utf-8"))


def test_markdown_comment_cannot_be_broken_out_of(make_env):
    env = _hostile_env(make_env)
    result = env.plan("--format", "markdown")
    assert result.returncode == 0, result.output
    _assert_safe_markdown(result.stdout)


def _assert_safe_markdown(md: str) -> None:
    """Outside code fences no HTML or mention of the hostile text; fences close where we close them."""
    assert not _CONTROLS.search(md.replace("\n", ""))
    outside, fence, fenced_hostile = [], None, 0
    for line in md.splitlines():
        if fence is None and line.startswith("```"):
            fence = line.rstrip("diff")
        elif fence is not None and line == fence:
            fence = None
        elif fence is not None:
            fenced_hostile += "forged" in line
        else:
            outside.append(line)
    assert fence is None and fenced_hostile == 1
    text = "\n".join(outside)
    assert "<img" not in text and "@octocat" not in text
    assert text.count("<details>") == text.count("</details>")


def test_hostile_file_name_in_diagnostics(make_env):
    env = make_env(MWS)
    bad = env.path / "x\x1b[2J\n::error::forged.yaml"
    bad.write_text("kind: Nonsense\n", encoding="utf-8")
    result = env.run("validate", env.name)
    assert result.returncode == 1
    assert "\x1b" not in result.output
    assert not any(line.lstrip().startswith("::") for line in result.output.splitlines())
    github = env.plan("--format", "github")
    assert github.returncode == 1 and "\x1b" not in github.output
    assert not any(line.lstrip().startswith("::error::forged")
                   for line in github.output.splitlines())
