"""Benchmark: the Kamailio target at 10k and 100k extensions, as whole CLI processes.

    python bench/kamailio.py [--sizes 10000,100000] [--no-postgres] [--out bench/out]

For each size it generates the environment of bench/run.py (100 tenants) with
a SIP domain per tenant and a SIP password per extension, once without and
once with a `kind: Target` (Kamailio), and measures (wall s / CPU s / peak MiB):
apply of all creates state-only, then to Kamailio on SQLite and on PostgreSQL
(a fresh database made by Debian's schema scripts each time), and a no-op plan
state-only and with the target read back. Every step starts with an empty cache
directory: no plan is served from the cache and every file is parsed. The
goals: the target read adds ≤ 1 s to a 100k no-op plan; apply to Kamailio
≤ 2× the state-only apply.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from run import ROOT, generate, measure, new_sqlite_state, reconciler  # noqa: E402

TARGET = """kind: Target
name: sip-bench
provider: kamailio
database: {env: KAMAILIO_DB}
"""
SIP_PASSWORD = "Vq7#Lm2-xR9p_Tz4Wk"


def with_sip(env: Path, target: bool) -> Path:
    """Give every tenant a SIP domain and every extension a SIP password (and a Target)."""
    for path in (env / "customers").glob("*.yaml"):
        name = path.stem
        text = path.read_text()
        text = text.replace("dial_plan: 4\n", f"dial_plan: 4\nsip_domain: {name}.bench.example\n")
        text = text.replace("    reference: PO-4711\n",
                            "    reference: PO-4711\n    sip_password: {env: BENCH_SIP}\n")
        path.write_text(text)
    if target:
        (env / "target.yaml").write_text(TARGET)
    return env


def init_kamailio(url: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "kamailio.sh"), "init", url], check=True)


def run_size(size: int, work: Path, cluster) -> list[tuple[str, dict]]:
    plain = with_sip(generate(work / f"plain-{size}", size), target=False)
    targeted = with_sip(generate(work / f"target-{size}", size), target=True)
    variables = {"BENCH_SIP": SIP_PASSWORD, "RECONCILER_CACHE_DIR": str(work / "no-cache")}
    rows = []

    def state(label: str) -> str:
        return new_sqlite_state(work / f"state-{label}-{size}.db")

    def cold(command: list[str], env: dict) -> dict:
        """Every step starts without a cache: no plan served, every file parsed."""
        shutil.rmtree(work / "no-cache", ignore_errors=True)
        return measure(command, env)

    only = state("only")
    rows.append(("apply all creates, state only (SQLite)",
                 cold(reconciler("apply", str(plain), "--state", only, "--auto-approve"),
                      variables)))
    rows.append(("plan, no changes, state only",
                 cold(reconciler("plan", str(plain), "--state", only), variables)))
    databases = [("SQLite", f"sqlite:///{work / f'kamailio-{size}.sqlite'}")]
    if cluster is not None:
        databases.append(("PostgreSQL", cluster.create_database(f"kamailio_{size}")))
    for label, url in databases:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        init_kamailio(url)
        kam = {**variables, "KAMAILIO_DB": url}
        target_state = state(f"kamailio-{label}")
        rows.append((f"apply all creates to Kamailio on {label}",
                     cold(reconciler("apply", str(targeted), "--state", target_state,
                                     "--auto-approve"), kam)))
        rows.append((f"plan, no changes, reading Kamailio on {label}",
                     cold(reconciler("plan", str(targeted), "--state", target_state), kam)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    cluster = None
    if not args.no_postgres:
        from pgcluster import Cluster

        cluster = Cluster()
        cluster.start()
    try:
        results = {size: run_size(size, args.out, cluster) for size in sizes}
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.2f}\n")
    print("| step | " + " | ".join(f"{s:,} ext" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for index, (label, _) in enumerate(results[sizes[0]]):
        cells = [results[s][index][1] for s in sizes]
        print(f"| {label} | " + " | ".join(
            f"{c['wall']:.2f} / {c['cpu']:.2f} / {c['rss_mib']:.0f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
