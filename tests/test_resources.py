"""Flattening manifests into resources."""

from __future__ import annotations

import datetime

from reconciler.model import Extension, ExtensionValues, Tenant
from reconciler.resources import _attrs, _extension_attrs


def test_hand_built_extension_attrs_match_the_model():
    """The fast path must carry every field of the model (a new field cannot be forgotten)."""
    ext = Extension(number="100", name="A", display_name="B", email="a@b.example", pin="0000",
                    area_code="030", product="light_user", addons=["voicemail"],
                    start_date=datetime.date(2026, 12, 1), reference="PO-1")
    expected = {"tenant": "t", **_attrs(ext, "number", ("pin", "sip_password")), "number": "100", "auto": False}
    assert _extension_attrs(ext, "t", "100", {}) == expected


def test_a_tenant_keeps_every_field_of_its_extensions():
    """Extensions are kept as ExtensionValues: a new model field cannot be dropped."""
    assert set(ExtensionValues._fields) == set(Extension.model_fields)
    raw = {"number": "100", "name": "A", "key": "k", "display_name": "B",
           "email": "a@b.example", "pin": {"env": "PIN"}, "area_code": "030",
           "product": "light_user", "addons": ["voicemail"],
           "start_date": datetime.date(2026, 12, 1), "reference": "PO-1",
           "sip_password": {"file": "s.txt"}, "did": "auto"}
    tenant = Tenant(kind="Tenant", name="t", account="7000000", dial_plan=3, extensions=[raw])
    kept, = tenant.extensions
    assert type(kept) is ExtensionValues
    assert kept._asdict() == dict(Extension.model_validate(raw))


def _comparable(resources: dict) -> list:
    return [(key, r.scope, r.attrs, sorted(r.secrets), r.path, r.row, r.rank,
             r.source("number") if key[0] == "extension" else None)
            for key, r in resources.items()]


def test_extensions_built_while_loading_equal_those_built_after(monkeypatch, tmp_path):
    """The plan builds a tenant's extension resources as soon as the tenant is validated
    (prebuild_extensions): the same resources, in the same order, as building them after."""
    from conftest import EXAMPLES

    from reconciler.resources import desired_resources, prebuild_extensions
    from reconciler.validate import validate_environment

    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache"))
    built_early = 0
    for env in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        early, diagnostics = validate_environment(env, each_tenant=prebuild_extensions)
        if diagnostics.has_errors():
            continue
        built_early += sum(e.extension_resources is not None for e in early.tenants.values())
        after, _ = validate_environment(env)
        assert _comparable(desired_resources(early)) == _comparable(desired_resources(after))
    assert built_early > 5
