"""Benchmark: reconciler from 1k to 1M extensions, as whole CLI processes.

    python bench/run.py [--sizes 1000,10000,100000,1000000] [--no-postgres] [--skip validate,tsv,json,onepct,export]
                        [--out bench/out]

For each size it generates one partner environment as partners write it (one
file per customer with its Account, BasePackage, Site and Tenant, up to 1,000
extensions per tenant: 1M extensions are 1,000 files) plus a variant whose
extensions come from TSV batch files, and measures wall time, CPU time
(user+sys, `os.wait4`) and peak RSS of: validate (both variants); a first plan
of all creates as JSON; apply of all creates into an empty SQLite state and
into PostgreSQL; plan without changes (cold: a fresh, empty cache; warm: files
unchanged); plan after one customer file changed; a cold plan with 1 % of the
extensions changed; export; and the baseline "parse the same files with
ruamel.yaml's C safe loader, nothing else" in one process. Every cold step
starts with an empty cache directory. Prints the machine, load and date, a
Markdown table and the fitted growth exponent (of CPU time: wall time is noisy
on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PER_TENANT = 1_000  # extensions per customer file
BENCH_KEY = "bench-fingerprint-key-0123456789abcdef"
PASSWORD_CHARS = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789#%+-_=."


def measure(command: list[str], env: dict | None = None) -> dict:
    """Run a command; wall seconds, CPU seconds and peak RSS (MiB) of that process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 2):
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{stderr[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def generate(target: Path, extensions: int, batch: bool = False, seed: int = 7) -> Path:
    """One partner environment: one file per customer, as partners write them.

    Each file holds the customer's Account, BasePackage, Site and Tenant (four
    documents) with up to PER_TENANT extensions; 1,000,000 extensions are
    1,000 customer files. With `batch`, the extensions come from a TSV file
    next to each customer file.
    """
    rng = random.Random(seed)
    if target.exists():
        shutil.rmtree(target)
    (target / "customers").mkdir(parents=True)
    (target / "secrets").mkdir()
    tenants = max(1, -(-extensions // PER_TENANT))
    for t in range(tenants):
        count = min(PER_TENANT, extensions - t * PER_TENANT)
        _customer_file(target, t, count, batch, rng)
    return target


def _customer_file(target: Path, t: int, count: int, batch: bool, rng: random.Random) -> None:
    name, number = f"tenant-{t:04d}", f"{7000000 + t}"
    prefix = f"+4930{t:04d}000"
    password = "".join(rng.choice(PASSWORD_CHARS) for _ in range(20))
    (target / "secrets" / f"{name}.txt").write_text(password + "\n")
    lines = [
        "# yaml-language-server: $schema=../../schemas/document.schema.json",
        "kind: Account", f'customer_number: "{number}"', f"name: Kunde {t} GmbH",
        f"contact: Kim Kunde {t}", f"address: Kundenweg {t + 1}, Berlin",
        "---",
        "kind: BasePackage", f"id: cf-{name}", f'account: "{number}"', "product: CompanyFlex",
        f"parallel_calls: {max(1, count // 5 + 1)}", "budgets: {national_eur: 500}",
        "flatrates: [national]",
        "---",
        "kind: Site", f"id: site-{name}", f"base_package: cf-{name}", "usage: cloud_pbx",
        f"address: Kundenweg {t + 1}, 10115 Berlin", "ip_lines: 2", "number_blocks:",
        f'  - {{prefix: "{prefix}", from: "0", to: "99"}}',
        "---",
        "kind: Tenant", f"name: {name}", f'account: "{number}"', "type: STANDARD",
        "version: BASIC", "charset: UTF-8", "dial_plan: 4", f"sites: [site-{name}]",
        f'main_number: "{prefix}-0"', "users:", f"  - email: admin@{name}.example",
        "    name: Admin", "    role: admin", f"    password: {{file: ../secrets/{name}.txt}}",
    ]
    rows = [(str(1000 + i), f"Mitarbeiter {t}-{i}", "0000", rng.choice(["030", "089", "040"]),
             f"MA {t}-{i}", f"ma{i}@{name}.example") for i in range(count)]
    if batch:
        lines.append(f"extensions_from: [{name}.tsv]")
        (target / "customers" / f"{name}.tsv").write_text(
            "".join("\t".join(row) + "\n" for row in rows))
    elif rows:
        lines.append("extensions:")
        for number_, ext_name, pin, area, display, email in rows:
            lines += [f'  - number: "{number_}"', f"    name: {ext_name}",
                      f"    display_name: {display}", f"    email: {email}",
                      f'    pin: "{pin}"', f'    area_code: "{area}"',
                      "    product: light_user", "    addons: [voicemail]",
                      "    start_date: 2026-11-01", "    reference: PO-4711"]
    (target / "customers" / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def change_one_percent(env: Path) -> None:
    for path in sorted((env / "customers").glob("*.yaml")):
        text = path.read_text()
        path.write_text(text.replace("    display_name: MA ", "    display_name: Mitarbeiterin ", 
                                     max(1, text.count("display_name: MA ") // 100)))


BASELINE = """
import gc, sys
from pathlib import Path
from ruamel.yaml import YAML
yaml = YAML(typ="safe", pure=False)
gc.disable()
for path in sorted(Path(sys.argv[1]).rglob("*.yaml")):
    list(yaml.load_all(path.read_text()))
"""


def reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def new_sqlite_state(path: Path) -> str:
    """A fresh, empty SQLite state at `path` (reconciler uses only states that exist)."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    url = f"sqlite:///{path}"
    subprocess.run(reconciler("init", "--state", url), check=True, stdout=subprocess.DEVNULL)
    return url


def change_one_file(env: Path) -> None:
    """Rename one extension in the first customer file (the incremental case)."""
    path = sorted((env / "customers").glob("*.yaml"))[0]
    text = path.read_text()
    path.write_text(text.replace("    display_name: MA ", "    display_name: Chefin ", 1))


def run_size(size: int, work: Path, pg_url: str | None, skip: set[str]) -> list[tuple[str, dict]]:
    env = generate(work / f"env-{size}", size)
    tsv = generate(work / f"tsv-{size}", size, batch=True) if "tsv" not in skip else env
    state_file = work / f"state-{size}.db"
    state = new_sqlite_state(state_file)
    cache_path = work / f"cache-{size}"
    # A fingerprint key, as CI configures one: without it secrets are write-only
    # and a plan that read a secret file is never cached.
    cache = {"RECONCILER_CACHE_DIR": str(cache_path), "RECONCILER_SECRET_KEY": BENCH_KEY}

    def cold(name: str, *args: str, url: str = state) -> tuple[str, dict]:
        shutil.rmtree(cache_path, ignore_errors=True)  # a cold run never sees a cache entry
        return name, measure(reconciler(*args, "--state", url) if url else reconciler(*args),
                             cache)

    rows = [("parse baseline (ruamel C safe loader, 1 process)",
             measure([sys.executable, "-c", BASELINE, str(env)]))]
    if "validate" not in skip:
        rows.append(cold("validate", "validate", str(env), url=""))
    if "tsv" not in skip:
        rows.append(cold("validate, extensions from TSV", "validate", str(tsv), url=""))
    if "json" not in skip:
        rows.append(cold("plan, all creates, --format json", "plan", str(env), "--format",
                         "json"))
    rows.append(cold("apply all creates, SQLite", "apply", str(env), "--auto-approve"))
    if pg_url:
        rows.append(cold("apply all creates, PostgreSQL", "apply", str(env), "--auto-approve",
                         url=pg_url))
    rows.append(cold("plan, no changes (cold)", "plan", str(env)))
    rows.append(("plan, no changes (warm)", measure(reconciler("plan", str(env), "--state", state),
                                                     cache)))
    change_one_file(env)
    rows.append(("plan, one customer file changed",
                 measure(reconciler("plan", str(env), "--state", state), cache)))
    if "onepct" not in skip:
        change_one_percent(env)
        rows.append(cold("plan, 1 % changed (cold)", "plan", str(env)))
    if "export" not in skip:
        rows.append(("export", measure(reconciler("export", "--state", state, "--account",
                                                  "7000000", "--to", str(work / f"export-{size}")))))
    return rows


def machine() -> str:
    """The machine and the moment, for the README."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo")
                   .read_text().splitlines() if line.startswith("MemTotal")), 0)
    import sqlite3

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores "
            f"({cpu}), {memory} GiB; {platform.platform()}; Python {platform.python_version()}; "
            f"SQLite {sqlite3.sqlite_version}; load average {load}")


def exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) over log(size): 1.0 is linear."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(v, 1e-3)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--skip", default="",
                        help="steps to leave out, comma-separated: validate, tsv, json, "
                             "onepct, export")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    cluster = None
    results: dict[int, list] = {}
    try:
        for size in sizes:
            pg_url = None
            if not args.no_postgres:
                if cluster is None:
                    sys.path.insert(0, str(ROOT / "tests"))
                    from pgcluster import Cluster

                    cluster = Cluster()
                    cluster.start()
                pg_url = cluster.create_database(f"bench_{size}")
            results[size] = run_size(size, work, pg_url, set(args.skip.split(",")))
            print(f"-- {size} extensions done", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
    report(sizes, results, work)
    print(f"\nmachine at the end: {machine()}")


def report(sizes: list[int], results: dict[int, list], work: Path) -> None:
    names = [name for name, _ in results[sizes[0]]]
    header = "| step | " + " | ".join(f"{s:,} ext: wall s / CPU s / peak MiB" for s in sizes)
    print(header + " | exponent (CPU) |")
    print("|---" * (len(sizes) + 2) + "|")
    for name in names:
        cells, cpus = [], []
        for size in sizes:
            m = dict(results[size]).get(name)
            if m is None:
                cells.append("–")
                continue
            cpus.append(m["cpu"])
            cells.append(f"{m['wall']:.2f} / {m['cpu']:.2f} / {m['rss_mib']:.0f}")
        slope = exponent(sizes, cpus) if len(cpus) == len(sizes) > 1 else float("nan")
        print(f"| {name} | " + " | ".join(cells) + f" | {slope:.2f} |")
    for size in sizes:
        measured = dict(results[size])
        base = measured["parse baseline (ruamel C safe loader, 1 process)"]
        cold = measured["plan, no changes (cold)"]
        warm = measured["plan, no changes (warm)"]
        one = measured["plan, one customer file changed"]
        print(f"\n{size:,} extensions: cold plan / parse = {cold['wall'] / base['wall']:.2f} "
              f"(CPU {cold['cpu'] / base['cpu']:.2f}); warm plan {warm['wall']:.2f} s; "
              f"one file changed / cold plan = {one['wall'] / cold['wall']:.2f} "
              f"(CPU {one['cpu'] / cold['cpu']:.2f}); "
              f"peak KiB per extension (cold plan) {cold['rss_mib'] * 1024 / size:.1f}")
    (work / "results.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
