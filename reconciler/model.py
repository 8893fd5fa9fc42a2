"""The manifest kinds: their fields and the formats of their values.

One pydantic model per kind. Identity, dependency order and forbidden changes
of each kind live in `resources.py`; rules that span several documents live in
`rules.py`. The JSON Schemas in `schemas/` are generated from these models.
"""

from __future__ import annotations

import datetime
import operator
from typing import Annotated, Literal, NamedTuple, Sequence, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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
Currency = _format(r"^[A-Z]{3}$", "a currency code like 'EUR'")
Price = _format(r"^[0-9]{1,7}(\.[0-9]{1,4})?$", "an amount like '12.50' (no sign, a '.' for cents)")
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
ExtensionLink = MainExtension  # one pattern, one description
Email = _format(EMAIL_PATTERN, "a valid e-mail address")
EnvName = _format(r"^[A-Za-z_][A-Za-z0-9_]*$", "an environment variable name")
Text = Annotated[str, Field(min_length=1, max_length=200)]


def _date_as_text(value):
    """A date is written YYYY-MM-DD; a number (pydantic would read seconds since 1970) is not."""
    if isinstance(value, (str, datetime.date)):
        return value
    raise PydanticCustomError("date_parsing", "not a date")


Date = Annotated[datetime.date, Field(strict=False), BeforeValidator(_date_as_text)]


SECRET_VERSION_HELP = ("raise it to write the secret again: without RECONCILER_SECRET_KEY a new "
                       "value behind the same reference is not noticed")


class Strict(BaseModel):
    """Values as YAML types them: digit strings quoted, numbers and true/false unquoted.

    `strict` makes pydantic refuse `dial_plan: "3"` and `customer_number: 1234567`
    alike, as the JSON Schemas do: one policy for the CLI and for editors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class EnvSecret(Strict):
    """A secret read from an environment variable."""

    env: EnvName = Field(description="the variable's name")
    version: int = Field(0, ge=0, description=SECRET_VERSION_HELP)


class FileSecret(Strict):
    """A secret read from a file inside the environment (path relative to the manifest)."""

    file: Annotated[str, Field(min_length=1)] = Field(
        description="the file's path, relative to the manifest; its content is the value")
    version: int = Field(0, ge=0, description=SECRET_VERSION_HELP)


Secret = Annotated[
    Union[str, EnvSecret, FileSecret],
    Field(description="a value, or {env: NAME}, or {file: PATH}; never printed"),
]


def _pin_pattern(schema: dict) -> None:
    """The schemas check a plain PIN's digits, which the CLI checks as a rule (rules.py):
    a rule keeps the tenant's other errors coming, and words the message without the value."""
    for branch in schema["anyOf"]:
        if branch.get("type") == "string":
            branch["pattern"] = PIN_PATTERN


Pin = Annotated[Secret, Field(json_schema_extra=_pin_pattern)]
SECRET_FIELDS = frozenset(("pin", "password", "sip_password", "database"))


class Account(Strict):
    """A customer account (Hauptaccount), or a sub-account (Nebenaccount) of a main account."""

    kind: Literal["Account"]
    customer_number: CustomerNumber = Field(description="the platform's customer number")
    ref: StrictBool = Field(
        False, description="a read-only reference to an object another environment owns: it "
        "must exist in the state; it is read for the rules, never written or deleted")
    parent: CustomerNumber | None = Field(
        None, description="the main account's customer number: makes this a sub-account")
    name: Text = Field(description="the customer's name, as on the invoice")
    contact: Text | None = Field(None, description="the contact person")
    address: Text | None = Field(None, description="postal address")
    collective_invoice: StrictBool = Field(
        False, description="a sub-account's charges go on its main account's invoice "
        "(Sammelrechnung)")


class BasePackage(Strict):
    """A base package (Grundpaket): central resources that the sites booked on it share."""

    kind: Literal["BasePackage"]
    id: Identifier = Field(description="your name for the package, unique in the environment")
    ref: StrictBool = Field(
        False, description="a read-only reference to an object another environment owns: it "
        "must exist in the state; it is read for the rules, never written or deleted")
    account: CustomerNumber = Field(description="the account that pays for it")
    product: Text = Field("CompanyFlex", description="the base product; one of the catalog")
    parallel_calls: Annotated[int, Field(ge=1, le=10_000)] = Field(
        description="simultaneous calls shared by the package's sites")
    budgets: dict[Identifier, Annotated[int, Field(ge=0)]] = Field(
        {}, description="monthly cost limits in whole euros, by name (e.g. national_eur: 200)")
    flatrates: list[Identifier] = Field([], description="flat rates booked on the package")


