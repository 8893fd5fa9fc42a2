"""Which `kind: Target` serves which tenant, and the rules targets add to validation.

A target without `accounts` serves every tenant of the environment; with
`accounts` it serves the tenants of those accounts and of their sub-accounts.
A tenant is served by at most one target. The providers that talk to the real
systems live in `providers/`.
"""

from __future__ import annotations

from .diagnostics import Diagnostics
from .manifests import Manifests, TargetEntry, TenantEntry
from .secrets import password_problem


def serves(target: TargetEntry, tenant: TenantEntry, manifests: Manifests) -> bool:
    accounts = target.model.accounts
    if accounts is None:
        return True
    account = manifests.accounts.get(tenant.model.account)
    parent = account.model.parent if account is not None else None
    return tenant.model.account in accounts or (parent is not None and parent in accounts)


def served_tenants(manifests: Manifests) -> dict[str, TargetEntry]:
    """Tenant name → the (first) target that serves it."""
    served: dict[str, TargetEntry] = {}
    for target in manifests.targets.values():
        for name, tenant in manifests.tenants.items():
            if serves(target, tenant, manifests):
                served.setdefault(name, target)
    return served


def check_targets(m: Manifests, d: Diagnostics) -> None:
    for name, target in m.targets.items():
        for index, number in enumerate(target.model.accounts or ()):
            if number not in m.accounts:
                d.error(target.at("accounts", index),
                        f"account {number} of target '{name}' is not declared",
                        "declare the Account in this environment or fix the number")
        if target.database is not None and target.database.origin == "manifest" \
                and _has_password(target.database.reveal()):
            d.warning(target.at("database"),
                      f"the database URL of target '{name}' holds a password in plain text",
                      "use database: {env: NAME} or {file: PATH}", rule="secret.plain-text")
    first: dict[str, TargetEntry] = {}
    for target in m.targets.values():
        for tenant_name, tenant in m.tenants.items():
            if not serves(target, tenant, m):
                continue
            other = first.setdefault(tenant_name, target)
            if other is not target:
                d.error(target.at("name"),
                        f"targets '{other.model.name}' (at {other.source.short}) and "
                        f"'{target.model.name}' both serve tenant '{tenant_name}'",
                        "give each target its own 'accounts' so every tenant has one target")
    for tenant_name, target in first.items():
        _check_served_tenant(m.tenants[tenant_name], target, d)


def _check_served_tenant(tenant: TenantEntry, target: TargetEntry, d: Diagnostics) -> None:
    label = f"{target.model.provider} target '{target.model.name}' (at {target.source.short})"
    if tenant.model.sip_domain is None:
        d.error(tenant.at("name"), f"tenant '{tenant.model.name}' is served by {label} "
                "but has no sip_domain",
                "add 'sip_domain: <tenant>.pbx.example' (the domain its phones register to)")
    for ext in tenant.extensions:
        if ext.model.sip_password is None:
            d.error(ext.source, f"extension {ext.model.number} ('{ext.model.name}') of tenant "
                    f"'{tenant.model.name}' has no sip_password, but {label} provisions it",
                    "add 'sip_password: {env: NAME}' or {file: PATH} (its phone's SIP login)")
        elif ext.sip_password is not None:
            problem = password_problem(ext.sip_password.reveal())
            if problem:
                d.error(ext.at("sip_password"), f"the SIP password of extension "
                        f"{ext.model.number} ('{ext.model.name}') {problem}",
                        "use at least 12 characters without a simple pattern: SIP logins "
                        "are attacked around the clock for toll fraud")


def _has_password(url: str) -> bool:
    userinfo = url.partition("://")[2].rpartition("@")[0]
    return ":" in userinfo or "password=" in url.lower()
