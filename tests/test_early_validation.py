"""Validating each file as the loader delivers it (validate.validate_environment) gives what
validating all documents after loading gives: the same diagnostics in the same order and the
same manifests, for every example environment (those made from templates too) and every
bad-input case."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXAMPLES
from reconciler import loader
from reconciler.loader import load_environment
from reconciler.rules import check_rules
from reconciler.template import expand_templates
from reconciler.validate import validate_documents, validate_environment

BAD_INPUTS = Path(__file__).parent / "bad_inputs"
CUSTOMERS = EXAMPLES.parent / "customers"  # environments made from templates (`Use`)
CASES = [p for parent in (EXAMPLES, CUSTOMERS, BAD_INPUTS)
         for p in sorted(parent.iterdir()) if p.is_dir()]


def after_loading(env: Path):
    """The order before early validation: load everything, expand, validate, check."""
    loaded = load_environment(env)
    documents = expand_templates(loaded.documents, loaded.diagnostics)
    manifests = validate_documents(env.resolve(), documents, loaded.diagnostics,
                                   need_secrets=True)
    check_rules(manifests, loaded.diagnostics)
    return manifests, loaded.diagnostics


def comparable(manifests, diagnostics):
    tables = {name: sorted(getattr(manifests, name)) for name in
              ("accounts", "packages", "sites", "tenants", "targets", "catalogs", "price_lists")}
    extensions = {name: [e.model for e in entry.extensions]
                  for name, entry in manifests.tenants.items()}
    return tables, extensions, [(d.source, d.message, d.hint, d.severity) for d in diagnostics.items]


@pytest.mark.parametrize("env", CASES, ids=lambda p: p.name)
def test_early_validation_equals_validation_after_loading(env, monkeypatch, tmp_path):
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache"))
    early = comparable(*validate_environment(env, need_secrets=True))
    assert early == comparable(*after_loading(env))


@pytest.mark.parametrize("env", [env for env in CASES if len(list(env.rglob("*.y*ml"))) > 1],
                         ids=lambda p: p.name)
def test_checking_in_worker_processes_equals_validation_after_loading(env, monkeypatch,
                                                                      tmp_path):
    """Documents checked where they are parsed (worker processes), and read back from the
    parse cache, give what validating all of them after loading gives."""
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(loader, "PARALLEL_THRESHOLD_BYTES", 0)
    expected = comparable(*after_loading(env))
    for _ in ("parsed", "from the parse cache"):
        assert comparable(*validate_environment(env, need_secrets=True)) == expected

