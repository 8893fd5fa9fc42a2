"""Time each stage of one plan in-process: python bench/stages.py ENV STATE_URL.

The collector is paused as in the CLI (`build_plan` runs under `paused_gc`,
which freezes what it built when it ends):
with it running, full collections rescan millions of live objects and the
stages after loading would look 3–5× slower than they are. CPU seconds are
printed beside wall seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from reconciler.diff import diff
from reconciler.loader import load_environment, paused_gc
from reconciler.plan import existing_extensions
from reconciler.resources import desired_resources
from reconciler.rules import check_rules
from reconciler.state.sql import open_store
from reconciler.template import expand_templates
from reconciler.validate import validate_documents


def main() -> None:
    env, url = Path(sys.argv[1]), sys.argv[2]
    marks = [("start", time.perf_counter(), time.process_time())]

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter(), time.process_time()))

    with paused_gc(freeze=True):
        loaded = load_environment(env)
        mark("load (parse YAML)")
        documents = expand_templates(loaded.documents, loaded.diagnostics)
        manifests = validate_documents(env.resolve(), documents, loaded.diagnostics,
                                       need_secrets=True)
        mark("validate (models, secrets, batch files)")
        check_rules(manifests, loaded.diagnostics)
        mark("rules")
        store = open_store(url)
        snapshot = store.snapshot(set(manifests.accounts))
        mark("read state snapshot")
        desired = desired_resources(manifests, existing_extensions(snapshot))
        mark("flatten to resources")
        result = diff(desired, snapshot.resources)
        mark("diff")
    print(f"{'stage':42s} {'wall s':>7s} {'CPU s':>7s}")
    for (name, end, cpu_end), (_, start, cpu_start) in zip(marks[1:], marks):
        print(f"{name:42s} {end - start:7.2f} {cpu_end - cpu_start:7.2f}")
    print(f"{'total':42s} {marks[-1][1] - marks[0][1]:7.2f} {marks[-1][2] - marks[0][2]:7.2f}"
          f"  ({len(result.actions)} actions)")


if __name__ == "__main__":
    main()
