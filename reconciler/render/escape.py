"""Output escaping: the one place where user text is made inert for each output format.

Names, file names, messages and values come from manifests that anyone who can
open a pull request controls. Before they reach a terminal, a GitHub Actions
log or a pull-request comment they go through exactly one of these functions:

- `plain(text)`: terminals and logs. Control characters (C0, DEL, C1, so also
  every ANSI escape sequence), Unicode line/paragraph separators and bidi
  overrides are shown as visible escapes (`\\x1b`, `\\n`, `\\u202e`), so user
  text can neither move the cursor, clear the screen, nor start a new line.
- `github_log(text)`: a line of the plain-text log GitHub Actions parses for
  workflow commands: `plain` plus no `::` at the start and no `##[` anywhere.
- `github_data(text)` / `github_property(text)`: the message and the
  properties of a workflow command, escaped the way the runner unescapes them
  (`%` `\\r` `\\n`, and in properties also `:` `,`).
- `stop_commands(text)`: wraps free text so the runner ignores any command in it.
- `markdown_text`, `markdown_code`, `markdown_fence`, `markdown_html`: user text
  in markdown prose, an inline code span, a fenced block, or inside an HTML
  block (`<summary>`): it cannot close its container, inject HTML, or mention
  people.

JSON needs nothing here: `json.dumps` escapes every control character.
"""

from __future__ import annotations

import html
import re
import secrets

# C0 except nothing, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates,
# and the BOM / zero-width no-break space that can hide text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: object) -> str:
    """User text for a terminal or log: one line, no control characters."""
    text = str(text)
    # Printable text has none of _CONTROL's characters (they are all Cc, Cf, Zl or Zp):
    # a check in C for the millions of lines of a large plan.
    return text if text.isprintable() else _CONTROL.sub(_visible, text)


# -- GitHub Actions ------------------------------------------------------------

_LEADING_COMMAND = re.compile(r"^(\s*):")


def github_log(text: object) -> str:
    """A log line the runner cannot take for a workflow command (`::cmd` or `##[cmd]`)."""
    line = plain(text).replace("##[", "#\u200b#[")
    return _LEADING_COMMAND.sub(lambda m: m.group(1) + "\u200b:", line)


def github_data(text: object) -> str:
    """The message of a workflow command (after the second `::`)."""
    return plain_keep_newlines(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: object) -> str:
    """A property value of a workflow command (`file=`, `title=`)."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def plain_keep_newlines(text: object) -> str:
    """Like `plain`, but newlines stay (for formats that escape them their own way)."""
    return "\n".join(plain(line) for line in str(text).split("\n"))


def stop_commands(text: str) -> str:
    """`text` between `::stop-commands::TOKEN` and `::TOKEN::`: the runner runs nothing in it.

    The token is random per call, so text cannot end the pause early.
    """
    token = "reconciler-" + secrets.token_hex(16)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"::stop-commands::{token}\n{body}::{token}::\n"


# -- Markdown (GitHub pull-request comments) -----------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"(?<![\w.])@(?=\w)")


def markdown_text(text: object) -> str:
    """User text in markdown prose or a table cell: literal, no HTML, no @mentions."""
    escaped = html.escape(plain(text), quote=False)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)
    return _MENTION.sub("@\u200b", escaped)


def markdown_code(text: object, table: bool = False) -> str:
    """User text as an inline code span that it cannot close (nor, in a table, its cell)."""
    content = plain(text)
    if table:  # GFM splits table cells at '|' even inside code spans
        content = content.replace("|", "\\|")
    ticks = "`" * (_longest_run(content, "`") + 1)
    pad = " " if content.startswith("`") or content.endswith("`") or not content.strip() else ""
    return f"{ticks}{pad}{content}{pad}{ticks}"


def markdown_fence(lines: list[str], info: str = "") -> list[str]:
    """A fenced code block around `lines` (each made `plain`) that no line can close."""
    body = [plain(line) for line in lines]
    ticks = "`" * max(3, max((_longest_run(line, "`") for line in body), default=0) + 1)
    return [ticks + info, *body, ticks]


def markdown_html(text: object) -> str:
    """User text inside an HTML block such as `<summary>`: HTML-escaped, one line."""
    return _MENTION.sub("@\u200b", html.escape(plain(text), quote=True)).replace("`", "&#96;")


def _longest_run(text: str, char: str) -> int:
    longest = current = 0
    for c in text:
        current = current + 1 if c == char else 0
        longest = max(longest, current)
    return longest
