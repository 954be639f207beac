"""Documents: create, read, query, update, delete, count, increment and search, with permissions.

Every operation takes the caller's ``Identity``; the collection's permission (its ``_OGE_``
suffix, ``pub_`` prefix, or the digits remembered when suffixes are stripped) decides which rows
the caller reads and writes. Writes publish ``DbEvent``s once the store has committed them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from sbserver.backends.storage import Store
from sbserver.clauses import CREATED, FIELD, ID, Sort
from sbserver.errors import BadRequest, Forbidden, NotFound
from sbserver.ids import new_ordered_id, now_iso
from sbserver.services.events import DB_CREATED, DB_DELETED, DB_UPDATED, DbEvent, EventBus, settled
from sbserver.services.permissions import Level, Permission, check_collection_name, permission_of, stored_name
from sbserver.services.query import check_field, parse_clauses
from sbserver.types import ALL_ROWS, Base, Identity, QueuedJobs, Scope, StoredDoc

SYSTEM_FIELDS = ("id", "accountId", "ownerId", "sb_created")
DEFAULT_SIZE = 25
MAX_BULK = 10_000
MAX_PAGE = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Page:
    page: int = 1
    size: int = DEFAULT_SIZE
    desc: bool = False
    sort: str = ""

    @classmethod
    def parse(cls, page: str | None, size: str | None, desc: str | None, sort: str | None = None) -> Page:
        def as_int(raw: str | None, default: int) -> int:
            try:
                value = int(raw) if raw is not None else default
            except ValueError:
                return default
            return value if value >= 1 else default

        # Capped so the offset, (page - 1) * size, fits the stores' 64-bit integers (a bigger page is empty).
        page_no = min(as_int(page, 1), MAX_PAGE)
        return cls(page_no, min(as_int(size, DEFAULT_SIZE), 100_000), bool(desc), (sort or "").strip())

    def result(self, docs: list[dict[str, Any]], total: int) -> dict[str, Any]:
        return {"page": self.page, "size": self.size, "total": total, "results": docs}


class NotAuthorized(Forbidden):
    def __init__(self) -> None:
        super().__init__("not authorized")


def _scope(caller: Identity, level: Level) -> Scope:
    if caller.is_root or level == Level.EVERYONE:
        return ALL_ROWS
    if level == Level.ACCOUNT:
        return Scope(account_id=caller.account_id)
    return Scope(account_id=caller.account_id, owner_id=caller.user_id)


def _sort_of(page: Page) -> Sort:
    if page.sort in ("", "created", "sb_created"):
        return Sort(CREATED, page.desc)
    if page.sort == "id":
        return Sort(ID, page.desc)
    return Sort(FIELD, page.desc, check_field(page.sort, "sort"))


def _within(scope: Scope, doc: StoredDoc) -> bool:
    if scope.account_id is not None and doc.account_id != scope.account_id:
        return False
    return scope.owner_id is None or doc.owner_id == scope.owner_id


def clean(body: Any, what: str = "invalid body") -> dict[str, Any]:
    """A client document without the system fields; 400 for anything but an object."""
    if not isinstance(body, dict):
        raise BadRequest(f"{what}: expected a JSON object")
    if any(k in body for k in SYSTEM_FIELDS):
        body = {k: v for k, v in body.items() if k not in SYSTEM_FIELDS}
    return body


class JobPlanner(Protocol):
    def plan_inserts(self, base: Base, col: str, docs: list[StoredDoc], caller: Identity) -> QueuedJobs | None: ...

    def inserted(self, planned: QueuedJobs) -> None: ...


class DocumentService:
    # set by the container: plans the function jobs of new documents, written in their transaction
    planner: JobPlanner | None = None

    def __init__(self, store: Store, events: EventBus, keep_suffix: bool = True) -> None:
        self.store = store
        self.events = events
        self.keep_suffix = keep_suffix
        self._perms: dict[tuple[str, str], str] = {}

    # names and permissions
    async def resolve(self, base: Base, col: str, system: bool = False) -> tuple[str, Permission]:
        """The stored name of a collection and the permission that governs it."""
        check_collection_name(col, system_allowed=system)
        perm = permission_of(col)
        if self.keep_suffix:
            return col, perm
        name = stored_name(col, keep_suffix=False)
        digits = self._perms.get((base.name, name))
        if digits is None:
            digits = (await self.store.collections(base)).get(name)
            if digits is not None:
                self._perms[(base.name, name)] = digits
        if digits is None:
            return name, perm
        first = permission_of(f"{'pub_' if name.startswith('pub_') else ''}x_{digits}_")
        if perm.looser_than(first):
            raise Forbidden(f"collection {name!r} was created with permissions {digits}: a looser suffix is refused")
        return name, first

    def _emit(
        self,
        kind: str,
        base: Base,
        col: str,
        doc: StoredDoc,
        caller: Identity,
        deleted: bool = False,
        queued: bool = False,
    ) -> list[asyncio.Future[None]]:
        """Publish a committed write's event; returns what to await before answering the caller."""
        return self.events.publish(
            DbEvent(
                kind,
                base.name,
                col,
                doc.id,
                doc.account_id,
                doc.owner_id,
                None if deleted else doc.public(),
                caller,
                queued,
            )
        )

    async def _insert(
        self, caller: Identity, base: Base, col: str, name: str, docs: list[StoredDoc], perm: str
    ) -> None:
        """Insert new documents with their function jobs in one transaction when the triggers are
        known here (else the jobs are queued after the commit, before the caller is answered)."""
        planned = self.planner.plan_inserts(base, col, docs, caller) if self.planner else None
        await self.store.insert_documents(base, name, docs, perm, planned)
        if planned is not None and self.planner is not None:
            self.planner.inserted(planned)
        await settled(
            [d for doc in docs for d in self._emit(DB_CREATED, base, col, doc, caller, queued=planned is not None)]
        )

    # create
    async def create(self, caller: Identity, base: Base, col: str, body: Any) -> dict[str, Any]:
        name, perm = await self.resolve(base, col)
        doc = StoredDoc(new_ordered_id(), caller.account_id, caller.user_id, now_iso(), clean(body))
        await self._insert(caller, base, col, name, [doc], perm.digits)
        return doc.public()

    async def create_many(self, caller: Identity, base: Base, col: str, body: Any) -> int:
        if not isinstance(body, list):
            raise BadRequest("invalid body: bulk create expects a JSON array of objects")
        if len(body) > MAX_BULK:
            raise BadRequest(f"invalid body: at most {MAX_BULK} documents per bulk create")
        items = []
        for n, item in enumerate(body, start=1):
            items.append(clean(item, f"invalid body: element {n}"))
        name, perm = await self.resolve(base, col)
        docs = [StoredDoc(new_ordered_id(), caller.account_id, caller.user_id, now_iso(), d) for d in items]
        if docs:
            await self._insert(caller, base, col, name, docs, perm.digits)
        return len(docs)

    # read
    async def get(self, caller: Identity, base: Base, col: str, doc_id: str) -> dict[str, Any]:
        name, perm = await self.resolve(base, col)
        doc = await self.store.get_document(base, name, doc_id, _scope(caller, perm.read))
        if doc is None:
            raise NotFound("document not found")
        return doc.public()

    async def get_many(self, caller: Identity, base: Base, col: str, ids: Any) -> list[dict[str, Any]]:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("invalid body: expected a JSON array of id strings")
        if not ids:
            raise BadRequest("ids list can not be empty")
        name, perm = await self.resolve(base, col)
        docs = await self.store.get_documents(base, name, list(dict.fromkeys(ids)), _scope(caller, perm.read))
        return [d.public() for d in docs]

    async def list_page(self, caller: Identity, base: Base, col: str, page: Page) -> dict[str, Any]:
        if page.sort:
            return await self.query(caller, base, col, [], page)
        name, perm = await self.resolve(base, col)
        docs, total = await self.store.list_documents(
            base, name, _scope(caller, perm.read), page.desc, page.size, (page.page - 1) * page.size
        )
        return page.result([d.public() for d in docs], total)

    async def query(self, caller: Identity, base: Base, col: str, raw: Any, page: Page) -> dict[str, Any]:
        clauses = parse_clauses(raw)
        sort = _sort_of(page)
        name, perm = await self.resolve(base, col)
        docs, total = await self.store.query_documents(
            base, name, _scope(caller, perm.read), clauses, sort, page.size, (page.page - 1) * page.size
        )
        return page.result([d.public() for d in docs], total)

    async def count(self, caller: Identity, base: Base, col: str, raw: Any) -> int:
        clauses = parse_clauses(raw)
        name, perm = await self.resolve(base, col)
        return await self.store.count_documents(base, name, _scope(caller, perm.read), clauses)

    # update
    async def update(self, caller: Identity, base: Base, col: str, doc_id: str, body: Any) -> dict[str, Any]:
        changes = clean(body)
        name, perm = await self.resolve(base, col)
        write = _scope(caller, perm.write)

        def merge(doc: StoredDoc) -> dict[str, Any]:
            if not _within(write, doc):
                raise NotAuthorized()
            return {**doc.data, **changes}

        doc = await self.store.update_document(base, name, doc_id, _scope(caller, perm.read), merge)
        if doc is None:
            raise NotFound("document not found")
        await settled(self._emit(DB_UPDATED, base, col, doc, caller))
        return doc.public()

    async def update_many(self, caller: Identity, base: Base, col: str, body: Any) -> int:
        if not isinstance(body, dict):
            raise BadRequest('invalid body: expected {"update": {...}, "clauses": [...]}')
        clauses = parse_clauses(body.get("clauses"))
        update = body.get("update")
        changes = {} if update is None else clean(update, "invalid update")
        name, perm = await self.resolve(base, col)
        docs = await self.store.update_documents(
            base, name, _scope(caller, perm.write), clauses, lambda d: {**d.data, **changes}
        )
        await settled([d for doc in docs for d in self._emit(DB_UPDATED, base, col, doc, caller)])
        return len(docs)

    async def increment(self, caller: Identity, base: Base, col: str, doc_id: str, field: str, amount: Any) -> None:
        if not isinstance(field, str) or not field:
            raise BadRequest('invalid body: "field" must be a non-empty string')
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise BadRequest('invalid body: "range" must be an integer')
        check_field(field, "increment")
        name, perm = await self.resolve(base, col)
        write = _scope(caller, perm.write)

        def add(doc: StoredDoc) -> dict[str, Any]:
            if not _within(write, doc):
                raise NotAuthorized()
            current = doc.data.get(field)
            if current is None:
                current = 0
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise BadRequest(f"invalid type for increment: field {field!r} holds {type(current).__name__}")
            return {**doc.data, field: current + amount}

        doc = await self.store.update_document(base, name, doc_id, _scope(caller, perm.read), add)
        if doc is None:
            raise NotFound("document not found")
        await settled(self._emit(DB_UPDATED, base, col, doc, caller))

    # delete
    async def delete(self, caller: Identity, base: Base, col: str, doc_id: str) -> int:
        name, perm = await self.resolve(base, col)
        doc = await self.store.delete_document(base, name, doc_id, _scope(caller, perm.write))
        if doc is None:
            return 0
        await settled(self._emit(DB_DELETED, base, col, doc, caller, deleted=True))
        return 1

    async def delete_many(self, caller: Identity, base: Base, col: str, raw: Any) -> int:
        clauses = parse_clauses(raw)
        name, perm = await self.resolve(base, col)
        docs = await self.store.delete_documents(base, name, _scope(caller, perm.write), clauses)
        await settled([d for doc in docs for d in self._emit(DB_DELETED, base, col, doc, caller, deleted=True)])
        return len(docs)

    # search, indexes, collections
    async def search(self, caller: Identity, base: Base, col: str, keywords: str) -> list[dict[str, Any]]:
        name, perm = await self.resolve(base, col)
        words = [w for w in keywords.split(" ") if w.strip()][:32]
        if not words:
            return []
        ids = await self.store.search_text(base, name, words, 1000)
        if not ids:
            return []
        docs = {d.id: d for d in await self.store.get_documents(base, name, ids, _scope(caller, perm.read))}
        return [docs[i].public() for i in ids if i in docs]

    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        name, _ = await self.resolve(base, col)
        await self.store.index_text(base, name, doc_id, text)

    async def create_index(self, base: Base, col: str, field: str) -> None:
        """Index a field for filters, ranges and sorts on it (idempotent)."""
        name, _ = await self.resolve(base, col, system=True)
        check_field(field, "index")
        await self.store.create_index(base, name, field)

    async def indexes(self, base: Base, col: str) -> list[str]:
        """The indexed fields of a collection, by name."""
        name, _ = await self.resolve(base, col, system=True)
        return await self.store.indexes(base, name)

    async def collections(self, base: Base) -> list[str]:
        """The base's collections, and the system collections (``sb_*``) that hold something."""
        names = set(await self.store.collections(base))
        if await self.store.accounts(base):
            names |= {"sb_accounts", "sb_tokens"}  # an account always has its first user
        if await self.store.forms(base, None, 1):
            names.add("sb_forms")
        if (await self.store.file_usage(base, None))[0]:
            names.add("sb_files")
        functions = await self.store.functions(base)
        if functions:
            names.add("sb_functions")
            for fn in functions:
                if await self.store.runs(base, fn.id, 1):
                    names.add("sb_function_logs")
                    break
        if await self.store.tasks(base):
            names.add("sb_tasks")
        return sorted(names)
