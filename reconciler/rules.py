"""Validate stage, part two: the platform rules that span documents (docs/reference.md).

Each rule is a small function over `Manifests` that adds diagnostics; all of
them run, so one run reports every violation.
"""

from __future__ import annotations

import re

from .catalog import check_catalog, effective_catalog
from .diagnostics import Diagnostics, Source
from .dids import AUTO, auto_did, in_blocks, tenant_blocks
from .logo import logo_problem
from .manifests import ExtensionEntry, Manifests, TenantEntry
from .model import PIN_PATTERN
from .numbers import Held, block_intervals, first_overlaps, number_interval
from .secrets import password_problem
from .targets import check_targets

_PIN = re.compile(PIN_PATTERN)
MAX_ADMINS = 3


def check_rules(manifests: Manifests, diagnostics: Diagnostics) -> None:
    for rule in RULES:
        rule(manifests, diagnostics)


def check_accounts(m: Manifests, d: Diagnostics) -> None:
    """An account's `parent` is another declared account, and a main account: a sub-account
    cannot have sub-accounts, and no account is its own parent."""
    for number, entry in m.accounts.items():
        parent = entry.model.parent
        if parent is None:
            continue
        where = entry.at("parent")
        if parent == number:
            d.error(where, f"account {number} names itself as parent", "remove 'parent'")
        elif parent not in m.accounts:
            d.error(where, f"parent account {parent} of account {number} is not declared",
                    f"declare an Account with customer_number '{parent}' or fix the reference")
        elif m.accounts[parent].model.parent is not None:
            d.error(where, f"account {parent} is itself a sub-account and cannot be a parent",
                    f"only a main account can have sub-accounts: use parent "
                    f"'{m.accounts[parent].model.parent}' instead")


def check_packages_and_sites(m: Manifests, d: Diagnostics) -> None:
    """A base package's `account` and a site's `base_package` are declared in the environment."""
    for package_id, entry in m.packages.items():
        if entry.model.account not in m.accounts:
            d.error(entry.at("account"),
                    f"account {entry.model.account} of base package '{package_id}' is not declared",
                    "declare the Account or fix the reference")
    for site_id, entry in m.sites.items():
        if entry.model.base_package not in m.packages:
            d.error(entry.at("base_package"),
                    f"base package '{entry.model.base_package}' of site '{site_id}' is not declared",
                    "declare the BasePackage or fix the reference")


def check_number_blocks(m: Manifests, d: Diagnostics) -> None:
    """Number blocks never overlap, within a site or across sites."""
    held = []
    for order, (site_id, entry) in enumerate(m.sites.items()):
        for index, block in enumerate(entry.model.number_blocks):
            holder = (order, index, site_id)
            held.extend(Held(interval, holder)
                        for interval in block_intervals(block.prefix, block.from_, block.to))
    reported = set()
    for one, other in first_overlaps(held):
        earlier, later = sorted((one, other), key=lambda h: h.holder)
        if later.holder in reported:
            continue
        reported.add(later.holder)
        _, index, site_id = later.holder
        block = m.sites[site_id].model.number_blocks[index]
        shared = max(one.interval.low, other.interval.low)
        d.error(m.sites[site_id].at("number_blocks", index),
                f"number block {block.prefix} {block.from_}–{block.to} of site "
                f"'{site_id}' overlaps a block of site '{earlier.holder[2]}' (at +{shared})",
                "give each site its own range of numbers")


def check_tenants(m: Manifests, d: Diagnostics) -> None:
    """A tenant's `account` and `sites` are declared; each site's base package belongs to the
    tenant's account or its main account; a STANDARD tenant's charset is UTF-8; the `logo` is a
    file inside the environment; `main_number` and `main_fax_number` lie in a number block of
    the tenant's sites (a main number other than the block's `-0` is a warning)."""
    for name, entry in m.tenants.items():
        tenant = entry.model
        if tenant.account not in m.accounts:
            d.error(entry.at("account"), f"account {tenant.account} of tenant '{name}' is not declared",
                    "declare the Account or fix the reference")
        if tenant.type == "STANDARD" and tenant.effective_charset.upper() != "UTF-8":
            d.error(entry.at("charset"),
                    f"a STANDARD tenant always uses UTF-8, not '{tenant.charset}'",
                    "remove 'charset' or set it to UTF-8 (or use type CUSTOM)")
        if tenant.type == "CUSTOM" and tenant.master is None:
            d.error(entry.at("type"), f"CUSTOM tenant '{name}' has no master tenant",
                    "add 'master: …' naming the tenant it is created under (usually your own): "
                    "the platform's service configures a CUSTOM tenant from its master")
        if tenant.logo is not None:
            logo = (entry.doc.file.parent / tenant.logo).resolve()
            if not logo.is_relative_to(m.env) or not logo.is_file():
                d.error(entry.at("logo"), f"logo '{tenant.logo}' is not a file in the environment",
                        "put the logo next to the manifest and give its relative path")
            elif problem := logo_problem(logo):
                d.error(entry.at("logo"), f"logo '{tenant.logo}' {problem[0]}", problem[1])
        _check_tenant_sites(m, entry, d)
        _check_main_numbers(m, entry, d)


