"""The realtime broker: connections, commands, channels, presence and database events.

One broker serves both transports (SSE and WebSocket); a connection differs only in how it is
written to and in two protocol details (``auth`` replies with the JWT on SSE and the inner
token on WebSocket; ``join`` is confirmed with ``ok`` + a broadcast ``joined`` on SSE and a
direct ``joined`` on WebSocket). Topics are namespaced by app (``<base>:<channel>``) while the
wire keeps the bare channel name. Every envelope is serialised once per publish, already in
its delivered form (``chan_in`` -> ``chan_out``, no token, no email); only database events are
filtered per subscriber, by the read permission of the collection.

Bus payloads are ``<meta JSON>\\n<envelope JSON>``; meta is ``{}`` for channel messages and
``{"a":account,"o":owner,"r":level}`` for database events.

A connection obeys only its own credentials. A command posted to ``/sse/msg`` must come with the
public key of the app the connection was opened in and, once the connection authenticated, with
its token (``Authorization`` and/or the ``token`` field: the JWT it authenticated with, its inner
``<userId>|<userToken>``, or another session token of the same user); anything else is refused
before it touches the connection. A command routed to the process holding the connection carries
the public key and the ``Authorization`` token along, and that process checks them. A WebSocket
command is the socket's own: naming another sid is refused on the socket. The system sid ``sb``
has no connection: its ``chan_in`` is published as the caller's session token says.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from sbserver.backends.bus import Bus
from sbserver.errors import BadRequest, Forbidden, SBError, Unauthorized
from sbserver.ids import new_id, random_code
from sbserver.services.events import DB_DELETED, DbEvent, EventBus
from sbserver.services.identity import IdentityService
from sbserver.services.permissions import Level, permission_of
from sbserver.services.tenancy import TenancyService
from sbserver.settings import Settings
from sbserver.types import Base, Identity

log = logging.getLogger("sbserver.realtime")

EMPTY_AUTH: dict[str, Any] = {"accountId": "", "userId": "", "email": "", "role": 0}
PLAIN = b"{}"
JOINED_DELAY = 0.25
SYSTEM_SID = "sb"


def envelope(
    type: str,
    data: str = "",
    sid: str = "",
    channel: str = "",
    token: str = "",
    auth: dict[str, Any] | None = None,
    base: str = "",
) -> dict[str, Any]:
    return {
        "sid": sid,
        "type": type,
        "data": data,
        "channel": channel,
        "token": token,
        "auth": auth or EMPTY_AUTH,
        "base": base,
    }


def public_auth(ident: Identity | None) -> dict[str, Any]:
    """The ``auth`` object as delivered: no email, ever."""
    if ident is None:
        return EMPTY_AUTH
    return {"accountId": ident.account_id, "userId": ident.user_id, "email": "", "role": ident.role}


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def normalize(raw: Any) -> dict[str, str]:
    """A client command: missing keys and nulls become "", non-string data becomes JSON text."""
    if not isinstance(raw, dict):
        raise BadRequest("invalid message: expected a JSON object")
    return {k: as_text(raw.get(k)) for k in ("sid", "type", "data", "channel", "token")}


def error(text: str) -> bytes:
    return orjson.dumps(envelope("error", text))


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two secrets (any characters)."""
    return hmac.compare_digest(a.encode(), b.encode())


