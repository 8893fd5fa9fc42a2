"""Platform-wide uniqueness: what one environment declares against all of the state.

The rules (rules.py) keep numbers unique within one environment; this stage
compares the environment with every object of the state it does not declare
(other environments, unowned objects): number blocks (as intervals, never
expanded), main and fax numbers, DIDs, SIP domains, and which tenant a site
serves. Customer numbers, package, site and tenant ids are identities: two
environments declaring one are kept apart by ownership (ownership.py).
"""

from __future__ import annotations

from .diagnostics import Diagnostic
from .numbers import Held, IntervalIndex, block_intervals, number_interval
from .resources import Key, Resource
from .state.base import StateResource

NUMBER_FIELDS = (("main_number", "main number"), ("main_fax_number", "main fax number"))


def holder_text(resource: StateResource) -> str:
    owner = f"environment '{resource.owner}'" if resource.owner else "no environment (unowned)"
    return f"{resource.kind.replace('_', ' ')} '{resource.id}' of {owner}, account {resource.scope}"


def _owner_of(resource: StateResource, platform: dict[Key, StateResource]) -> StateResource:
    """An extension is named through its tenant (which has the owner)."""
    if resource.kind == "extension":
        tenant = platform.get(("tenant", resource.attrs.get("tenant")))
        if tenant is not None:
            return StateResource(resource.kind, resource.id, resource.scope, resource.attrs,
                                 owner=tenant.owner)
    return resource


def check_uniqueness(desired: dict[Key, Resource], platform: dict[Key, StateResource],
                     sealed: dict | None = None) -> list[Diagnostic]:
    """Errors for what `desired` shares with objects of the state it does not declare.
    `sealed`: tenant → memo.TenantSummary, whose extensions are declared too."""
    sealed = sealed or {}
    others = [_owner_of(r, platform) for key, r in platform.items()
              if key not in desired and not _sealed_extension(key, sealed)]
    errors = _blocks(desired, others) + _single_numbers(desired, others, sealed)
    errors += _site_links(desired, others) + _sip_domains(desired, others)
    return errors


def _blocks(desired, others) -> list[Diagnostic]:
    index = IntervalIndex(
        Held(interval, (other, block))
        for other in others if other.kind == "site"
        for block in other.attrs.get("number_blocks") or []
        for interval in block_intervals(block["prefix"], block["from"], block["to"]))
    errors = []
    for resource in desired.values():
        if resource.kind != "site":
            continue
        for position, block in enumerate(resource.attrs.get("number_blocks") or []):
            for interval in block_intervals(block["prefix"], block["from"], block["to"]):
                hit = index.overlapping(interval)
                if hit is not None:
                    other, theirs = hit.holder
                    errors.append(Diagnostic(
                        _at(resource, "number_blocks", position), f"number block {_block(block)} of site '{resource.id}' "
                        f"(block {position + 1}) overlaps block {_block(theirs)} of "
                        f"{holder_text(other)}",
                        "numbers are unique across the whole state: book another block"))
                    break
    return errors


def _at(resource: Resource, *path):
    """Where inside the resource's document `path` is written (the document, if unknown)."""
    if resource.doc is None:
        return resource.source()
    return resource.doc.locate(*resource.path, *path)


def _block(block: dict) -> str:
    return f"{block['prefix']}-{block['from']}…{block['to']}"


def _numbers_of(resource) -> list[tuple[str, str]]:
    """(number, what it is) of a tenant or an extension."""
    if resource.kind == "tenant":
        return [(resource.attrs[name], text) for name, text in NUMBER_FIELDS
                if resource.attrs.get(name)]
    if resource.kind == "extension" and resource.attrs.get("did"):
        return [(resource.attrs["did"], "DID")]
    return []


def _sealed_extension(key: Key, sealed: dict) -> bool:
    return key[0] == "extension" and key[1].partition("/")[0] in sealed


def _single_numbers(desired, others, sealed: dict) -> list[Diagnostic]:
    held: dict = {}
    for other in others:
        for number, text in _numbers_of(other):
            held.setdefault(number_interval(number), (other, text))
    errors = []
    for resource in desired.values():
        for number, text in _numbers_of(resource):
            taken = _taken_text(held, number, text, resource.kind, resource.id)
            if taken:
                errors.append(Diagnostic(resource.source(_field(resource, text)), taken,
                                         _UNIQUE_HINT))
    for summary in sealed.values():
        for did, ident, where in summary.state_dids:
            taken = _taken_text(held, did, "DID", "extension", ident)
            if taken:
                errors.append(Diagnostic(where, taken, _UNIQUE_HINT))
    return errors


_UNIQUE_HINT = "numbers are unique across the whole state: choose another number"


def _taken_text(held: dict, number: str, text: str, kind: str, ident: str) -> str | None:
    """The error when another object of the state holds `number`; None when none does."""
    hit = held.get(number_interval(number))
    if hit is None:
        return None
    other, theirs = hit
    return (f"the {text} {number} of {kind} '{ident}' is already the {theirs} "
            f"of {holder_text(other)}")


def _field(resource, text: str) -> str | None:
    if resource.kind == "extension":
        return "did"
    return "main_fax_number" if "fax" in text else "main_number"


def _site_links(desired, others) -> list[Diagnostic]:
    served = {site: other for other in others if other.kind == "tenant"
              for site in other.attrs.get("sites") or []}
    errors = []
    for resource in desired.values():
        if resource.kind != "tenant":
            continue
        for site in resource.attrs.get("sites") or []:
            other = served.get(site)
            if other is not None:
                errors.append(Diagnostic(
                    resource.source("sites"), f"site '{site}' of tenant '{resource.id}' already "
                    f"serves {holder_text(other)}", "a site serves one tenant: order another site"))
    return errors


def _sip_domains(desired, others) -> list[Diagnostic]:
    taken = {other.attrs["sip_domain"].lower(): other for other in others
             if other.kind == "tenant" and other.attrs.get("sip_domain")}
    errors = []
    for resource in desired.values():
        domain = resource.attrs.get("sip_domain") if resource.kind == "tenant" else None
        if domain and domain.lower() in taken:
            errors.append(Diagnostic(
                resource.source("sip_domain"), f"SIP domain {domain} of tenant '{resource.id}' "
                f"is already used by {holder_text(taken[domain.lower()])}",
                "SIP domains are unique across the whole state: choose another"))
    return errors
