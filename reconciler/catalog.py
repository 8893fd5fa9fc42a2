"""The catalog: what the platform offers, so that a typo is an error and not an order.

Built-in values come from the platform's help pages (COMuniq ONE products and
add-ons, the CompanyFlex base package, flat rates, tenant versions and
charsets); a partner adds its own with `kind: Catalog` documents. A value that
is in neither is an error with a "did you mean" hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import Diagnostics, did_you_mean
from .manifests import Located, Manifests, TenantEntry

DEFAULT_EXTENSIONS_PER_PARALLEL_CALL = 10


@dataclass
class EffectiveCatalog:
    """The built-in catalog with every `kind: Catalog` of the environment added."""

    products: dict[str, set[str]] = field(default_factory=dict)  # product → its add-ons
    base_package_products: dict[str, int] = field(default_factory=dict)  # → extensions per call
    flatrates: set[str] = field(default_factory=set)
    versions: set[str] = field(default_factory=set)
    charsets: dict[str, str] = field(default_factory=dict)  # upper-case → as written

    @property
    def addons(self) -> set[str]:
        return set().union(*self.products.values())

    def offering(self, addon: str) -> list[str]:
        """The products an add-on can be ordered with."""
        return sorted(p for p, addons in self.products.items() if addon in addons)


def builtin_catalog() -> EffectiveCatalog:
    """What the platform's help pages name (see docs/catalog-and-cost.md for each source)."""
    return EffectiveCatalog(
        products={
            "light_user": {"voicemail"},
            "standard_user": {"voicemail", "call_recording", "fax_to_mail"},
            "premium_user": {"voicemail", "call_recording", "fax_to_mail", "conference_room"},
        },
        base_package_products={"CompanyFlex": DEFAULT_EXTENSIONS_PER_PARALLEL_CALL},
        flatrates={"national", "mobile", "international"},
        versions={"BASIC", "PRO"},
        charsets={name.upper(): name for name in
                  ("UTF-8", "ISO-8859-1", "ISO-8859-15", "Windows-1252")},
    )


def effective_catalog(manifests: Manifests) -> EffectiveCatalog:
    catalog = builtin_catalog()
    for entry in manifests.catalogs.values():
        extra = entry.model
        for product, offer in extra.products.items():
            catalog.products.setdefault(product, set()).update(offer.addons)
        for product, offer in extra.base_package_products.items():
            catalog.base_package_products[product] = offer.extensions_per_parallel_call
        catalog.flatrates.update(extra.flatrates)
        catalog.versions.update(extra.versions)
        catalog.charsets.update({name.upper(): name for name in extra.charsets})
    return catalog


def check_catalog(m: Manifests, d: Diagnostics) -> None:
    """Every product, add-on, flat rate, version and charset is one the catalog offers."""
    catalog = effective_catalog(m)
    for entry in m.packages.values():
        _check_package(entry, catalog, d)
    for entry in m.tenants.values():
        _check_tenant(entry, catalog, d)
    for entry in m.price_lists.values():
        _check_price_list(entry, catalog, d)
    if len(m.price_lists) > 1:
        first, *others = m.price_lists.values()
        for entry in others:
            d.error(entry.at("name"), f"a second PriceList '{entry.model.name}' (the first is "
                    f"'{first.model.name}' at {first.source.short})",
                    "an environment is priced by one price list: remove or merge one")


def _check_package(entry: Located, catalog: EffectiveCatalog, d: Diagnostics) -> None:
    package = entry.model
    _known(d, entry.at("product"), "base package product", package.product,
           catalog.base_package_products)
    for index, flatrate in enumerate(package.flatrates):
        _known(d, entry.at("flatrates", index), "flat rate", flatrate, catalog.flatrates)