def _check_tenant_sites(m: Manifests, entry: TenantEntry, d: Diagnostics) -> None:
    tenant = entry.model
    account = m.accounts.get(tenant.account)
    allowed = {tenant.account}
    if account is not None and account.model.parent:
        allowed.add(account.model.parent)
    for index, site_id in enumerate(tenant.sites):
        site = m.sites.get(site_id)
        if site is None:
            d.error(entry.at("sites", index), f"site '{site_id}' of tenant '{tenant.name}' is not declared",
                    "declare the Site or fix the reference")
            continue
        package = m.packages.get(site.model.base_package)
        # with the tenant's account undeclared (reported) its main account is unknown
        if package is not None and account is not None and package.model.account not in allowed:
            d.error(entry.at("sites", index),
                    f"site '{site_id}' is booked on base package '{package.model.id}' of account "
                    f"{package.model.account}, not of the tenant's account {tenant.account} "
                    "or its main account",
                    "use a site whose base package belongs to this customer")


def check_site_use(m: Manifests, d: Diagnostics) -> None:
    """Seeds 001/002: a tenant is a Cloud PBX on the sites of one base package, a site serves one tenant."""
    users: dict[str, tuple[str, Source]] = {}  # site → (tenant, where it is listed)
    for name, entry in m.tenants.items():
        packages: dict[str, str] = {}  # base package → the first site of the tenant on it
        for index, site_id in enumerate(entry.model.sites):
            site = m.sites.get(site_id)
            if site is None:
                continue  # reported by _check_tenant_sites
            where = entry.at("sites", index)
            if site.model.usage != "cloud_pbx":
                d.error(where, f"site '{site_id}' is used as {site.model.usage}, so tenant "
                        f"'{name}' (a Cloud PBX) cannot use it",
                        "a site is used either as Cloud PBX or as SIP trunk: list a site with "
                        "'usage: cloud_pbx'")
            first = users.setdefault(site_id, (name, where))
            if first[0] != name:
                d.error(where, f"site '{site_id}' is already used by tenant '{first[0]}' "
                        f"(at {first[1].short})",
                        "a site's line and number blocks belong to one tenant: order another site")
            package = site.model.base_package
            if not _own_package(m, entry, package):
                continue  # reported by _check_tenant_sites
            if packages and package not in packages:
                other_package, other_site = next(iter(packages.items()))
                d.error(where, f"tenant '{name}' uses sites of two base packages: '{site_id}' is "
                        f"on '{package}', '{other_site}' on '{other_package}'",
                        "a base package's resources are not shared with another package: use "
                        "sites of one base package, or a second tenant")
            packages.setdefault(package, site_id)


def _own_package(m: Manifests, entry: TenantEntry, package_id: str) -> bool:
    package = m.packages.get(package_id)
    account = m.accounts.get(entry.model.account)
    if package is None or account is None:
        return False
    return package.model.account in (entry.model.account, account.model.parent)


