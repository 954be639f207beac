"""The helpers a function calls, performed on the server with the run's identity.

Every helper answers ``{ok, content}`` (``content`` an error string when ``ok`` is false) with
StaticBackend's texts, checks its argument count and types, and never raises: a refused
database call is a failed result the function can inspect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sbserver.backends.cache import Cache
from sbserver.errors import SBError, client_message, is_internal
from sbserver.ids import new_id
from sbserver.outbound import Outbound, OutboundError
from sbserver.runtime.pool import UNDEFINED
from sbserver.services.cache import AppCache
from sbserver.services.documents import DocumentService, Page
from sbserver.services.mail import MailService
from sbserver.services.realtime import Broker
from sbserver.settings import Settings
from sbserver.types import Base, FunctionDef, Identity

FETCH_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
ORDINALS = ("first", "second", "third", "fourth")
# Helpers that wait on the outside world: a run waiting on one does not hold a CPU slot.
IO_HELPERS = frozenset({"fetch", "sendMail"})


def ok(content: Any = None) -> dict[str, Any]:
    return {"ok": True, "content": content} if content is not None else {"ok": True}


def fail(text: str) -> dict[str, Any]:
    return {"ok": False, "content": text}


log = logging.getLogger("sbserver.functions")


def reason(exc: SBError) -> str:
    """What a function may read about a failed helper call: its own mistakes in full, a store or
    backend failure only as a generic line (the details go to the server log)."""
    if is_internal(exc):
        log.warning("function helper failed: %s", exc.message)
    return client_message(exc)


class Refusal(Exception):
    """A helper's argument check failed; the message is the helper's answer."""


def need(args: list[Any], count: int, usage: str) -> None:
    if len(args) != count:
        raise Refusal(f"argument missmatch: you need {count} arguments for {usage}")


def string(args: list[Any], i: int) -> str:
    if i >= len(args) or not isinstance(args[i], str):
        raise Refusal(f"the {ORDINALS[i]} argument should be a string")
    return str(args[i])


def page_of(params: Any) -> Page:
    if not isinstance(params, dict):
        return Page()

    def num(key: str) -> str | None:
        v = params.get(key)
        return str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    sort = params.get("sortBy")
    return Page.parse(
        num("page"), num("size"), "1" if params.get("sortDescending") else None, sort if isinstance(sort, str) else None
    )


@dataclass
class HelperContext:
    """What one run's helpers act with: its app, identity and function."""

    base: Base
    identity: Identity
    function: FunctionDef
    deadline: float  # loop time after which fetch gives up