def _check_tenant(entry: TenantEntry, catalog: EffectiveCatalog, d: Diagnostics) -> None:
    tenant = entry.model
    if "version" in entry.doc.body:  # the default BASIC is always offered
        _known(d, entry.at("version"), "tenant version", tenant.version, catalog.versions)
    if tenant.charset is not None and tenant.charset.upper() not in catalog.charsets:
        d.error(entry.at("charset"), f"charset '{tenant.charset}' is not in the catalog",
                _hint(tenant.charset, catalog.charsets.values()))
    for index, source in enumerate(tenant.extensions_from):
        if not isinstance(source, str):
            _check_order(d, catalog, source.product, source.addons,
                         lambda name, i=index: entry.at("extensions_from", i, name),
                         f"batch file '{source.file}'")
    for ext in entry.extensions:
        model = ext.model
        if ext.row is None and (model.product is not None or model.addons):
            _check_order(d, catalog, model.product, model.addons, ext.at,
                         f"extension '{model.name}'")


def _check_order(d: Diagnostics, catalog: EffectiveCatalog, product: str | None, addons,
                 at, what: str) -> None:
    """A product and its add-ons, as one order line of seed 000."""
    if product is not None and product not in catalog.products:  # located only when wrong
        _known(d, at("product"), "product", product, catalog.products)
        return
    allowed = catalog.products[product] if product is not None else catalog.addons
    for addon in addons:
        if addon in allowed:
            continue
        if addon not in catalog.addons:
            d.error(at("addons"), f"add-on '{addon}' of {what} is not in the catalog",
                    _hint(addon, catalog.addons))
        else:
            d.error(at("addons"), f"add-on '{addon}' cannot be ordered with product "
                    f"'{product}' ({what})",
                    f"'{product}' offers: {', '.join(sorted(allowed)) or 'no add-ons'}; "
                    f"'{addon}' comes with: {', '.join(catalog.offering(addon))}")


def _check_price_list(entry: Located, catalog: EffectiveCatalog, d: Diagnostics) -> None:
    """A price for something the catalog does not have would silently never be charged."""
    prices = entry.model
    for section, known in (("products", catalog.products), ("addons", catalog.addons),
                           ("base_package_products", catalog.base_package_products)):
        for name in getattr(prices, section):
            _known(d, entry.at(section, name), section.rstrip("s").replace("_", " "), name, known)


def _known(d: Diagnostics, where, what: str, value: str, known) -> bool:
    if value in known:
        return True
    d.error(where, f"{what} '{value}' is not in the catalog", _hint(value, known))
    return False


def _hint(value: str, known) -> str:
    hint = did_you_mean(value, sorted(known))
    return f"{hint} (or add it with a 'kind: Catalog' document)"


def catalog_document(objects, name: str = "exported") -> dict | None:
    """A `kind: Catalog` document with what `objects` use beyond the built-in catalog.

    `export` writes it, so that exported manifests validate although the
    partner's own Catalog is not part of the state.
    """
    builtin = builtin_catalog()
    products: dict[str, set[str]] = {}
    packages: set[str] = set()
    flatrates: set[str] = set()
    versions: set[str] = set()
    charsets: set[str] = set()
    for resource in objects:
        attrs = resource.attrs
        if resource.kind == "extension" and attrs.get("product"):
            offered = builtin.products.get(attrs["product"])
            extra = set(attrs.get("addons") or ()) - (offered or set())
            if offered is None or extra:
                products.setdefault(attrs["product"], set()).update(extra)
        elif resource.kind == "base_package":
            packages.update({attrs.get("product")} - set(builtin.base_package_products) - {None})
            flatrates.update(set(attrs.get("flatrates") or ()) - builtin.flatrates)
        elif resource.kind == "tenant":
            versions.update({attrs.get("version")} - builtin.versions - {None})
            if attrs.get("charset") and attrs["charset"].upper() not in builtin.charsets:
                charsets.add(attrs["charset"])
    body: dict = {"kind": "Catalog", "name": name}
    if products:
        body["products"] = {p: {"addons": sorted(a)} if a else {} for p, a in sorted(products.items())}
    if packages:
        body["base_package_products"] = {p: {} for p in sorted(packages)}
    for key, values in (("flatrates", flatrates), ("versions", versions), ("charsets", charsets)):
        if values:
            body[key] = sorted(values)
    return body if len(body) > 2 else None
