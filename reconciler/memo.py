"""The plan memo: what the last clean plan found for each tenant's extensions.

A plan validates every extension, reads every state row in scope and compares
them. When one customer file of a thousand changed, the other tenants'
extensions give what they gave last time. The memo keeps, per tenant, the few
facts about its extensions that the rules spanning the environment need (how
many, their DIDs, what they cost), and each file's documents without the
extensions. The next plan of the environment against the same state takes an
unchanged file from the memo with its tenants *sealed*: their extensions are
neither parsed, validated, read from the state nor compared.

What makes this safe (docs/state.md, "The plan memo"):
- kept only from a plan without errors, of an environment without templates and
  targets (a target is read live by every plan); a file only when each tenant in
  it has no action, no left-alone extension, no diagnostic in the file, no batch
  file and no extension secret but the PIN '0000' (a secret from `{env:}` or
  `{file:}` can change while the file does not);
- valid only for the same state revision (any write, even one made outside
  reconciler, changes it), reconciler, `--adopt`, fingerprint key and
  environment, and while every file outside the extension lists reads as it did
  (same files, same documents): else the plan loads everything, as without it;
- authenticated like the parse cache; `apply` never uses it (it plans afresh
  under the lock, and refuses a saved plan whose actions differ).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import orjson

from .cost import order_line
from .diagnostics import Source
from .dids import tenant_blocks
from .loader import Document, LoadResult, YMap
from .parsecache import ParseCache
from .rules import declared_dids, did_label

log = logging.getLogger(__name__)

MEMO_VERSION = 1


@dataclass(frozen=True, slots=True)
class TenantSummary:
    """What the rules, the diff and the cost need of a sealed tenant's extensions."""

    count: int  # extensions, all unchanged in the state
    owned: int  # of them owned by the planning environment (for the delete limits)
    secrets: bool  # whether one has a secret (the plan's secrets mode)
    rule_dids: tuple[tuple[str, str, Source], ...]  # (DID, label, where) for rules.check_dids
    state_dids: tuple[tuple[str, str, Source], ...]  # (DID, extension id, where): uniqueness
    order_lines: tuple[tuple[tuple, int], ...]  # ((product, add-ons), extensions) costed


class PlanMemo:
    """The memo of one environment and state: read before a plan, written after a clean one."""

    def __init__(self, cache: ParseCache, path: Path, context: str, serial: int,
                 stored: dict | None):
        self.cache, self.path, self.context = cache, path, context
        self.serial = serial  # of the state it is valid for
        stored = stored if stored and stored.get("context") == context else {}
        self.heads: dict[str, str] = stored.get("heads", {})  # file → digest of its heads
        self.files: dict[str, list[Document]] = stored.get("files", {})  # parse key → heads
        self.entries: dict[Path, str] = {}  # this plan's files → their parse-cache keys
        self.seen: dict[Path, list[Document]] = {}  # … and their documents
        self.reused: set[Path] = set()
        self.digests: dict[Path, str | None] = {}

    @classmethod
    def open(cls, env: Path, state_url: str, state_version, adopt: bool,
             key_ident: str | None) -> PlanMemo | None:
        """The memo for planning `env` against the state at `state_version`; None when
        there is no usable cache (or the state's revision is not tracked)."""
        cache = ParseCache.open()
        if cache is None or state_version is None:
            return None
        from .cache import code_digest

        where = json.dumps([str(env.resolve()), state_url])
        path = cache.directory.parent / "memo" / hashlib.sha256(where.encode()).hexdigest()[:32]
        context = json.dumps([MEMO_VERSION, where, code_digest(), list(state_version), adopt,
                              key_ident])
        blob = cache.get(path)
        stored = None
        if blob is not None:
            try:
                stored = pickle.loads(blob)  # authenticated by the cache key (ParseCache.get)
            except Exception:  # noqa: BLE001 - a memo of another version only costs time
                log.info("plan memo unreadable: ignored")
        return cls(cache, path, hmac.new(cache.mac_key, context.encode(), "sha256").hexdigest(),
                   state_version[1], stored)

    # -- while loading -------------------------------------------------------
    def reuse(self, path: Path, entry: str) -> LoadResult | None:
        """The memo's documents of an unchanged file (for load_environment)."""
        self.entries[path] = entry
        documents = self.files.get(entry)
        if documents is None:
            return None
        self.reused.add(path)
        return LoadResult(list(documents))

    def saw(self, documents: list[Document]) -> None:
        if documents:
            self.seen.setdefault(documents[0].file, []).extend(documents)

    def consistent(self) -> bool:
        """Whether the sealed tenants can stand: the same files, and each file that was
        loaded afresh has the heads the memo recorded for it."""
        if len(self.seen) != len(self.entries) or set(map(str, self.seen)) != set(self.heads):
            return False
        return all(path in self.reused or self._digest(path) == self.heads[str(path)]
                   for path in self.seen)

    def _digest(self, path: Path) -> str | None:
        """The digest of the heads of a file loaded afresh (once per plan)."""
        if path not in self.digests:
            self.digests[path] = heads_digest(self.seen[path], self.cache.mac_key)
        return self.digests[path]

    def forget(self) -> None:
        """Load everything afresh (the memo is still written after the plan)."""
        self.files, self.entries, self.seen, self.reused = {}, {}, {}, set()
        self.digests = {}

    # -- after a plan ----------------------------------------------------------
    def record(self, plan, manifests, desired: dict, owners: dict, refs: dict
               ) -> Callable[[], None] | None:
        """The write of this plan's memo (to do once the plan is shown), or None."""
        if plan.rejected or manifests.targets or len(self.seen) != len(self.entries) \
                or any(doc.kind == "Use" for docs in self.seen.values() for doc in docs):
            return None
        by_tenant: dict[str, list] = {}
        for resource in desired.values():
            if resource.kind == "extension":
                by_tenant.setdefault(resource.attrs["tenant"], []).append(resource)
        touched = _touched_tenants(plan)
        warned = {item.source.file for item in plan.warnings if item.source}
        heads, files = {}, {}
        for path, documents in self.seen.items():
            entry = self.entries[path]
            if path in self.reused:
                heads[str(path)], files[entry] = self.heads[str(path)], self.files[entry]
                continue
            digest = self._digest(path)
            if digest is None:
                return None
            heads[str(path)] = digest
            if documents[0].source.file in warned:
                continue
            sealed = _sealed_documents(documents, manifests, by_tenant, touched, owners,
                                       plan.owner, refs)
            if sealed is not None:
                files[entry] = sealed
        if heads == self.heads and files.keys() == self.files.keys():
            return None  # nothing new to keep
        blob = pickle.dumps({"context": self.context, "heads": heads, "files": files},
                            protocol=pickle.HIGHEST_PROTOCOL)
        log.info("plan memo: %d of %d files sealed", len(files), len(heads))
        return lambda: self.cache.put(self.path, blob)