class NumberBlock(Strict):
    """A block of phone numbers: `prefix` followed by every extension from `from` to `to`."""

    prefix: PhonePrefix = Field(description="the number up to the block's extensions")
    from_: Digits = Field(alias="from", description="the first extension of the block")
    to: Digits = Field(description="the last extension of the block (at most 100,000 in all)")

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
    """A site product (Standortprodukt), booked onto exactly one base package."""

    kind: Literal["Site"]
    id: Identifier = Field(description="your name for the site, unique in the environment")
    ref: StrictBool = Field(
        False, description="a read-only reference to an object another environment owns: it "
        "must exist in the state; it is read for the rules, never written or deleted")
    base_package: Identifier = Field(description="the base package it is booked on (fixed)")
    usage: Literal["cloud_pbx", "sip_trunk"] = Field(
        description="used as Cloud PBX or as SIP trunk")
    ip_lines: Annotated[int, Field(ge=0, le=1000)] = Field(0, description="IP lines at the site")
    number_blocks: list[NumberBlock] = Field([], description="the site's phone numbers")
    address: Text | None = Field(None, description="where the site is: the location of "
                                 "emergency calls from its extensions")


class User(Strict):
    """A person who logs in to the tenant; admins manage it."""

    email: Email = Field(description="the login; unique in the tenant")
    name: Text = Field(description="the person's name")
    role: Literal["admin", "user"] = Field("user", description="admins manage the tenant")
    password: Secret | None = Field(
        None, description="admins: at least 12 characters, not used by another tenant; "
        "left out: not managed (a new admin needs one)")
    extension: ExtensionLink | None = Field(
        None, description="the number of the user's extension in this tenant")


class Extension(Strict):
    """A user extension (Nebenstelle) of the tenant."""

    number: ExtensionNumber = Field(
        description="exactly `dial_plan` digits, or `auto` for the lowest free number "
        "(kept once applied)")
    name: Text = Field(description="the extension's name; identifies an `auto` extension "
                       "without `key`")
    key: Identifier | None = Field(
        None, description="a stable identity for an `auto` extension: it keeps its number when "
        "renamed (see docs/auto-numbers.md)")
    display_name: Text | None = Field(None, description="the name shown on calls")
    email: Email | None = Field(None, description="the user's e-mail address")
    pin: Pin | None = Field(
        None, description="4–8 digits; `0000` makes the user choose one at first login; "
        "left out: not managed")
    area_code: AreaCode | None = Field(None, description="the area code (Vorwahl) of the user")
    product: Identifier | None = Field(None, description="the user product, e.g. light_user")
    addons: list[Identifier] = Field([], description="add-ons, e.g. voicemail")
    start_date: Date | None = Field(None, description="when the extension starts")
    reference: Text | None = Field(None, description="your order reference, on the invoice")
    sip_password: Secret | None = Field(
        None, description="the SIP login of the extension's phone; required under a Kamailio target")
    did: DirectDial | None = Field(
        None, description="direct-dial number in a block of the tenant's sites, or 'auto'")


class ExtensionValues(NamedTuple):
    """An extension's validated values, as every step after validation reads them.

    A tuple rather than the `Extension` model: a plan keeps one per extension, up to a
    million, and the model with its instance dict and set of given fields costs about
    eight times as much (1.3 KB). Batch-file rows (checked column by column in
    batch.py) are made of the same type.
    """

    number: str
    name: str
    pin: str | EnvSecret | FileSecret | None = None
    area_code: str | None = None
    display_name: str | None = None
    email: str | None = None
    product: str | None = None
    addons: Sequence[str] = ()
    start_date: datetime.date | None = None
    reference: str | None = None
    sip_password: str | EnvSecret | FileSecret | None = None
    did: str | None = None
    key: str | None = None


_VALUES_OF_EXTENSION = operator.itemgetter(*ExtensionValues._fields)


class BatchFile(Strict):
    """A batch file with what its rows do not say: the order's product, add-ons, date, reference."""

    file: Text = Field(description="the batch file, relative to this manifest")
    product: Identifier | None = Field(None, description="the product of every row's extension")
    addons: list[Identifier] = Field([], description="add-ons of every row's extension")
    start_date: Date | None = Field(
        None, description="when the order starts; a future date is scheduled, not applied yet")
    reference: Text | None = Field(None, description="your order number for these rows")