class Helpers:
    def __init__(
        self,
        documents: DocumentService,
        broker: Broker,
        cache: Cache,
        mail: MailService,
        settings: Settings,
        http: Outbound,
    ) -> None:
        self.documents = documents
        self.broker = broker
        self.cache = cache
        self.app_cache = AppCache(cache, settings)  # the keys /sudo/cache reads and writes, of the run's app
        self.mail = mail
        self.settings = settings
        self.http = http
        self._table: dict[str, Callable[[HelperContext, list[Any]], Awaitable[Any]]] = {
            "create": self.create,
            "createBulk": self.create_bulk,
            "list": self.list_docs,
            "query": self.query,
            "getById": self.get_by_id,
            "getByIds": self.get_by_ids,
            "count": self.count,
            "update": self.update,
            "updateMany": self.update_many,
            "updateBulk": self.update_many,
            "incrementValue": self.increment,
            "del": self.delete,
            "deleteMany": self.delete_many,
            "deleteBulk": self.delete_many,
            "newId": self.new_id,
            "newID": self.new_id,
            "publish": self.publish,
            "send": self.publish,
            "cacheGet": self.cache_get,
            "cacheSet": self.cache_set,
            "inc": self.inc,
            "dec": self.dec,
            "search": self.search,
            "indexDocument": self.index_document,
            "deleteIndexDocument": self.delete_index_document,
            "fetch": self.fetch,
            "sendMail": self.send_mail,
        }

    def bind(self, ctx: HelperContext) -> Callable[[str, list[Any]], Awaitable[Any]]:
        async def call(name: str, args: list[Any]) -> Any:
            fn = self._table.get(name)
            if fn is None:
                return fail(f"{name} is not a helper")
            try:
                return await fn(ctx, args)
            except Refusal as exc:
                return fail(str(exc))

        return call

    # database
    async def create(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "create(col, doc)")
        col = string(args, 0)
        try:
            return ok(await self.documents.create(ctx.identity, ctx.base, col, args[1]))
        except SBError as exc:
            return fail(f"error calling create(): {reason(exc)}")

    async def create_bulk(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "createBulk(col, docs)")
        col = string(args, 0)
        try:
            await self.documents.create_many(ctx.identity, ctx.base, col, args[1])
            return ok(True)
        except SBError as exc:
            return fail(f"error calling createBulk(): {reason(exc)}")

    async def list_docs(self, ctx: HelperContext, args: list[Any]) -> Any:
        if not args:
            raise Refusal("argument missmatch: you need at least 1 argument for list(col[, params])")
        col = string(args, 0)
        try:
            return ok(
                await self.documents.list_page(ctx.identity, ctx.base, col, page_of(args[1] if len(args) > 1 else None))
            )
        except SBError as exc:
            return fail(f"error executing list: {reason(exc)}")

    async def query(self, ctx: HelperContext, args: list[Any]) -> Any:
        if len(args) < 2:
            raise Refusal("argument missmatch: you need at least 2 arguments for query(col, filter[, params])")
        col = string(args, 0)
        if not isinstance(args[1], list):
            return fail("the second argument should be a query filter: [['field', '==', 'value'], ...]")
        page = page_of(args[2] if len(args) > 2 else None)
        try:
            return ok(await self.documents.query(ctx.identity, ctx.base, col, args[1], page))
        except SBError as exc:
            prefix = "error parsing query filter: " if exc.status == 400 else "error executing query: "
            return fail(prefix + reason(exc))

    async def get_by_id(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "getById(col, id)")
        col, doc_id = string(args, 0), string(args, 1)
        try:
            return ok(await self.documents.get(ctx.identity, ctx.base, col, doc_id))
        except SBError as exc:
            return fail(f"error calling get(): {reason(exc)}")

    async def get_by_ids(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "getByIds(col, ids)")
        col = string(args, 0)
        try:
            return ok(await self.documents.get_many(ctx.identity, ctx.base, col, args[1]))
        except SBError as exc:
            return fail(f"error calling getByIds(): {reason(exc)}")

    async def count(self, ctx: HelperContext, args: list[Any]) -> Any:
        if not args:
            raise Refusal("argument missmatch: you need at least 1 argument for count(col[, filter])")
        col = string(args, 0)
        try:
            return ok(await self.documents.count(ctx.identity, ctx.base, col, args[1] if len(args) > 1 else None))
        except SBError as exc:
            return fail(f"error calling count(): {reason(exc)}")

    async def update(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 3, "update(col, id, doc)")
        col, doc_id = string(args, 0), string(args, 1)
        try:
            return ok(await self.documents.update(ctx.identity, ctx.base, col, doc_id, args[2]))
        except SBError as exc:
            return fail(f"error executing update: {reason(exc)}")

    async def update_many(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 3, "updateMany(col, filter, doc)")
        col = string(args, 0)
        try:
            body = {"clauses": args[1], "update": args[2]}
            return ok(await self.documents.update_many(ctx.identity, ctx.base, col, body))
        except SBError as exc:
            return fail(f"error executing updateMany: {reason(exc)}")

    async def increment(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 4, "incrementValue(col, id, field, n)")
        col, doc_id, field = string(args, 0), string(args, 1), string(args, 2)
        amount = args[3]
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        try:
            await self.documents.increment(ctx.identity, ctx.base, col, doc_id, field, amount)
            return ok(True)
        except SBError as exc:
            return fail(f"error executing incrementValue: {reason(exc)}")

    async def delete(self, ctx: HelperContext, args: list[Any]) -> Any:
        if len(args) != 2:
            raise Refusal("argument missmatch: you need 3 arguments for del(col, id)")
        col, doc_id = string(args, 0), string(args, 1)
        try:
            return ok(await self.documents.delete(ctx.identity, ctx.base, col, doc_id))
        except SBError as exc:
            return fail(f"error executing del: {reason(exc)}")

    async def delete_many(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "deleteMany(col, filter)")
        col = string(args, 0)
        try:
            return ok(await self.documents.delete_many(ctx.identity, ctx.base, col, args[1]))
        except SBError as exc:
            return fail(f"error executing deleteMany: {reason(exc)}")

    async def new_id(self, ctx: HelperContext, args: list[Any]) -> Any:
        return new_id()

    # messaging and cache
    async def publish(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 3, "send(channel, type, data)")
        channel, kind = string(args, 0), string(args, 1)
        if not ctx.identity.is_root and (channel.lower().startswith("db-") or kind.startswith("db_")):
            return fail("error publishing your message: you cannot write to database channel")
        try:
            await self.broker.publish(ctx.base, channel, kind, args[2], ctx.function.id, ctx.identity)
            return ok()
        except SBError as exc:
            return fail(f"error publishing your message: {reason(exc)}")

    async def cache_get(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 1, "cacheGet(key)")
        key = string(args, 0)
        try:
            return ok((await self.app_cache.get(ctx.base.name, key)) or "")
        except SBError:
            return ok("")

    async def cache_set(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "cacheSet(key, value)")
        key = string(args, 0)
        value = args[1] if isinstance(args[1], str) else str(args[1])
        try:
            await self.app_cache.set(ctx.base.name, key, value)
            return ok()
        except SBError as exc:
            return fail(f"error calling cacheSet(): {reason(exc)}")

    async def _add(self, ctx: HelperContext, args: list[Any], sign: int, usage: str) -> Any:
        need(args, 2, usage)
        key = string(args, 0)
        n = args[1]
        if isinstance(n, bool) or not isinstance(n, (int, float)):
            raise Refusal("the 2nd argument should be a number")
        try:
            return ok(await self.app_cache.add(ctx.base.name, key, sign * int(n)))
        except SBError as exc:
            return fail(f"error calling {usage.split('(')[0]}(): {reason(exc)}")
        except (ValueError, OverflowError) as exc:  # not an integer there, or n is infinite
            return fail(f"error calling {usage.split('(')[0]}(): {exc}")

    async def inc(self, ctx: HelperContext, args: list[Any]) -> Any:
        return await self._add(ctx, args, 1, "inc(key, n)")

    async def dec(self, ctx: HelperContext, args: list[Any]) -> Any:
        return await self._add(ctx, args, -1, "dec(key, n)")

    # search
    async def search(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "search(col, keywords)")
        col, keywords = string(args, 0), string(args, 1)
        try:
            return ok(await self.documents.search(ctx.identity, ctx.base, col, keywords))
        except SBError as exc:
            return fail(f"error while executing search(): {reason(exc)}")

    async def index_document(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 3, "indexDocument(col, id, text)")
        col, doc_id, text = string(args, 0), string(args, 1), string(args, 2)
        try:
            await self.documents.index_text(ctx.base, col, doc_id, text)
            return ok()
        except SBError as exc:
            return fail(f"error while indexing: {reason(exc)}")

    async def delete_index_document(self, ctx: HelperContext, args: list[Any]) -> Any:
        need(args, 2, "deleteIndexDocument(col, id)")
        col, doc_id = string(args, 0), string(args, 1)
        try:
            await self.documents.index_text(ctx.base, col, doc_id, "")
            return ok()
        except SBError as exc:
            return fail(f"error while removing from the index: {reason(exc)}")

    # outside world
    async def fetch(self, ctx: HelperContext, args: list[Any]) -> Any:
        if not args:
            return UNDEFINED
        url = args[0]
        if not isinstance(url, str):
            raise Refusal("the first argument should be a string")
        if not url.strip():
            return fail("the url should not be blank")
        options = args[1] if len(args) > 1 else {}
        if options is None:
            options = {}
        if not isinstance(options, dict):
            return fail("the second argument should be an object")
        method = str(options.get("method") or "GET").upper()
        if method not in FETCH_METHODS:
            return fail(f"error calling fetch(): unsupported method {method}")
        headers = (
            {str(k): str(v) for k, v in (options.get("headers") or {}).items() if str(k) and v is not None and str(v)}
            if isinstance(options.get("headers"), dict)
            else {}
        )
        body = options.get("body")
        content: str | bytes | None
        if body is None or isinstance(body, str):
            content = body
        else:
            content = orjson.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        remaining = max(0.1, min(self.settings.fetch_timeout, ctx.deadline - asyncio.get_running_loop().time()))
        try:
            # Redirects are not followed (a 3xx is the answer); private destinations are refused.
            reply = await self.http.request(method, url, headers=headers, content=content, timeout=remaining)
        except OutboundError as exc:
            return fail(f"error calling fetch(): {exc}")
        return ok({"status": reply.status, "body": reply.text})

    async def send_mail(self, ctx: HelperContext, args: list[Any]) -> Any:
        if len(args) != 1:
            raise Refusal("argument missmatch: you need only one arguments(object) for sendMail")
        msg = args[0]
        if not isinstance(msg, dict):
            raise Refusal("argument should be an object")

        def s(key: str) -> str:
            v = msg.get(key)
            return v if isinstance(v, str) else ""

        # spec 05: the from-name is empty and the reply-to defaults to the sender
        email = self.mail.compose(
            to=s("to"),
            subject=s("subject"),
            body=s("body"),
            html=s("htmlBody"),
            text=s("textBody"),
            from_email=s("from"),
            from_name=s("fromName"),
            reply_to=s("replyTo") or s("from"),
        )
        try:
            await self.mail.send(ctx.base, email)
            return ok()
        except SBError as exc:
            return fail(f"send mail error: {reason(exc)}")
