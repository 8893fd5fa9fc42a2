"""Time each stage of one plan in-process: python bench/stages.py ENV STATE_URL."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from reconciler.diff import diff
from reconciler.loader import load_environment
from reconciler.plan import existing_extensions
from reconciler.resources import desired_resources
from reconciler.rules import check_rules
from reconciler.state.sql import open_store
from reconciler.template import expand_templates
from reconciler.validate import validate_documents


def main() -> None:
    env, url = Path(sys.argv[1]), sys.argv[2]
    marks = [("start", time.perf_counter())]

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter()))

    loaded = load_environment(env)
    mark("load (parse YAML)")
    documents = expand_templates(loaded.documents, loaded.diagnostics)
    manifests = validate_documents(env.resolve(), documents, loaded.diagnostics, need_secrets=True)
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
    for (name, end), (_, start) in zip(marks[1:], marks):
        print(f"{name:42s} {end - start:7.2f} s")
    print(f"{'total':42s} {marks[-1][1] - marks[0][1]:7.2f} s  ({len(result.actions)} actions)")


if __name__ == "__main__":
    main()
