"""Export: manifests from the current state, such that `plan` on them shows no change.

An account is exported with its whole family (main account and sub-accounts),
because a sub-account's tenants may use sites of the main account's base
packages. Secrets are left out, which makes them unmanaged: a plan of the
exported files never touches them. `auto` extensions stay `auto`.
"""

from __future__ import annotations

from pathlib import Path

from .catalog import catalog_document
from .diagnostics import ReconcilerError
from .files import write_private
from .loader import paused_gc
from .model import KINDS, Extension, User
from .state.base import StateResource, StateStore
from .writer import dump_yaml

SCHEMA_LINE = "# yaml-language-server: $schema={}\n"
TENANT_FIELDS = ("account", "type", "version", "master", "charset", "logo", "dial_plan", "sites",
                 "main_number", "main_extension", "main_fax_number", "sip_domain")


def export(store: StateStore, target: Path, account: str | None = None,
           tenant: str | None = None, schema: str | None = None) -> list[Path]:
    """Write manifests for an account family or one tenant into `target`; returns the files."""
    with paused_gc():
        return _export(store, target, account, tenant, schema)


def _export(store: StateStore, target: Path, account: str | None, tenant: str | None,
            schema: str | None) -> list[Path]:
    resources = store.snapshot().resources
    if tenant is not None:
        found = resources.get(("tenant", tenant))
        if found is None:
            raise ReconcilerError(f"tenant '{tenant}' is not in the state — check the name "
                                  "('reconciler plan' lists what exists)")
        account = found.attrs["account"]
    if account is None or ("account", account) not in resources:
        raise ReconcilerError(f"account {account} is not in the state — check the customer number")
    family = _family(resources, account)
    selected = [r for r in resources.values() if r.scope in family]
    if tenant is not None:
        keep = _master_chain(resources, tenant)
        selected = [r for r in selected if _tenant_of(r) in (None, *keep)]
    target.mkdir(parents=True, exist_ok=True)
    header = SCHEMA_LINE.format(schema) if schema else ""
    return _write_files(selected, target, header)


def _family(resources: dict, account: str) -> set[str]:
    main = resources[("account", account)].attrs.get("parent") or account
    return {main} | {r.id for r in resources.values()
                     if r.kind == "account" and r.attrs.get("parent") == main}


def _master_chain(resources: dict, tenant: str) -> set[str]:
    chain, current = set(), tenant
    while current and current not in chain and ("tenant", current) in resources:
        chain.add(current)
        current = resources[("tenant", current)].attrs.get("master")
    return chain


def _tenant_of(resource: StateResource) -> str | None:
    if resource.kind == "tenant":
        return resource.id
    return resource.attrs.get("tenant")


def _write_files(selected: list[StateResource], target: Path, header: str) -> list[Path]:
    by_kind: dict[str, list[StateResource]] = {}
    for resource in sorted(selected, key=lambda r: r.id):
        by_kind.setdefault(resource.kind, []).append(resource)
    written = []
    for kind, name, manifest_kind, identity in (
        ("account", "accounts.yaml", "Account", "customer_number"),
        ("base_package", "packages.yaml", "BasePackage", "id"),
        ("site", "sites.yaml", "Site", "id"),
    ):
        documents = [_document(manifest_kind, identity, r) for r in by_kind.get(kind, [])]
        if documents:
            written.append(_dump(target / name, documents, header))
    users = _by_tenant(by_kind.get("user", []))
    extensions = _by_tenant(by_kind.get("extension", []))
    for resource in by_kind.get("tenant", []):
        document = _tenant_document(resource, users.get(resource.id, []),
                                    extensions.get(resource.id, []))
        written.append(_dump(target / f"tenant-{resource.id}.yaml", [document], header))
    catalog = catalog_document(selected)
    if catalog is not None:  # the partner's own products and rates, which the state does not keep
        written.append(_dump(target / "catalog.yaml", [catalog], header))
    return written


def _document(manifest_kind: str, identity: str, resource: StateResource) -> dict:
    body = {"kind": manifest_kind, identity: resource.id}
    body.update({k: v for k, v in resource.attrs.items() if v not in (None, [], {})})
    return _in_model_order(body, KINDS[manifest_kind])


def _in_model_order(body: dict, model) -> dict:
    """Keys in the order the model declares its fields, as a person would write them."""
    order = {(info.alias or name): i for i, (name, info) in enumerate(model.model_fields.items())}
    return dict(sorted(body.items(), key=lambda item: order.get(item[0], len(order))))


def _by_tenant(resources: list[StateResource]) -> dict[str, list[StateResource]]:
    grouped: dict[str, list[StateResource]] = {}
    for resource in resources:
        grouped.setdefault(resource.attrs["tenant"], []).append(resource)
    return grouped


def _tenant_document(tenant: StateResource, users: list, extensions: list) -> dict:
    """The tenant with its own users and extensions (explicit numbers first, then auto)."""
    body = {"kind": "Tenant", "name": tenant.id}
    body.update({k: tenant.attrs[k] for k in TENANT_FIELDS if tenant.attrs.get(k) is not None})
    body["users"] = [_in_model_order(_without(u.attrs, "tenant"), User) for u in users]
    extensions = sorted(extensions, key=lambda e: (e.attrs.get("auto", False), e.attrs["number"]))
    body["extensions"] = [_extension(e.attrs) for e in extensions]
    return {k: v for k, v in body.items() if v != []}


def _extension(attrs: dict) -> dict:
    body = _without(attrs, "tenant", "auto")
    if attrs.get("auto"):
        body["number"] = "auto"
    return _in_model_order(body, Extension)


def _without(attrs: dict, *names: str) -> dict:
    return {k: v for k, v in attrs.items() if k not in names and v not in (None, [], {}, False)
            or (k == "role")}


def _dump(path: Path, documents: list[dict], header: str) -> Path:
    write_private(path, dump_yaml(documents, header))
    return path
