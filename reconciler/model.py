"""The manifest kinds: their fields and the formats of their values.

One pydantic model per kind. Identity, dependency order and forbidden changes
of each kind live in `resources.py`; rules that span several documents live in
`rules.py`. The JSON Schemas in `schemas/` are generated from these models.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

# Formats. The description words the error message: "… is not <description>".
FORMATS: dict[str, str] = {}  # pattern → description


def _format(pattern: str, description: str):
    """A string type with a pattern, registered for readable error messages."""
    FORMATS[pattern] = description
    return Annotated[str, Field(pattern=pattern, description=description)]


AREA_CODE_PATTERN = r"^0[1-9][0-9]{1,4}$"
EMAIL_PATTERN = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
PIN_PATTERN = r"^[0-9]{4,8}$"

CustomerNumber = _format(r"^[0-9]{4,10}$", "a customer number of 4–10 digits")
Identifier = _format(
    r"^[a-z0-9][a-z0-9._-]{0,62}$",
    "an identifier of lower-case letters, digits, '.', '_' or '-' (like 'berlin-hq')",
)
Digits = _format(r"^[0-9]{1,6}$", "1–6 digits")
PhonePrefix = _format(r"^\+[1-9][0-9]{3,14}$", "a number prefix like '+49301234567'")
PhoneNumber = _format(
    r"^\+[1-9][0-9]{3,14}-[0-9]{1,6}$",
    "a block number like '+49301234567-0' (prefix, '-', extension)",
)
ExtensionNumber = _format(r"^([0-9]{2,5}|auto)$", "2–5 digits or 'auto'")
AreaCode = _format(AREA_CODE_PATTERN, "an area code like '030' or '089'")
DirectDial = _format(
    r"^(\+[1-9][0-9]{3,14}-[0-9]{1,6}|auto)$",
    "a block number like '+49301234567-100' or 'auto' (block prefix + extension number)",
)
SipDomain = _format(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$",
    "a lower-case DNS name of at most 64 characters, like 'mustermensch.pbx.example'",
)
MainExtension = _format(r"^[0-9]{2,5}$", "an extension number of 2–5 digits")
Email = _format(EMAIL_PATTERN, "a valid e-mail address")
EnvName = _format(r"^[A-Za-z_][A-Za-z0-9_]*$", "an environment variable name")
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EnvSecret(Strict):
    """A secret read from an environment variable."""

    env: EnvName


class FileSecret(Strict):
    """A secret read from a file inside the environment (path relative to the manifest)."""

    file: Annotated[str, Field(min_length=1)]


Secret = Annotated[
    Union[str, EnvSecret, FileSecret],
    Field(description="a value, or {env: NAME}, or {file: PATH}; never printed"),
]
SECRET_FIELDS = frozenset(("pin", "password", "sip_password", "database"))


class Account(Strict):
    kind: Literal["Account"]
    customer_number: CustomerNumber
    parent: CustomerNumber | None = None
    name: Text
    contact: Text | None = None
    address: Text | None = None
    collective_invoice: StrictBool = False


class BasePackage(Strict):
    kind: Literal["BasePackage"]
    id: Identifier
    account: CustomerNumber
    product: Literal["CompanyFlex"] = "CompanyFlex"
    parallel_calls: Annotated[int, Field(ge=1, le=10_000)]
    budgets: dict[Identifier, Annotated[int, Field(ge=0)]] = {}
    flatrates: list[Identifier] = []


class NumberBlock(Strict):
    prefix: PhonePrefix
    from_: Digits = Field(alias="from")
    to: Digits

    @model_validator(mode="after")
    def _ordered(self) -> NumberBlock:
        if int(self.from_) > int(self.to):
            raise ValueError("'from' must not be greater than 'to'")
        if int(self.to) - int(self.from_) >= 100_000:
            raise ValueError("a block spans at most 100,000 numbers")
        return self

    def numbers(self) -> range:
        return range(int(self.from_), int(self.to) + 1)


class Site(Strict):
    kind: Literal["Site"]
    id: Identifier
    base_package: Identifier
    usage: Literal["cloud_pbx", "sip_trunk"]
    ip_lines: Annotated[int, Field(ge=0, le=1000)] = 0
    number_blocks: list[NumberBlock] = []


class User(Strict):
    email: Email
    name: Text
    role: Literal["admin", "user"] = "user"
    password: Secret | None = None


class Extension(Strict):
    number: ExtensionNumber
    name: Text
    display_name: Text | None = None
    email: Email | None = None
    pin: Secret | None = None
    area_code: AreaCode | None = None
    product: Identifier | None = None
    addons: list[Identifier] = []
    start_date: datetime.date | None = None
    reference: Text | None = None
    sip_password: Secret | None = Field(
        None, description="the SIP login of the extension's phone; required under a Kamailio target")
    did: DirectDial | None = Field(
        None, description="direct-dial number in a block of the tenant's sites, or 'auto'")


class Tenant(Strict):
    kind: Literal["Tenant"]
    name: Identifier
    account: CustomerNumber
    type: Literal["STANDARD", "CUSTOM"] = "STANDARD"
    version: Text = "BASIC"
    master: Identifier | None = None
    charset: Text | None = None
    logo: Text | None = None
    dial_plan: Annotated[int, Field(ge=2, le=5, description="the extension length, 2–5")]
    sites: list[Identifier] = []
    main_number: PhoneNumber | None = None
    main_fax_number: PhoneNumber | None = None
    main_extension: MainExtension | None = Field(
        None, description="the extension the main number rings; default: the lowest")
    sip_domain: Annotated[SipDomain, Field(max_length=64)] | None = Field(
        None, description="the tenant's SIP domain; required when a Kamailio target serves it")
    users: list[User] = []
    extensions: list[Extension] = []
    extensions_from: list[Text] = []

    @property
    def effective_charset(self) -> str:
        return self.charset or "UTF-8"


class Target(Strict):
    """A real platform that apply provisions and plan reads back (see docs/targets.md)."""

    kind: Literal["Target"]
    name: Identifier
    provider: Literal["kamailio"]
    database: Secret = Field(
        description="the platform's own database: sqlite:///PATH or postgresql://…, "
        "or {env: NAME} / {file: PATH} holding it")
    accounts: list[CustomerNumber] | None = Field(
        None, description="whose tenants it serves; default: every account of the environment")


KINDS: dict[str, type[Strict]] = {
    "Account": Account,
    "BasePackage": BasePackage,
    "Site": Site,
    "Tenant": Tenant,
    "Target": Target,
}