class Connection:
    """One SSE stream or WebSocket: an outbox of serialised envelopes and its memberships."""

    def __init__(self, sid: str, transport: str, base: Base | None, limit: int, rate: float) -> None:
        self.sid = sid
        self.transport = transport
        self.base = base
        self.identity: Identity | None = None
        self.token = ""
        self.topics: dict[str, Callable[[], None]] = {}
        self.routed = asyncio.Lock()  # commands routed from other processes run one at a time, in order
        self.closed = False
        self.going_away = False  # closed because the server is stopping (WebSocket close code 1001)
        self._outbox: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._limit = limit
        self.on_overflow: Callable[[Connection], None] | None = None
        self._rate = rate
        self._allowance = rate * 2
        self._last = time.monotonic()

    def push(self, payload: bytes) -> None:
        """Queue one envelope; a connection that falls ``limit`` behind is told and closed."""
        if self.closed:
            return
        if len(self._outbox) >= self._limit:
            self._outbox.clear()
            self._outbox.append(error("you are too far behind: connection closed, please reconnect"))
            self.closed = True
            if self.on_overflow is not None:
                self.on_overflow(self)
        else:
            self._outbox.append(payload)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def end(self, payload: bytes) -> None:
        """Close after one last envelope, queued even past the limit: the server is stopping."""
        if self.closed:
            return
        self.going_away = True
        self._outbox.append(payload)
        self.close()

    async def next_batch(self, timeout: float) -> list[bytes] | None:
        """Everything queued (at once), [] on a keep-alive timeout, None once closed and drained."""
        if not self._outbox:
            if self.closed:
                return None
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        batch = list(self._outbox)
        self._outbox.clear()
        if not batch and self.closed:
            return None
        return batch

    def allow(self) -> bool:
        """Token bucket: ``rate`` commands a second, bursts of twice that."""
        if self._rate <= 0:
            return True
        now = time.monotonic()
        self._allowance = min(self._rate * 2, self._allowance + (now - self._last) * self._rate)
        self._last = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True


MessageHook = Callable[[Base, dict[str, Any], Identity | None], None]


