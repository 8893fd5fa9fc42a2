"""Phone numbers as intervals, line numbers in batch files, e-mails without case."""

from __future__ import annotations

import resource
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli
from reconciler.numbers import Held, IntervalIndex, block_intervals, first_overlaps

BLOCK = st.tuples(st.sampled_from(["+4930123", "+49301231", "+493012312", "+4989"]),
                  st.integers(0, 3000), st.integers(0, 3000))


def _numbers(prefix: str, low: int, high: int) -> set[str]:
    return {f"{prefix}{n}" for n in range(low, high + 1)}


@settings(max_examples=200, deadline=None)
@given(st.lists(BLOCK, min_size=1, max_size=6), BLOCK)
def test_intervals_find_exactly_the_blocks_that_share_a_number(blocks, query):
    """Same answer as expanding every block into its numbers (different prefixes included)."""
    blocks = [(p, min(a, b), max(a, b)) for p, a, b in blocks]
    prefix, low, high = query[0], min(query[1:]), max(query[1:])
    index = IntervalIndex(Held(i, n) for n, b in enumerate(blocks) for i in block_intervals(*b))
    wanted = _numbers(prefix, low, high)
    sharing = {n for n, b in enumerate(blocks) if _numbers(*b) & wanted}
    found = {hit.holder for i in block_intervals(prefix, low, high)
             if (hit := index.overlapping(i)) is not None}
    assert bool(found) == bool(sharing)
    assert found <= sharing
    pairs = first_overlaps([Held(i, n) for n, b in enumerate(blocks) for i in block_intervals(*b)])
    overlapping = any(_numbers(*a) & _numbers(*b) for x, a in enumerate(blocks)
                      for b in blocks[x + 1:])
    assert bool(pairs) == overlapping


def _limit_memory():
    limit = 1024 ** 3  # 1 GiB of address space: expanding the blocks needs more than 6 GB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_a_thousand_full_number_blocks_validate_in_little_memory(tmp_path):
    lines = ["kind: Account", 'customer_number: "1111111"', "name: A", "---",
             "kind: BasePackage", "id: bp", 'account: "1111111"', "parallel_calls: 3", "---",
             "kind: Site", "id: s1", "base_package: bp", "usage: cloud_pbx", "number_blocks:"]
    lines += [f'  - {{prefix: "+49301{i:06d}", from: "0", to: "99999"}}' for i in range(1000)]
    lines[-1] = '  - {prefix: "+49301000998", from: "5", to: "7"}'  # inside the one before
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "m.yaml").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "env" / "m.yaml").stat().st_size > 50_000
    proc = subprocess.run([sys.executable, "-m", "reconciler", "validate", "env"], cwd=tmp_path,
                          capture_output=True, text=True, preexec_fn=_limit_memory, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert ("env/m.yaml:1014:5: number block +49301000998 5–7 of site 's1' overlaps a block "
            "of site 's1' (at +493010009985)") in proc.stderr


def test_a_line_separator_in_a_batch_file_does_not_shift_lines(example):
    env = example("comuniq-one-4digit")
    staff = env / "staff.tsv"
    rows = staff.read_text(encoding="utf-8").split("\n")
    first = next(i for i, row in enumerate(rows) if row and not row.startswith("#"))
    columns = rows[first].split("\t")
    columns[1] += "\u2028\u0085\x0c"  # characters str.splitlines() would break at
    rows[first] = "\t".join(columns)
    bad = first + 3
    columns = rows[bad].split("\t")
    columns[3] = "999"
    rows[bad] = "\t".join(columns)
    staff.write_text("\n".join(rows), encoding="utf-8")
    result = run_cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1
    assert f"{env.name}/staff.tsv:{bad + 1}:" in result.stderr, result.stderr
    assert "column 4 (area_code): the area code is not valid" in result.stderr  # no cell is quoted


def test_e_mails_differing_only_in_case_are_one_user(example):
    env = example("main-with-subaccounts")
    tenant = next(p for p in env.glob("*.yaml") if "kind: Tenant" in p.read_text())
    text = tenant.read_text(encoding="utf-8")
    start = text.index("  - email:")
    end = text.index("\n  - ", start + 1) if "\n  - " in text[start + 1:] else len(text)
    user = text[start:end].rstrip("\n") + "\n"
    email = user.split("email:", 1)[1].split("\n", 1)[0].strip()
    twin = user.replace(email, email.upper()).replace("role: admin", "role: user")
    tenant.write_text(text.replace(user, user + twin, 1), encoding="utf-8")
    result = run_cli("validate", env.name, cwd=env.parent)
    assert result.returncode == 1, result.output
    assert f"user {email.upper()} is listed twice" in result.stderr
    assert "e-mail addresses ignore case" in result.stderr

