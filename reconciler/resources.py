"""Resources: the flat records that planning compares, one per platform object.

Manifests nest users and extensions inside tenants; the platform does not. This
module flattens validated manifests into `Resource`s keyed by (kind, id), with
the owning account as scope, and holds per kind what planning needs: the
execution order and the changes the platform forbids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, ReconcilerError, Source

if TYPE_CHECKING:  # the models (pydantic) load only where resources are built
    from .loader import Document
    from .manifests import Manifests, TenantEntry
    from .secrets import SecretValue

Key = tuple[str, str]
# The tenant attribute that keeps the logo image itself (base64), so that
# `export` can write it again; never compared or shown (diff.UNCOMPARED):
# `logo_sha256` stands for it.
LOGO_IMAGE = "logo_image"


@dataclass(frozen=True, slots=True)
class Forbidden:
    reason: str
    instead: str
    # Rules (Diagnostic.rule) whose errors on the same object only follow from this change.
    follow_on_rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KindSpec:
    name: str
    manifest_kind: str
    order: int
    forbidden: dict[str, Forbidden] = field(default_factory=dict)


KIND_SPECS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("account", "Account", 0),
        KindSpec("base_package", "BasePackage", 1),
        KindSpec("site", "Site", 2, {
            "base_package": Forbidden(
                "a site's resources are bound to its base package",
                "order a new site on the other base package and remove this one"),
        }),
        KindSpec("tenant", "Tenant", 3, {
            "dial_plan": Forbidden(
                "the platform cannot switch a tenant's dial plan",
                "create a new tenant with the new dial plan and move the extensions",
                ("extension.dial-plan",)),
            "type": Forbidden("a tenant's type is fixed when it is created",
                              "create a new tenant of the other type"),
            "master": Forbidden("a tenant cannot be moved to another master tenant",
                                "create a new tenant under the other master"),
            "account": Forbidden("a tenant cannot be moved to another customer account",
                                 "create a new tenant under the other account"),
        }),
        KindSpec("user", "Tenant", 4),
        KindSpec("extension", "Tenant", 5),
        # Objects on a target's platform (providers/), from the tenants it serves.
        KindSpec("sip_domain", "Tenant", 6),
        KindSpec("sip_subscriber", "Tenant", 7),
        KindSpec("sip_alias", "Tenant", 8),
    )
}
KIND_RANK = {name: rank for rank, name in enumerate(KIND_SPECS)}  # execution order


@dataclass(slots=True)
class Resource:
    """A desired platform object, as the manifests declare it."""

    kind: str
    id: str
    scope: str  # the customer number of the account it belongs to
    attrs: dict[str, Any]
    secrets: dict[str, SecretValue] = field(default_factory=dict)
    doc: Document | None = None
    path: tuple = ()  # where inside `doc` the object is declared
    row: Source | None = None  # a batch-file row, when it came from one
    rank: int = 0  # order within a kind: sub-accounts after main accounts, masters first

    @property
    def key(self) -> Key:
        return (self.kind, self.id)

    def source(self, field_name: str | None = None) -> Source | None:
        if self.row is not None:
            return self.row
        if self.doc is None:
            return None
        if field_name is None:
            return self.doc.locate(*self.path) if self.path else self.doc.source
        return self.doc.locate(*self.path, field_name)


@dataclass(slots=True)
class ExistingExtensions:
    """What the state knows of one tenant's extensions, for `auto` numbers."""

    numbers: set[str] = field(default_factory=set)
    auto_by_key: dict[str, str] = field(default_factory=dict)  # key → number
    auto_by_name: dict[str, str] = field(default_factory=dict)  # name → number (without key)
    auto_names: dict[str, str] = field(default_factory=dict)  # number → its identity, as shown

    def add(self, attrs: dict) -> None:
        number = attrs["number"]
        self.numbers.add(number)
        if attrs.get("auto"):
            if attrs.get("key"):
                self.auto_by_key[attrs["key"]] = number
                self.auto_names[number] = f"'{attrs['name']}' (key {attrs['key']})"
            else:
                self.auto_by_name[attrs["name"]] = number
                self.auto_names[number] = f"'{attrs['name']}'"

    def kept(self, ext) -> str | None:
        """The number an applied auto extension keeps: found by key, else by name."""
        if ext.key is not None and ext.key in self.auto_by_key:
            return self.auto_by_key[ext.key]
        return self.auto_by_name.get(ext.name)