class Broker:
    def __init__(
        self,
        bus: Bus,
        identities: IdentityService,
        tenancy: TenancyService,
        events: EventBus,
        settings: Settings,
    ) -> None:
        self.bus = bus
        self.identities = identities
        self.tenancy = tenancy
        self.events = events
        self.settings = settings
        self.process_id = random_code(8, first="p")
        self.connections: dict[str, Connection] = {}
        self.message_hooks: list[MessageHook] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = ""  # why new connections are refused: set once the server begins to stop

    # lifecycle
    async def start(self) -> None:
        self._unsubscribe.append(await self.bus.subscribe(f"sbconn:{self.process_id}", self._routed))
        self._unsubscribe.append(self.events.subscribe(self.on_db_event))

    async def stop(self) -> None:
        for unsub in self._unsubscribe:
            unsub()
        for conn in list(self.connections.values()):
            await self.disconnect(conn)
        for task in list(self._tasks):
            task.cancel()

    async def drain(self, reason: str, timeout: float) -> int:
        """The server is stopping: refuse new connections, end every open one with a final ``error``
        envelope saying ``reason``, and wait (``timeout`` seconds at most) until their transports
        have written it and let go. Returns how many were still open when the wait ended.

        Needed because the ASGI server waits for open connections to end before the lifespan
        shutdown (``stop``) runs, and a stream never ends by itself.
        """
        self.closing = reason
        for conn in list(self.connections.values()):
            conn.end(error(reason))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return len(self.connections)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # connections
    def connect(self, transport: str, base: Base | None) -> Connection:
        """Register a new connection; raises when the configured limit is reached."""
        if self.closing:
            raise SBError(self.closing)
        limit = self.settings.realtime_max_connections
        if limit and len(self.connections) >= limit:
            raise SBError("connection limit reached")
        conn = Connection(
            f"{self.process_id}.{new_id()}",
            transport,
            base,
            self.settings.realtime_queue_limit,
            self.settings.realtime_rate,
        )
        self.connections[conn.sid] = conn
        conn.on_overflow = lambda c: self._spawn(self.disconnect(c))  # unsubscribe at once, not when it reads
        conn.push(orjson.dumps(envelope("init", conn.sid)))
        log.debug("%s connection %s opened (%d open)", transport, conn.sid, len(self.connections))
        return conn

    async def disconnect(self, conn: Connection) -> None:
        conn.close()
        if self.connections.pop(conn.sid, None) is None:
            return
        log.debug("%s connection %s closed (%d channels)", conn.transport, conn.sid, len(conn.topics))
        for topic, unsub in list(conn.topics.items()):
            unsub()
            with contextlib.suppress(Exception):
                await self.bus.leave(topic, conn.sid)
        conn.topics.clear()

    # commands
    async def from_http(self, base: Base, raw: Any, bearer: str = "") -> None:
        """A command posted to ``/sse/msg`` with ``base``'s public key and the ``Authorization`` token.

        Handled here, or routed to the process holding the sid (which checks the credentials
        itself); raises ``Forbidden``/``Unauthorized`` when a connection of this process is
        addressed with credentials that are not its own. An unknown sid is dropped silently.
        """
        cmd = normalize(raw)
        if cmd["sid"] == SYSTEM_SID:
            await self._system_command(base, cmd, bearer)
            return
        conn = self.connections.get(cmd["sid"])
        if conn is not None:
            refusal = await self._refusal(conn, base.id, (bearer, cmd["token"]))
            if refusal is not None:
                raise refusal
            await self.handle(conn, cmd)
            return
        owner, _, _ = cmd["sid"].partition(".")
        if owner and owner != self.process_id and owner.startswith("p"):
            payload = orjson.dumps({"base": base.id, "bearer": bearer, "cmd": cmd})
            with contextlib.suppress(SBError):
                await self.bus.publish(f"sbconn:{owner}", PLAIN + b"\n" + payload)

    async def from_socket(self, conn: Connection, cmd: dict[str, str]) -> None:
        """A WebSocket frame: the socket's own command; one naming another sid is refused on the socket."""
        if cmd["sid"] and cmd["sid"] != conn.sid:
            conn.push(error("a socket can only command its own connection: send the sid it received in init"))
            return
        await self.handle(conn, cmd)

    def _routed(self, payload: bytes) -> None:
        _, _, body = payload.partition(b"\n")
        msg = orjson.loads(body)
        conn = self.connections.get(msg["cmd"]["sid"])
        if conn is not None:
            self._spawn(self._handle_routed(conn, msg))

    async def _handle_routed(self, conn: Connection, msg: dict[str, Any]) -> None:
        cmd: dict[str, str] = msg["cmd"]
        async with conn.routed:
            refusal = await self._refusal(conn, str(msg.get("base", "")), (str(msg.get("bearer", "")), cmd["token"]))
            if refusal is not None:  # the poster got its answer from another process: log, deliver nothing
                log.warning("routed command for %s refused: %s", conn.sid, refusal.message)
                return
            await self.handle(conn, cmd)

    async def _refusal(self, conn: Connection, base_id: str, tokens: tuple[str, ...]) -> SBError | None:
        """Why a posted command may not act as ``conn`` (None: it may).

        Without awaiting when the token is the very one the connection holds, so a burst of
        commands keeps its order.
        """
        if conn.base is not None and not _same(conn.base.id, base_id):
            return Forbidden("this connection belongs to another app: send the public key it was opened with")
        if conn.identity is None:  # nothing to prove yet: its first auth (or token) decides who it is
            return None
        given = [t for t in tokens if t]
        if not given:
            return Unauthorized("this connection is authenticated: send its session token (Authorization or token)")
        for token in given:
            if not await self._is_owner(conn, token):
                return Forbidden("this connection belongs to another user: send the token it authenticated with")
        return None

    async def _is_owner(self, conn: Connection, token: str) -> bool:
        """``token`` is the connection's own or another session token of the same user in the same app."""
        ident = conn.identity
        assert ident is not None
        if _same(token, conn.token) or _same(token, f"{ident.user_id}|{ident.user_token}"):
            return True
        if conn.base is None:
            return False
        try:
            other = await self.identities.session(conn.base, token)
        except SBError:
            return False
        return other.base == ident.base and other.user_id == ident.user_id

    async def _system_command(self, base: Base, cmd: dict[str, str], bearer: str) -> None:
        """The system sid ``sb``: no sender connection, so replies go nowhere (spec 04 §4.3).

        Only ``chan_in`` has an effect (a join would subscribe nothing that is read); it is
        published as the caller's session token says, with ``sid`` = ``sb``.
        """
        if cmd["type"] != "chan_in":
            return
        sink = Connection(SYSTEM_SID, "sse", base, self.settings.realtime_queue_limit, 0)
        token = bearer or cmd["token"]
        ident = await self._resolve(sink, token)
        if ident is None and (token or self.settings.realtime_require_auth):
            raise Unauthorized('invalid token: a command with the system sid "sb" needs a valid session token')
        sink.identity, sink.token = ident, token
        await self._chan_in(sink, cmd)

    async def handle(self, conn: Connection, cmd: dict[str, str]) -> None:
        kind = cmd["type"]
        if not conn.allow():
            conn.push(error("rate limit exceeded: slow down"))
            return
        if kind == "echo":
            reply = envelope("echo", "echo: " + cmd["data"], cmd["sid"], cmd["channel"])
            conn.push(orjson.dumps(reply))
        elif kind == "auth":
            await self._auth(conn, cmd["data"])
        elif kind == "join":
            await self._join(conn, cmd)
        elif kind == "chan_in":
            await self._chan_in(conn, cmd)
        elif kind == "presence":
            count = await self.bus.presence(self._topic(conn, cmd["data"])) if conn.base else 0
            conn.push(orjson.dumps(envelope("presence", str(count), channel=cmd["data"])))
        else:
            conn.push(error(f"{kind} command not found"))

    async def _auth(self, conn: Connection, jwt: str) -> None:
        if conn.transport == "sse" and conn.base is None:
            conn.push(error("invalid request"))
            return
        ident = await self._resolve(conn, jwt)
        if ident is None:
            conn.push(error("invalid token"))
            return
        conn.identity = ident
        conn.token = jwt
        reply = jwt if conn.transport == "sse" else f"{ident.user_id}|{ident.user_token}"
        conn.push(orjson.dumps(envelope("token", reply)))

    async def _resolve(self, conn: Connection, token: str) -> Identity | None:
        """The identity behind a JWT (or, once authenticated, its inner value); None if invalid."""
        if not token:
            return None
        if conn.identity is not None and token in (conn.token, f"{conn.identity.user_id}|{conn.identity.user_token}"):
            return conn.identity
        try:
            base = conn.base
            if base is None:
                claim = self.identities.codec.decode(token)
                if not claim.base_pk:
                    return None
                base = await self.tenancy.base(claim.base_pk)
                conn.base = base
            return await self.identities.session(base, token)
        except SBError:
            return None

    async def _identity_for(self, conn: Connection, token: str) -> Identity | None:
        if conn.identity is not None:
            return conn.identity
        ident = await self._resolve(conn, token)
        if ident is not None:
            conn.identity, conn.token = ident, token
        return ident

    def _topic(self, conn: Connection, channel: str) -> str:
        assert conn.base is not None
        return f"{conn.base.name}:{channel}"

    async def _join(self, conn: Connection, cmd: dict[str, str]) -> None:
        ident = await self._identity_for(conn, cmd["token"])
        if ident is None and self.settings.realtime_require_auth:
            conn.push(error("invalid token"))
            return
        channel = cmd["data"]
        if not channel:
            conn.push(error("no channel was specified"))
            return
        if conn.base is None:
            conn.push(error("invalid request"))
            return
        topic = self._topic(conn, channel)
        if topic not in conn.topics:
            conn.topics[topic] = await self.bus.subscribe(topic, self._deliverer(conn, ident))
            await self.bus.join(topic, conn.sid)
        if conn.transport == "ws":
            conn.push(orjson.dumps(envelope("joined", channel)))
            return
        conn.push(orjson.dumps(envelope("ok", channel)))
        joined = envelope("joined", conn.sid, channel=channel, base=conn.base.name)
        self._spawn(self._later(JOINED_DELAY, topic, PLAIN + b"\n" + orjson.dumps(joined)))

    async def _later(self, delay: float, topic: str, payload: bytes) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(SBError):
            await self.bus.publish(topic, payload)

    def _deliverer(self, conn: Connection, ident: Identity | None) -> Callable[[bytes], None]:
        def deliver(payload: bytes) -> None:
            meta, _, body = payload.partition(b"\n")
            if meta != PLAIN and not self._may_read(ident, orjson.loads(meta)):
                return
            conn.push(body)

        return deliver

    @staticmethod
    def _may_read(ident: Identity | None, meta: dict[str, Any]) -> bool:
        if ident is None:
            return False
        if ident.is_root or meta["r"] == Level.EVERYONE:
            return True
        if meta["a"] != ident.account_id:
            return False
        return meta["r"] == Level.ACCOUNT or meta["o"] == ident.user_id

    async def _chan_in(self, conn: Connection, cmd: dict[str, str]) -> None:
        ident = await self._identity_for(conn, cmd["token"])
        if ident is None and self.settings.realtime_require_auth:
            conn.push(error("invalid token"))
            return
        channel = cmd["channel"]
        if not channel:
            conn.push(error("no channel was specified"))
            return
        if channel.lower().startswith("db-"):
            conn.push(error("you cannot write to database channel"))
            return
        if conn.base is None:
            conn.push(error("invalid request"))
            return
        if len(cmd["data"]) > self.settings.realtime_max_message:
            conn.push(error(f"message too large: the limit is {self.settings.realtime_max_message} bytes"))
            return
        msg = envelope("chan_out", cmd["data"], conn.sid, channel, auth=public_auth(ident), base=conn.base.name)
        conn.push(orjson.dumps(envelope("ok")))
        try:
            await self.bus.publish(self._topic(conn, channel), PLAIN + b"\n" + orjson.dumps(msg))
        except SBError:
            conn.push(error("unable to send your message"))
            return
        self._run_hooks(conn.base, {**msg, "type": "chan_in"}, ident)

    def _run_hooks(self, base: Base, msg: dict[str, Any], ident: Identity | None) -> None:
        for hook in self.message_hooks:
            try:
                hook(base, msg, ident)
            except Exception:
                log.exception("message hook failed")

    # the admin UI's live view
    async def watch(self, base: Base, ident: Identity, channel: str) -> Connection:
        """A connection of ``ident`` (the app's root) already joined to ``channel``, as if it had
        authenticated and sent ``join``: same topic, same deliveries, counted in presence.
        The caller streams it and ends it with ``disconnect``."""
        if not channel:
            raise BadRequest("no channel was specified")
        conn = self.connect("sse", base)
        conn.identity = ident
        try:
            await self._join(conn, {"sid": conn.sid, "type": "join", "data": channel, "token": "", "channel": ""})
        except BaseException:
            await self.disconnect(conn)
            raise
        return conn

    async def channels(self, base: Base, limit: int = 1000) -> dict[str, int]:
        """The app's channels that have members now, with their presence counts (all processes)."""
        prefix = f"{base.name}:"
        found = await self.bus.topics(prefix, limit)
        return {topic[len(prefix) :]: count for topic, count in found.items()}

    async def presence(self, base: Base, channel: str) -> int:
        """How many connections are joined to the app's ``channel`` across all processes."""
        return await self.bus.presence(f"{base.name}:{channel}")

    # publishing from the server side
    async def publish(self, base: Base, channel: str, type: str, data: Any, sid: str, ident: Identity | None) -> None:
        """``/publish``, functions and tasks: deliver a message of any type to a channel's members."""
        out_type = "chan_out" if type == "chan_in" else type
        msg = envelope(out_type, as_text(data), sid, channel, auth=public_auth(ident), base=base.name)
        await self.bus.publish(f"{base.name}:{channel}", PLAIN + b"\n" + orjson.dumps(msg))
        self._run_hooks(base, {**msg, "type": type}, ident)

    def on_db_event(self, event: DbEvent) -> None:
        """Fan a committed database change out to ``db-<collection>`` members (filtered on delivery)."""
        topic = f"{event.base}:{event.channel}"
        if not self.bus.may_reach(topic):
            return
        data = orjson.dumps(event.doc_id if event.type == DB_DELETED else event.document).decode()
        msg = envelope(event.type, data, "", event.channel, auth=public_auth(event.actor), base=event.base)
        level = int(permission_of(event.collection).read)
        meta = orjson.dumps({"a": event.account_id, "o": event.owner_id, "r": level})
        self._spawn(self._publish_quietly(topic, meta + b"\n" + orjson.dumps(msg)))

    async def _publish_quietly(self, topic: str, payload: bytes) -> None:
        try:
            await self.bus.publish(topic, payload)
        except SBError as exc:
            log.warning("database event not delivered on %s: %s", topic, exc)