def heads_digest(documents: list[Document], key: bytes) -> str | None:
    """A digest of what a file declares outside its tenants' extension lists (None when a
    value cannot be serialised: such a file is never taken from the memo). Keyed: a head
    may hold a password in plain text, and a plain digest would let a guess be tested."""
    try:
        data = orjson.dumps([(doc.kind, {key: value for key, value in doc.body.items()
                                         if key != "extensions"} if doc.kind == "Tenant"
                              else doc.body) for doc in documents],
                            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return None
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _head_body(body: YMap) -> YMap:
    """A tenant document's body without `extensions` (with the positions of the rest)."""
    head = YMap((key, value) for key, value in body.items() if key != "extensions")
    head.position = body.position
    head.key_positions = {key: at for key, at in body.key_positions.items()
                          if key != "extensions"}
    return head


def _touched_tenants(plan) -> set[str]:
    """Tenants with an action or a left-alone resource among their extensions."""
    ids = [a.id for a in (*plan.actions, *plan.scheduled) if a.kind == "extension"]
    ids += [o.id for o in plan.left_alone if o.kind == "extension"]
    return {ident.partition("/")[0] for ident in ids}


def _sealed_documents(documents, manifests, by_tenant, touched, owners, owner, refs
                      ) -> list[Document] | None:
    """The file's documents with each tenant sealed, or None when one cannot be."""
    sealed = []
    for doc in documents:
        if doc.kind != "Tenant":
            sealed.append(doc)
            continue
        entry = manifests.tenants.get(doc.body.get("name"))
        if entry is None or entry.doc is not doc or ("tenant", entry.model.name) in refs \
                or entry.model.name in touched:
            return None
        summary = summarize(entry, by_tenant.get(entry.model.name, []), owners, owner,
                            tenant_blocks(manifests, entry.model))
        if summary is None:
            return None
        sealed.append(Document(doc.kind, _head_body(doc.body), doc.file, doc.env, doc.source,
                               doc.env_shown, sealed=summary))
    return sealed


def summarize(entry, resources: list, owners: dict, owner: str, blocks
              ) -> TenantSummary | None:
    """The summary of a tenant none of whose extensions changed; None when its extensions
    depend on more than its file (a batch file, a secret from elsewhere). One pass over
    the tenant's resources (this runs for every extension of a cold plan)."""
    if entry.model.extensions_from or len(resources) != len(entry.extensions):
        return None
    lines: Counter = Counter()
    owned = 0
    secrets = False
    for resource in resources:
        if resource.secrets:
            if not _only_initial_pin(resource.secrets):
                return None
            secrets = True
        holder = owners.get(resource.key)
        owned += holder == owner
        if holder in (owner, None):
            lines[order_line(resource.attrs)] += 1
    return TenantSummary(
        count=len(resources), owned=owned, secrets=secrets,
        rule_dids=_rule_dids(entry, blocks),
        state_dids=tuple((r.attrs["did"], r.id, r.source("did")) for r in resources
                         if r.attrs["did"]),
        order_lines=tuple(lines.items()))


def _only_initial_pin(secrets: dict) -> bool:
    """Whether the only secret is a PIN '0000' written in the manifest (the user chooses
    one at first login): any other value could change without the file changing."""
    return len(secrets) == 1 and "pin" in secrets and secrets["pin"].is_initial_pin


def _rule_dids(entry, blocks) -> tuple:
    """(DID, label, where) as rules.check_dids registers the tenant's DIDs."""
    return tuple((did, did_label(ext, entry.model.name), ext.at("did"))
                 for ext, did in declared_dids(entry, blocks))
