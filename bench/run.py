"""Benchmark: reconciler on 1k, 10k and 100k extensions, as whole CLI processes.

    python bench/run.py [--sizes 1000,10000,100000] [--no-postgres] [--out bench/out]

For each size it generates one environment (100 tenants, one file each, up to
1,000 extensions per tenant) plus a variant whose extensions come from TSV
batch files, and measures wall time, CPU time (user+sys) and peak RSS of:
validate; apply of all creates into an empty SQLite state and into
PostgreSQL; plan without changes (cold: no cache; warm: files unchanged);
plan with 1 % of extensions changed; export; validate of the TSV variant; and
the baseline "parse the same files with ruamel.yaml's C safe loader, nothing
else" in one process. Prints a Markdown table and the fitted growth exponent.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANTS = 100
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
    """One partner environment with 100 tenants sharing `extensions` extensions."""
    rng = random.Random(seed)
    if target.exists():
        shutil.rmtree(target)
    (target / "tenants").mkdir(parents=True)
    (target / "secrets").mkdir()
    per_tenant = extensions // TENANTS
    with open(target / "accounts.yaml", "w") as out:
        out.write('kind: Account\ncustomer_number: "7000000"\nname: Bench Partner GmbH\n'
                  "contact: Bea Bench\naddress: Benchstr. 1, Berlin\n---\n"
                  "kind: BasePackage\nid: cf-bench\naccount: \"7000000\"\nproduct: CompanyFlex\n"
                  "parallel_calls: 10000\nbudgets: {national_eur: 5000}\nflatrates: [national]\n")
    for t in range(TENANTS):
        name = f"tenant-{t:03d}"
        prefix = f"+49301{t:03d}000"
        password = "".join(rng.choice(PASSWORD_CHARS) for _ in range(20))
        (target / "secrets" / f"{name}.txt").write_text(password + "\n")
        lines = [
            "kind: Site", f"id: site-{t:03d}", "base_package: cf-bench", "usage: cloud_pbx",
            "ip_lines: 2", "number_blocks:", f'  - {{prefix: "{prefix}", from: "0", to: "99"}}',
            "---", "kind: Tenant", f"name: {name}", 'account: "7000000"', "type: STANDARD",
            "version: BASIC", "charset: UTF-8", "dial_plan: 4", f"sites: [site-{t:03d}]",
            f'main_number: "{prefix}-0"', "users:", f"  - email: admin@{name}.example",
            "    name: Admin", "    role: admin", f"    password: {{file: ../secrets/{name}.txt}}",
        ]
        rows = [(str(1000 + i), f"Mitarbeiter {t}-{i}", "0000", rng.choice(["030", "089", "040"]),
                 f"MA {t}-{i}", f"ma{i}@{name}.example") for i in range(per_tenant)]
        if batch:
            lines.append(f"extensions_from: [{name}.tsv]")
            (target / "tenants" / f"{name}.tsv").write_text(
                "".join("\t".join(row) + "\n" for row in rows))
        elif rows:
            lines.append("extensions:")
            for number, ext_name, pin, area, display, email in rows:
                lines += [f'  - number: "{number}"', f"    name: {ext_name}",
                          f"    display_name: {display}", f"    email: {email}",
                          f'    pin: "{pin}"', f'    area_code: "{area}"',
                          "    product: light_user", "    addons: [voicemail]",
                          "    start_date: 2026-11-01", "    reference: PO-4711"]
        (target / "tenants" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return target


def change_one_percent(env: Path) -> None:
    for path in sorted((env / "tenants").glob("*.yaml")):
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


def run_size(size: int, work: Path, pg_url: str | None) -> list[tuple[str, dict]]:
    env = generate(work / f"env-{size}", size)
    tsv = generate(work / f"tsv-{size}", size, batch=True)
    state = f"sqlite:///{work / f'state-{size}.db'}"
    cache = {"RECONCILER_CACHE_DIR": str(work / f"cache-{size}")}
    shutil.rmtree(work / f"cache-{size}", ignore_errors=True)
    rows = [("parse baseline (ruamel C safe loader, 1 process)",
             measure([sys.executable, "-c", BASELINE, str(env)]))]
    rows.append(("validate", measure(reconciler("validate", str(env)), cache)))
    rows.append(("validate, extensions from TSV", measure(reconciler("validate", str(tsv)), cache)))
    rows.append(("apply all creates, SQLite",
                 measure(reconciler("apply", str(env), "--state", state, "--auto-approve"), cache)))
    if pg_url:
        rows.append(("apply all creates, PostgreSQL",
                     measure(reconciler("apply", str(env), "--state", pg_url, "--auto-approve"),
                             cache)))
    shutil.rmtree(work / f"cache-{size}", ignore_errors=True)
    rows.append(("plan, no changes (cold)", measure(reconciler("plan", str(env), "--state", state),
                                                     cache)))
    rows.append(("plan, no changes (warm)", measure(reconciler("plan", str(env), "--state", state),
                                                     cache)))
    change_one_percent(env)
    rows.append(("plan, 1 % changed", measure(reconciler("plan", str(env), "--state", state),
                                               cache)))
    rows.append(("export", measure(reconciler("export", "--state", state, "--account", "7000000",
                                              "--to", str(work / f"export-{size}")))))
    return rows


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
    args = parser.parse_args()
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
            results[size] = run_size(size, work, pg_url)
            print(f"-- {size} extensions done", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
    report(sizes, results, work)


def report(sizes: list[int], results: dict[int, list], work: Path) -> None:
    names = [name for name, _ in results[sizes[0]]]
    header = "| step | " + " | ".join(f"{s:,} ext: wall s / CPU s / peak MiB" for s in sizes)
    print(header + " | exponent (wall) |")
    print("|---" * (len(sizes) + 2) + "|")
    for index, name in enumerate(names):
        cells = []
        walls = []
        for size in sizes:
            m = results[size][index][1]
            walls.append(m["wall"])
            cells.append(f"{m['wall']:.2f} / {m['cpu']:.2f} / {m['rss_mib']:.0f}")
        slope = exponent(sizes, walls) if len(sizes) > 1 else float("nan")
        print(f"| {name} | " + " | ".join(cells) + f" | {slope:.2f} |")
    for size in sizes:
        measured = dict(results[size])
        base = measured["parse baseline (ruamel C safe loader, 1 process)"]["wall"]
        cold = measured["plan, no changes (cold)"]["wall"]
        warm = measured["plan, no changes (warm)"]["wall"]
        print(f"\n{size:,} extensions: cold plan / parse = {cold / base:.2f}, "
              f"warm plan / parse = {warm / base:.2f}")
    (work / "results.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
