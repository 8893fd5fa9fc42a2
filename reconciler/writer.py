"""Manifests written back as YAML (`render`, `export`) that read back exactly the same.

Numbers stay numbers as the user wrote them (`dial_plan: 3`), text that YAML
would read as a number is quoted (`customer_number: "7000125"`), and a plain
text secret is never written: it becomes an `{env: NAME}` reference whose
name says where it belongs (`secret_variable`).
"""

from __future__ import annotations

import io
import re

from ruamel.yaml import YAML

from .loader import YFloat, YInt, number_text, plain_scalar
from .model import SECRET_FIELDS
from .secrets import INITIAL_PIN

SECRET_PREFIX = "RECONCILER_SECRET_"
_QUOTED_START = frozenset("+0123456789")  # digit strings and phone numbers, quoted as in the docs


def secret_variable(*parts: str) -> str:
    """The environment variable a plain-text secret is referred to by, e.g.
    RECONCILER_SECRET_KANZLEI_BRANDT_1999_PIN for tenant kanzlei-brandt's extension 1999."""
    return SECRET_PREFIX + "_".join(re.sub(r"[^A-Za-z0-9]+", "_", part).strip("_").upper()
                                    for part in parts if part)


def plain_secrets_as_references(kind: str, body: dict) -> tuple[dict, list[str]]:
    """A document with its plain-text secrets (not the initial PIN 0000) replaced by
    `{env: NAME}`, and the names used."""
    names: list[str] = []
    identity = str(body.get("name") or body.get("id") or "")

    def replace(item: dict, owner: str) -> dict:
        result = dict(item)
        for field in SECRET_FIELDS & item.keys():
            value = item[field]
            if isinstance(value, str) and not (field == "pin" and value == INITIAL_PIN):
                name = secret_variable(identity if kind != "Target" else f"target-{identity}",
                                       owner, field)
                result[field] = {"env": name}
                names.append(name)
        return result

    result = replace(body, "")
    for key, identity_field in (("users", "email"), ("extensions", "number")):
        if isinstance(body.get(key), list):
            result[key] = [replace(item, str(item.get(identity_field, index)))
                           if isinstance(item, dict) else item
                           for index, item in enumerate(body[key])]
    return result, names


def dump_yaml(documents: list[dict], header: str = "") -> str:
    """Documents as readable YAML (block style, keys in the given order)."""
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.allow_unicode = True
    yaml.width = 120
    yaml.representer.add_representer(str, _represent_str)
    yaml.representer.add_representer(YInt, _represent_number)
    yaml.representer.add_representer(YFloat, _represent_number)
    yaml.representer.add_representer(_Reference, _represent_reference)
    buffer = io.StringIO()
    yaml.dump_all([_plain(document) for document in documents], buffer)
    return header + buffer.getvalue()


class _Reference(dict):
    """A secret reference, written on one line: `pin: {file: secrets/pin.txt}`."""


_REFERENCE_KEYS = ({"env"}, {"env", "version"}, {"file"}, {"file", "version"})


def _plain(node):
    """YMap/YList (which the dumper does not know) as dict/list."""
    if isinstance(node, dict):
        plain = {key: _plain(value) for key, value in node.items()}
        return _Reference(plain) if set(plain) in _REFERENCE_KEYS else plain
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def _represent_str(representer, value: str):
    if (value[:1] in _QUOTED_START or not isinstance(plain_scalar(value), str)
            or value != value.strip()):
        return representer.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return representer.represent_str(value)


def _represent_number(representer, value):
    tag = "int" if isinstance(value, int) else "float"
    return representer.represent_scalar(f"tag:yaml.org,2002:{tag}", number_text(value))


def _represent_reference(representer, value: dict):
    return representer.represent_mapping("tag:yaml.org,2002:map", value, flow_style=True)