def check_capacity(m: Manifests, d: Diagnostics) -> None:
    """The extensions on a base package's sites must fit its parallel calls (seed 001)."""
    catalog = effective_catalog(m)
    load: dict[str, list[tuple[str, int]]] = {}  # package → [(tenant, extensions)]
    for name, entry in m.tenants.items():
        package = next((m.sites[s].model.base_package for s in entry.model.sites
                        if s in m.sites), None)
        if package in m.packages and entry.extension_count:
            load.setdefault(package, []).append((name, entry.extension_count))
    for package_id, tenants in load.items():
        package = m.packages[package_id]
        per_call = catalog.base_package_products.get(package.model.product)
        if per_call is None:
            continue  # an unknown product is reported by the catalog check
        calls = package.model.parallel_calls
        total = sum(count for _, count in tenants)
        if total > calls * per_call:
            needed = -(-total // per_call)
            who = ", ".join(f"'{name}' {count}" for name, count in sorted(tenants))
            d.error(package.at("parallel_calls"),
                    f"base package '{package_id}' has {calls} parallel call{'s' if calls > 1 else ''}, "
                    f"which serve{'s' if calls == 1 else ''} at most "
                    f"{calls * per_call} extensions ({per_call} per parallel call for "
                    f"{package.model.product}), but the tenants on its sites have {total} "
                    f"({who})",
                    f"book more parallel calls (parallel_calls: {needed}) or move extensions to "
                    "a tenant on another base package")


def _check_main_numbers(m: Manifests, entry: TenantEntry, d: Diagnostics) -> None:
    tenant = entry.model
    for field_name in ("main_number", "main_fax_number"):
        number = getattr(tenant, field_name)
        if number is None:
            continue
        _, _, extension = number.rpartition("-")
        wanted = number_interval(number)
        inside = any(
            interval.length == wanted.length and interval.low <= wanted.low <= interval.high
            for site_id in tenant.sites if site_id in m.sites
            for block in m.sites[site_id].model.number_blocks
            for interval in block_intervals(block.prefix, block.from_, block.to)
        )
        if not inside:
            d.error(entry.at(field_name),
                    f"{field_name} {number} is not in a number block of the tenant's sites",
                    "pick a number from a block of one of the sites in 'sites'")
        elif field_name == "main_number" and extension != "0":
            d.warning(entry.at(field_name), f"main_number {number} is not the block's -0",
                      "the main number is usually the block's '-0'")


def check_masters(m: Manifests, d: Diagnostics) -> None:
    """A tenant's `master` is a declared tenant, and masters form no cycle."""
    for name, entry in m.tenants.items():
        master = entry.model.master
        if master is not None and master not in m.tenants:
            d.error(entry.at("master"), f"master tenant '{master}' of tenant '{name}' is not declared",
                    "declare the master Tenant or fix the reference")
    reported: set[str] = set()
    for name in m.tenants:
        chain, current = [], name
        while current in m.tenants and current not in chain:
            chain.append(current)
            current = m.tenants[current].model.master
        if current in chain and current not in reported:
            cycle = chain[chain.index(current):]
            reported.update(cycle)
            d.error(m.tenants[current].at("master"),
                    "master tenants form a cycle: " + " → ".join(cycle + [current]),
                    "one tenant of the cycle must have no master")


def check_extensions(m: Manifests, d: Diagnostics) -> None:
    """Extension numbers have exactly `dial_plan` digits and are unique in their tenant (YAML and
    batch files together); auto extensions have unique names; PINs (also those behind
    `{env: …}`/`{file: …}`) are 4–8 digits; a plain-text PIN other than `0000` is a warning
    (an error under `--strict`)."""
    for name, entry in m.tenants.items():
        length = entry.model.dial_plan
        seen: dict[str, ExtensionEntry] = {}  # sources are located only for errors
        auto_names: dict[str, ExtensionEntry] = {}
        for ext in entry.extensions:
            number = ext.model.number
            if number == "auto":
                _check_auto_name(name, ext, auto_names, d)
            else:
                if len(number) != length:
                    d.error(ext.source, f"extension {number} has {len(number)} digits, "
                            f"but tenant '{name}' has a {length}-digit dial plan",
                            f"use a {length}-digit number (the dial plan can never be switched)",
                            rule="extension.dial-plan", subject=("tenant", name))
                elif number in seen:
                    d.error(ext.source, f"extension {number} is used twice in tenant '{name}' "
                            f"(first at {seen[number].source.short})",
                            "give each extension its own number")
                else:
                    seen[number] = ext
            if ext.pin is not None:
                _check_pin(ext, d)
            if ext.sip_password is not None and ext.sip_password.origin == "manifest":
                d.warning(ext.at("sip_password"), f"the SIP password of extension "
                          f"'{ext.model.name}' is written in plain text",
                          "use {env: NAME} or {file: PATH}", rule="secret.plain-text")


def check_dids(m: Manifests, d: Diagnostics) -> None:
    """A DID lies in a block of the tenant's sites and rings one extension only."""
    owners: dict[str, str] = {}  # number → what already uses it
    for name, entry in m.tenants.items():
        tenant = entry.model
        for field_name in ("main_number", "main_fax_number"):
            number = getattr(tenant, field_name)
            if number is not None:
                owners.setdefault(number, f"the {field_name} of tenant '{name}'")
    for name, entry in m.tenants.items():
        if entry.sealed:  # its DIDs lay in its blocks when it was sealed
            for did, label, where in entry.sealed.rule_dids:
                _claim_did(owners, did, label, lambda where=where: where, d)
            continue
        blocks = tenant_blocks(m, entry.model)
        for ext, did in declared_dids(entry, blocks):
            label = did_label(ext, name)
            if did is None:
                d.error(ext.at("did"), f"did: auto finds no number block of tenant "
                        f"'{name}' that holds extension number {ext.model.number}",
                        "give the DID explicitly, or add a block that covers the "
                        "extension numbers to one of the tenant's sites")
            elif not in_blocks(did, blocks):
                d.error(ext.at("did"), f"did {did} of {label} is not in a number block of "
                        "the tenant's sites", "pick a number from a block of one of the "
                        "sites in 'sites'")
            else:
                _claim_did(owners, did, label, lambda ext=ext: ext.at("did"), d)


def declared_dids(entry: TenantEntry, blocks):
    """(extension, its DID) of each of the tenant's extensions with a DID, `auto` resolved
    in `blocks` (None when no block holds the number). An `auto` DID of an `auto` number is
    left out: it is checked when the number is assigned."""
    for ext in entry.extensions:
        did = ext.model.did
        if did is None or (did == AUTO and ext.model.number == AUTO):
            continue
        yield ext, auto_did(ext.model.number, blocks) if did == AUTO else did


def did_label(ext: ExtensionEntry, tenant: str) -> str:
    return f"extension {ext.model.number} of tenant '{tenant}'"


def _claim_did(owners: dict[str, str], did: str, label: str, where, d: Diagnostics) -> None:
    """`did` rings `label`, unless something else has it (`where`: its source, located only
    for an error)."""
    other = owners.setdefault(did, label)
    if other != label:
        d.error(where(), f"did {did} of {label} is already {other}",
                "give every extension its own direct-dial number")


def _check_auto_name(tenant: str, ext, auto_names: dict, d: Diagnostics) -> None:
    """An auto extension is identified by its `key`, else by its name: those are unique."""
    identity = ("key", ext.model.key) if ext.model.key else ("name", ext.model.name)
    first = auto_names.setdefault(identity, ext)
    if first is not ext:
        d.error(ext.source, f"two auto extensions have the {identity[0]} '{identity[1]}' in "
                f"tenant '{tenant}' (first at {first.source.short})",
                "give each auto extension its own key or name: it keeps its number by it")


def _check_pin(ext, d: Diagnostics) -> None:
    value = ext.pin.reveal()
    if not _PIN.match(value):
        d.error(ext.at("pin"), f"the PIN of extension '{ext.model.name}' must be 4–8 digits",
                "use '0000' to make the user choose one at first login")
    elif ext.pin.origin == "manifest" and value != "0000":
        d.warning(ext.at("pin"), f"the PIN of extension '{ext.model.name}' is written in plain text",
                  "use {env: NAME} or {file: PATH}, or '0000' to force a change at first login",
                  rule="secret.plain-text")


def check_users(m: Manifests, d: Diagnostics) -> None:
    """Every tenant has an administrator (more than 3 is a warning); a user is listed once per
    tenant; an admin's password has at least 12 characters, no trivial pattern, and is not used by
    another tenant's admin; a plain-text password is a warning (an error under `--strict`)."""
    owners: dict[str, tuple[str, Source]] = {}  # admin password → (tenant, where)
    for name, entry in m.tenants.items():
        users = entry.model.users
        emails: dict[str, int] = {}  # lower-case → index of its first user
        admins = [i for i, user in enumerate(users) if user.role == "admin"]
        for index, user in enumerate(users):
            first = users[emails.setdefault(user.email.lower(), index)].email
            if emails[user.email.lower()] != index:
                same = "" if first == user.email else f" (as {first}: e-mail addresses ignore case)"
                d.error(entry.at("users", index, "email"),
                        f"user {user.email} is listed twice in tenant '{name}'{same}", "remove one")
        if not admins:
            d.error(entry.at("users") if users else entry.source,
                    f"tenant '{name}' has no administrator",
                    "add a user with 'role: admin' (every tenant needs one before hand-over)",
                    rule="tenant.admin-required", subject=("tenant", name))
        elif len(admins) > MAX_ADMINS:
            d.warning(entry.at("users"), f"tenant '{name}' has {len(admins)} administrators",
                      f"keep administrators few (at most {MAX_ADMINS})")
        for index in range(len(users)):
            _check_password(entry, index, index in admins, owners, d)


def check_user_extensions(m: Manifests, d: Diagnostics) -> None:
    """A user's `extension` is one of the tenant's extensions, and no other user's (seed 002)."""
    for name, entry in m.tenants.items():
        users = entry.model.users
        if entry.sealed or not any(user.extension for user in users):
            continue  # sealed: its users and extensions are those that passed this check
        numbers = {ext.model.number for ext in entry.extensions}
        linked: dict[str, str] = {}  # extension → user e-mail
        for index, user in enumerate(users):
            number = user.extension
            if number is None:
                continue
            where = entry.at("users", index, "extension")
            if number not in numbers:
                d.error(where, f"user {user.email} is linked to extension {number}, which tenant "
                        f"'{name}' does not have",
                        "link an extension with an explicit number of this tenant (an 'auto' "
                        "number is only known once applied)")
            elif linked.setdefault(number, user.email) != user.email:
                d.error(where, f"extension {number} of tenant '{name}' is already linked to "
                        f"user {linked[number]}", "link each extension to one user")


def check_admin_passwords(m: Manifests, d: Diagnostics) -> None:
    """An admin without a password could not log in to hand the tenant over.

    An admin that already exists keeps its password unmanaged; `plan` drops
    this error for those (rule `user.admin-password-required`).
    """
    for name, entry in m.tenants.items():
        for index, user in enumerate(entry.model.users):
            if user.role == "admin" and user.password is None:
                d.error(entry.at("users", index), f"admin {user.email} of tenant '{name}' "
                        "has no password",
                        "add 'password: {env: NAME}' or '{file: PATH}' (a new admin needs one "
                        "to log in)", rule="user.admin-password-required",
                        subject=("user", f"{name}/{user.email}"))


def _check_password(entry: TenantEntry, index: int, is_admin: bool, owners: dict,
                    d: Diagnostics) -> None:
    user = entry.model.users[index]
    secret = entry.passwords.get(user.email)
    if secret is None:
        return
    where = entry.at("users", index, "password")
    if secret.origin == "manifest":
        d.warning(where, f"the password of {user.email} is written in plain text",
                  "use {env: NAME} or {file: PATH}", rule="secret.plain-text")
    if not is_admin:
        return
    problem = password_problem(secret.reveal())
    if problem:
        d.error(where, f"the password of admin {user.email} {problem}",
                "use at least 12 characters without a simple pattern")
    value = secret.reveal()
    other = owners.get(value)
    if other and other[0] != entry.model.name:
        d.error(where, f"the password of admin {user.email} is also used in tenant '{other[0]}' "
                f"(at {other[1].short})", "give every tenant's admins their own password")
    owners.setdefault(value, (entry.model.name, where))


def check_tenant_domains(m: Manifests, d: Diagnostics) -> None:
    owners: dict[str, str] = {}
    for name, entry in m.tenants.items():
        domain = entry.model.sip_domain
        if domain is None:
            continue
        other = owners.setdefault(domain, name)
        if other != name:
            d.error(entry.at("sip_domain"), f"sip_domain {domain} of tenant '{name}' is "
                    f"already the SIP domain of tenant '{other}'",
                    "give every tenant its own SIP domain")
        main = entry.model.main_extension
        if main is not None and not entry.sealed \
                and not any(e.model.number == main for e in entry.extensions):
            d.error(entry.at("main_extension"), f"main_extension {main} of tenant '{name}' "
                    "is not one of its extensions", "name a declared extension number")


RULES = (check_accounts, check_packages_and_sites, check_number_blocks, check_tenants,
         check_masters, check_extensions, check_dids, check_tenant_domains, check_users,
         check_targets, check_user_extensions, check_admin_passwords, check_catalog,
         check_site_use, check_capacity)