def desired_resources(
    manifests: Manifests, existing: dict[str, ExistingExtensions] | None = None
) -> dict[Key, Resource]:
    """All resources of an environment, keyed by (kind, id)."""
    existing = existing or {}
    resources: dict[Key, Resource] = {}

    def add(resource: Resource) -> None:
        resources[resource.key] = resource

    for number, entry in manifests.accounts.items():
        m = entry.model
        add(Resource("account", number, number, _attrs(m, "customer_number"), doc=entry.doc,
                     rank=1 if m.parent else 0))
    for package_id, entry in manifests.packages.items():
        add(Resource("base_package", package_id, entry.model.account, _attrs(entry.model, "id"),
                     doc=entry.doc))
    for site_id, entry in manifests.sites.items():
        package = manifests.packages.get(entry.model.base_package)
        scope = package.model.account if package else ""
        attrs = _attrs(entry.model, "id")
        attrs["number_blocks"] = [b.model_dump(by_alias=True) for b in entry.model.number_blocks]
        add(Resource("site", site_id, scope, attrs, doc=entry.doc))
    for name, entry in manifests.tenants.items():
        _add_tenant(manifests, entry, existing.get(name, ExistingExtensions()), add)
    return resources


def _attrs(model, identity: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    data = model.model_dump(mode="json", by_alias=True, exclude={"kind", "ref", identity, *exclude})
    return data


def _master_depth(manifests: Manifests, name: str) -> int:
    depth, seen = 0, {name}
    master = manifests.tenants[name].model.master
    while master in manifests.tenants and master not in seen:
        seen.add(master)
        depth += 1
        master = manifests.tenants[master].model.master
    return depth


def _add_tenant(manifests: Manifests, entry: TenantEntry, existing: ExistingExtensions, add) -> None:
    from .dids import tenant_blocks
    from .logo import logo_digest, logo_image

    tenant = entry.model
    scope = tenant.account
    attrs = _attrs(tenant, "name", ("users", "extensions", "extensions_from"))
    attrs["charset"] = tenant.effective_charset
    if tenant.logo is not None:  # the content, not only the name: a new image is an update
        attrs["logo_sha256"] = logo_digest(entry.doc.file.parent / tenant.logo)
        attrs[LOGO_IMAGE] = logo_image(entry.doc.file.parent / tenant.logo)  # for export
    add(Resource("tenant", tenant.name, scope, attrs, doc=entry.doc,
                 rank=_master_depth(manifests, tenant.name)))
    for index, user in enumerate(tenant.users):
        user_attrs = {"tenant": tenant.name, "email": user.email,
                      **_attrs(user, "email", ("password",))}
        secrets = {}
        if user.email in entry.passwords:
            secrets["password"] = entry.passwords[user.email]
        add(Resource("user", user_id(tenant.name, user.email), scope, user_attrs, secrets,
                     doc=entry.doc, path=("users", index)))
    extensions = entry.extension_resources
    if extensions is None:
        numbers = assign_numbers(entry, existing)
        extensions = _extension_resources(entry, numbers, tenant_blocks(manifests, tenant))
    for resource in extensions:
        add(resource)


def prebuild_extensions(entry: TenantEntry) -> None:
    """Build a tenant's extension resources as soon as it is validated (the plan does this
    while the parser processes work on later files), unless they depend on more than the
    tenant: an `auto` number (the state) or an `auto` DID (the sites' number blocks)."""
    from .dids import AUTO

    if not any(ext.model.number == "auto" or ext.model.did == AUTO for ext in entry.extensions):
        numbers = [ext.model.number for ext in entry.extensions]
        entry.extension_resources = _extension_resources(entry, numbers, blocks=None)


def _extension_resources(entry: TenantEntry, numbers: list[str], blocks) -> list[Resource]:
    from .dids import AUTO

    tenant = entry.model
    shared: dict = {}  # see _extension_attrs
    resources = []
    for index, (ext_entry, number) in enumerate(zip(entry.extensions, numbers)):
        ext = ext_entry.model
        ext_attrs = _extension_attrs(ext, tenant.name, number, shared)
        if ext.did == AUTO:
            ext_attrs["did"] = _auto_did(ext_entry, tenant.name, number, blocks)
        secrets = {"pin": ext_entry.pin} if ext_entry.pin is not None else {}
        if ext_entry.sip_password is not None:
            secrets["sip_password"] = ext_entry.sip_password
        ident = f"{tenant.name}/{number}"
        if ext_entry.row is None:
            resources.append(Resource("extension", ident, tenant.account, ext_attrs, secrets,
                                      entry.doc, ("extensions", index)))
        else:
            resources.append(Resource("extension", ident, tenant.account, ext_attrs, secrets,
                                      row=ext_entry.row))
    return resources


def user_id(tenant: str, email: str) -> str:
    """A user's identity: e-mail addresses are compared without case."""
    return f"{tenant}/{email.lower()}"


def _extension_attrs(ext, tenant: str, number: str, shared: dict) -> dict[str, Any]:
    """What `_attrs` would give, built directly: this runs once per extension. Start dates
    and add-on lists, which most extensions share, are made once (`shared`; resources
    are never changed once built)."""
    start = ext.start_date
    if start is not None:
        start = shared.get(start) or shared.setdefault(start, start.isoformat())
    addons = tuple(ext.addons)
    return {
        "tenant": tenant, "number": number, "name": ext.name, "display_name": ext.display_name,
        "email": ext.email, "area_code": ext.area_code, "product": ext.product,
        "addons": shared.get(addons) or shared.setdefault(addons, list(addons)),
        "start_date": start, "reference": ext.reference,
        "auto": ext.number == "auto", "did": ext.did, "key": ext.key,
    }


def _auto_did(ext_entry, tenant: str, number: str, blocks) -> str:
    from .dids import auto_did

    did = auto_did(number, blocks)
    if did is None:
        raise ReconcilerError(Diagnostic(
            ext_entry.at("did"), f"did: auto finds no number block of tenant '{tenant}' that "
            f"holds extension number {number} (given to auto extension '{ext_entry.model.name}')",
            "give the DID explicitly, or add a block that covers the extension numbers"))
    return did


def assign_numbers(entry: TenantEntry, existing: ExistingExtensions) -> list[str]:
    """Numbers for a tenant's extensions; `auto` gets the lowest free one.

    An applied number never changes: an auto extension keeps the number it was
    applied with (found by `key`, else by name), and an explicit number that an
    applied auto extension still declared holds is an error, not a move. A new
    auto extension takes the lowest number of the dial-plan length that no
    explicit extension, no other auto extension and no existing extension holds.
    """
    length = entry.model.dial_plan
    autos = [e for e in entry.extensions if e.model.number == "auto"]
    kept = {id(e): existing.kept(e.model) for e in autos}
    _refuse_taken_auto_numbers(entry, set(kept.values()), existing)
    taken = {e.model.number for e in entry.extensions if e.model.number != "auto"} | existing.numbers
    numbers, candidate = [], 10 ** (length - 1)
    for ext in entry.extensions:
        number = ext.model.number
        if number == "auto":
            number = kept[id(ext)]
            if number is None:
                while str(candidate) in taken:
                    candidate += 1
                if candidate >= 10 ** length:
                    raise ReconcilerError(Diagnostic(
                        ext.source, f"no free {length}-digit number is left for auto extension "
                        f"'{ext.model.name}' in tenant '{entry.model.name}'",
                        "remove an extension (the dial plan of a tenant can never be switched)"))
                number = str(candidate)
            taken.add(number)
        numbers.append(number)
    return numbers


def _refuse_taken_auto_numbers(entry: TenantEntry, kept: set, existing: ExistingExtensions) -> None:
    """An explicit number that a declared, applied auto extension holds would silently turn
    that extension into another one (its PIN with it): an error naming both."""
    problems = [
        Diagnostic(ext.at("number"), f"extension number {ext.model.number} of tenant "
                   f"'{entry.model.name}' belongs to auto extension "
                   f"{existing.auto_names.get(ext.model.number, '')} since it was applied; an "
                   "applied number never changes",
                   "choose another number; to reuse this one, remove the auto extension and "
                   "apply with --allow-delete first")
        for ext in entry.extensions
        if ext.model.number != "auto" and ext.model.number in kept
    ]
    if problems:
        raise ReconcilerError(problems)