class Tenant(Strict):
    """A tenant (Mandant): one customer's telephone system with its users and extensions."""

    kind: Literal["Tenant"]
    name: Identifier = Field(description="the tenant's name on the platform")
    ref: StrictBool = Field(
        False, description="a read-only reference to an object another environment owns: it "
        "must exist in the state; it is read for the rules, never written or deleted")
    account: CustomerNumber = Field(description="the customer account it belongs to (fixed)")
    type: Literal["STANDARD", "CUSTOM"] = Field(
        "STANDARD", description="fixed when created; STANDARD always uses UTF-8")
    version: Text = Field("BASIC", description="the tenant version (edition); one of the catalog")
    master: Identifier | None = Field(None, description="the master tenant above it (fixed)")
    charset: Text | None = Field(
        None, description="CUSTOM tenants only, one of the catalog; default UTF-8")
    logo: Text | None = Field(
        None, description="an image file in the environment, relative to this manifest")
    dial_plan: Annotated[int, Field(ge=2, le=5)] = Field(
        description="the length of every extension number; can never be switched")
    sites: list[Identifier] = Field([], description="the sites whose numbers the tenant uses")
    main_number: PhoneNumber | None = Field(
        None, description="in a block of the tenant's sites, usually the block's -0")
    main_fax_number: PhoneNumber | None = Field(
        None, description="in a block of the tenant's sites")
    main_extension: MainExtension | None = Field(
        None, description="the extension the main number rings; default: the lowest")
    sip_domain: Annotated[SipDomain, Field(max_length=64)] | None = Field(
        None, description="the tenant's SIP domain; required when a Kamailio target serves it")
    users: list[User] = Field([], description="people who log in; at least one admin")
    extensions: list[Extension] = Field([], description="the tenant's extensions")
    extensions_from: list[Text | BatchFile] = Field(
        [], description="TSV batch files with more extensions, relative to this manifest; "
        "or {file, product, addons, start_date, reference} to order every row alike")

    @field_validator("extensions")
    @classmethod
    def _keep_values(cls, extensions: list[Extension]) -> list[ExtensionValues]:
        """Validated as `Extension`, kept as `ExtensionValues`."""
        return [ExtensionValues._make(_VALUES_OF_EXTENSION(e.__dict__)) for e in extensions]

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


class CatalogProduct(Strict):
    """An extension product of a catalog."""

    addons: list[Identifier] = Field([], description="the add-ons that can be ordered with it")


class CatalogPackageProduct(Strict):
    """A base package product of a catalog."""

    extensions_per_parallel_call: Annotated[int, Field(ge=1, le=1000)] = Field(
        10, description="how many extensions one parallel call of the package serves")


class Catalog(Strict):
    """What the platform offers beyond the built-in catalog: added to it, never replacing it."""

    kind: Literal["Catalog"]
    name: Identifier = Field(description="your name for this catalog")
    products: dict[Identifier, CatalogProduct] = Field(
        {}, description="extension products; a built-in one listed here gains the add-ons")
    base_package_products: dict[Text, CatalogPackageProduct] = Field(
        {}, description="base package products and how many extensions a parallel call serves")
    flatrates: list[Identifier] = Field([], description="flat rates a base package can book")
    versions: list[Text] = Field([], description="tenant versions")
    charsets: list[Text] = Field([], description="charsets for CUSTOM tenants")


class PriceList(Strict):
    """Monthly prices; with one, every plan shows what it changes in cost."""

    kind: Literal["PriceList"]
    name: Identifier = Field(description="your name for this price list")
    currency: Currency = Field(description="the currency of every price, e.g. EUR")
    products: dict[Identifier, Price] = Field({}, description="per extension of the product")
    addons: dict[Identifier, Price] = Field({}, description="per extension with the add-on")
    base_package_products: dict[Text, Price] = Field({}, description="per base package")
    parallel_call: Price | None = Field(None, description="per parallel call of a base package")
    site: Price | None = Field(None, description="per site")
    ip_line: Price | None = Field(None, description="per IP line of a site")
    number_block: Price | None = Field(None, description="per number block of a site")


KINDS: dict[str, type[Strict]] = {
    "Account": Account,
    "BasePackage": BasePackage,
    "Site": Site,
    "Tenant": Tenant,
    "Target": Target,
    "Catalog": Catalog,
    "PriceList": PriceList,
}
