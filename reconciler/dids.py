"""Direct-dial numbers (`did`) of extensions: where they may lie and what `auto` means.

A DID is a number of a block of one of the tenant's sites, written like the
main number (`+49301234567-100`). `did: auto` takes the block's prefix and the
extension's own number: extension 100 of a tenant whose site has the block
`+49301234567` 0–999 dials in as `+49301234567-100`. The first of the
tenant's blocks (sites in the order listed, blocks in order) that holds the
extension number wins; when none does, `auto` is an error.
"""

from __future__ import annotations

from .manifests import Manifests
from .model import NumberBlock, Tenant

AUTO = "auto"


def tenant_blocks(manifests: Manifests, tenant: Tenant) -> list[NumberBlock]:
    """The number blocks of the tenant's declared sites, in the order they are listed."""
    return [block for site_id in tenant.sites if site_id in manifests.sites
            for block in manifests.sites[site_id].model.number_blocks]


def in_blocks(number: str, blocks: list[NumberBlock]) -> bool:
    prefix, _, extension = number.rpartition("-")
    return any(block.prefix == prefix and int(extension) in block.numbers() for block in blocks)


def auto_did(extension_number: str, blocks: list[NumberBlock]) -> str | None:
    """The DID `auto` stands for, or None when no block holds the extension number."""
    wanted = int(extension_number)
    for block in blocks:
        if wanted in block.numbers():
            return f"{block.prefix}-{extension_number.lstrip('0') or '0'}"
    return None


def e164_digits(number: str) -> str:
    """`+49301234567-100` → `49301234567100`: how SIP platforms match a dialled number."""
    prefix, _, extension = number.rpartition("-")
    return prefix.lstrip("+") + extension
