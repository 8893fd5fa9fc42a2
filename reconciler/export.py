"""Export: manifests from the current state, such that `plan` on them shows no change.

An account is exported with its whole family (main account and sub-accounts),
because a sub-account's tenants may use sites of the main account's base
packages. Secrets are written as the references they were applied from
(`{env: NAME}`, `{file: PATH}`, the initial PIN `"0000"`): the user provides
the values, and a README.md in the export lists them. A secret applied as
plain text has no reference to keep: it is left out (unmanaged, so a plan of
the export does not touch it) and listed too. Tenant logos are written next
to the manifests from the image the state keeps. `auto` extensions stay `auto`.
Nothing is overwritten without `force`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .catalog import catalog_document
from .diagnostics import ReconcilerError, plural
from .files import write_private
from .loader import paused_gc
from .model import KINDS, Extension, User
from .resources import LOGO_IMAGE
from .secrets import INITIAL_PIN
from .state.base import StateResource, StateStore
from .writer import dump_yaml

SCHEMA_LINE = "# yaml-language-server: $schema={}\n"
TENANT_FIELDS = ("account", "type", "version", "master", "charset", "logo", "dial_plan", "sites",
                 "main_number", "main_fax_number", "main_extension", "sip_domain")


@dataclass
class _Export:
    """What an export writes: file → content, and what the README must tell the user."""

    files: dict[Path, str | bytes] = field(default_factory=dict)
    env_vars: set[str] = field(default_factory=set)
    secret_files: set[str] = field(default_factory=set)
    left_out: list[str] = field(default_factory=list)  # plain-text secrets
    logos: list[str] = field(default_factory=list)
    missing_logos: list[str] = field(default_factory=list)


def export(store: StateStore, target: Path, account: str | None = None,
           tenant: str | None = None, schema: str | None = None,
           force: bool = False) -> list[Path]:
    """Write manifests for an account family or one tenant into `target`; returns the files."""
    with paused_gc():
        return _export(store, target, account, tenant, schema, force)


def _export(store: StateStore, target: Path, account: str | None, tenant: str | None,
            schema: str | None, force: bool) -> list[Path]:
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
    header = SCHEMA_LINE.format(schema) if schema else ""
    result = _collect(selected, target, header)
    existing = sorted(str(path) for path in result.files if path.exists())
    if existing and not force:
        raise ReconcilerError(
            f"{plural(len(existing), 'file')} would be overwritten: {', '.join(existing[:5])}"
            + (", …" if len(existing) > 5 else "")
            + " — export into a new directory, or pass --force to overwrite")
    for path, content in result.files.items():
        if isinstance(content, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        else:
            write_private(path, content)
    return list(result.files)


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


def _collect(selected: list[StateResource], target: Path, header: str) -> _Export:
    result = _Export()
    by_kind: dict[str, list[StateResource]] = {}
    for resource in sorted(selected, key=lambda r: r.id):
        by_kind.setdefault(resource.kind, []).append(resource)
    for kind, name, manifest_kind, identity in (
        ("account", "accounts.yaml", "Account", "customer_number"),
        ("base_package", "packages.yaml", "BasePackage", "id"),
        ("site", "sites.yaml", "Site", "id"),
    ):
        documents = [_document(manifest_kind, identity, r) for r in by_kind.get(kind, [])]
        if documents:
            result.files[target / name] = dump_yaml(documents, header)
    users = _by_tenant(by_kind.get("user", []))
    extensions = _by_tenant(by_kind.get("extension", []))
    for resource in by_kind.get("tenant", []):
        document = _tenant_document(resource, users.get(resource.id, []),
                                    extensions.get(resource.id, []), result)
        _logo(resource, target, result)
        result.files[target / f"tenant-{resource.id}.yaml"] = dump_yaml([document], header)
    catalog = catalog_document(selected)
    if catalog is not None:  # the partner's own products and rates, which the state does not keep
        result.files[target / "catalog.yaml"] = dump_yaml([catalog], header)
    result.files[target / "README.md"] = _readme(result)
    return result


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


def _tenant_document(tenant: StateResource, users: list, extensions: list,
                     result: _Export) -> dict:
    """The tenant with its own users and extensions (explicit numbers first, then auto)."""
    body = {"kind": "Tenant", "name": tenant.id}
    body.update({k: tenant.attrs[k] for k in TENANT_FIELDS if tenant.attrs.get(k) is not None})
    body["users"] = [_in_model_order({**_without(u.attrs, "tenant"),
                                      **_secrets(u, f"user {u.id}", result)}, User)
                     for u in users]
    extensions = sorted(extensions, key=lambda e: (e.attrs.get("auto", False), e.attrs["number"]))
    body["extensions"] = [_extension(e, result) for e in extensions]
    return {k: v for k, v in body.items() if v != []}


def _extension(resource: StateResource, result: _Export) -> dict:
    attrs = resource.attrs
    body = _without(attrs, "tenant", "auto")
    if attrs.get("auto"):
        body["number"] = "auto"
    body.update(_secrets(resource, f"extension {resource.id}", result))
    return _in_model_order(body, Extension)


def _secrets(resource: StateResource, owner: str, result: _Export) -> dict:
    """The references the secrets were applied from; plain-text ones are left out."""
    fields = {}
    for name, record in sorted(resource.secrets.items()):
        ref = str(record.get("ref", ""))
        version = record.get("version", 0)
        if ref == "initial":
            fields[name] = INITIAL_PIN
        elif ref.startswith(("env:", "file:")):
            source, _, value = ref.partition(":")
            fields[name] = {source: value, **({"version": version} if version else {})}
            (result.env_vars if source == "env" else result.secret_files).add(value)
        else:
            result.left_out.append(f"{name} of {owner}")
    return fields


def _logo(tenant: StateResource, target: Path, result: _Export) -> None:
    name = tenant.attrs.get("logo")
    if not name:
        return
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        result.missing_logos.append(f"`{name}` (tenant {tenant.id}: a path outside the export)")
        return
    image = tenant.attrs.get(LOGO_IMAGE)
    if not image:
        result.missing_logos.append(f"`{name}` (tenant {tenant.id}: applied before reconciler "
                                    "kept logo images)")
        return
    result.files[target / relative] = base64.b64decode(image)
    result.logos.append(f"`{name}` (tenant {tenant.id})")


def _without(attrs: dict, *names: str) -> dict:
    return {k: v for k, v in attrs.items() if k not in names and v not in (None, [], {}, False)
            or (k == "role")}


def _readme(result: _Export) -> str:
    lines = ["# Exported manifests", "",
             "Written by `reconciler export` from the state. `reconciler plan` on this "
             "directory shows no change once the secrets below are in place.", ""]
    if result.env_vars:
        lines += ["## Environment variables to set", "",
                  "Secrets were applied from these variables; export them with the same "
                  "values before planning:", ""]
        lines += [f"- `{name}`" for name in sorted(result.env_vars)] + [""]
    if result.secret_files:
        lines += ["## Secret files to create", "",
                  "Secrets were applied from these files (paths relative to the manifests); "
                  "create them here with the same values, and keep them out of git:", ""]
        lines += [f"- `{name}`" for name in sorted(result.secret_files)] + [""]
    if result.left_out:
        lines += ["## Secrets left out", "",
                  "These were applied as plain text, so there is no reference to keep. They are "
                  "left out, which leaves them unmanaged (no plan touches them). To manage one "
                  "again, add it as `{env: NAME}` or `{file: PATH}`:", ""]
        lines += [f"- {item}" for item in result.left_out] + [""]
    if result.logos:
        lines += ["## Logos", "", "Written from the images the state keeps:", ""]
        lines += [f"- {item}" for item in result.logos] + [""]
    if result.missing_logos:
        lines += ["## Logos to copy", "", "The state has no image for these: copy the files "
                  "here before planning:", ""]
        lines += [f"- {item}" for item in result.missing_logos] + [""]
    if len(lines) == 4:
        lines += ["Every secret is either the initial PIN or not managed; nothing to add.", ""]
    return "\n".join(lines)
