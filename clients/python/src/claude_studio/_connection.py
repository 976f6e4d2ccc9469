"""The WebSocket side: one connection per client, for every session's
terminal, watches and live events, that comes back by itself.

When the connection drops (the server restarting sends ``reconnect`` with a
``delay`` and closes; a network failure just closes), the connection waits
that delay (else an exponential backoff), connects again, and re-attaches
every session it was attached to with ``since`` = the last event ``seq`` it
saw (so no event is lost or repeated) — the server then sends the terminal's
replay and the events missed meanwhile — and watches again every watched
path, announcing a possible gap as an ``overflow`` event. Calls made while it
is down wait for it (within their timeout). After ``reconnect_timeout``
seconds without success it gives up: iterators raise
:class:`~claude_studio.errors.ConnectionFailedError` and ``on_error``
listeners get it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from . import errors
from ._channel import Channel
from ._retry import RetryPolicy, server_delay
from ._version import __version__
from .models import Event, FsEvent, Output, parse_event

log = logging.getLogger("claude_studio")

__all__ = ["Connection", "Attachment", "WatchState", "Matcher", "Msg"]

#: A server message, parsed.
Msg = dict[str, Any]
Listener = Callable[[Any], Union[None, Awaitable[None]]]
#: A reply matcher: ``None`` (not this one), the reply, or an error to raise.
Matcher = Callable[[Msg], Union[None, Msg, errors.ClaudeStudioError]]

# Lifecycle states after which a session has no terminal any more.
_GONE = {"removed", "expired"}
# A `reconnect` is about the next close only if that close follows within
# this many seconds (a session's terminal closing sends one too, on a
# connection that stays open).
_ASKED_DELAY_VALID = 5.0


@dataclass
class Attachment:
    """A session this connection is attached to (or was, and will be again
    after a reconnect)."""

    session_id: str
    #: The last event ``seq`` seen: the ``since`` of the next re-attach.
    since: Optional[int] = None
    #: Drop the next replay (an attach asked without one).
    drop_replay: bool = False
    output: Channel[Output] = field(default_factory=lambda: Channel(20_000))
    events: Channel[Event] = field(default_factory=lambda: Channel(5_000))

    def end(self, error: Optional[BaseException] = None) -> None:
        for ch in (self.output, self.events):
            if error is None:
                ch.end()
            else:
                ch.fail(error)


@dataclass
class WatchState:
    session_id: str
    path: str
    recursive: bool
    events: Channel[FsEvent] = field(default_factory=lambda: Channel(10_000))


class Connection:
    def __init__(
        self,
        ws_url: str,
        *,
        token: Optional[str],
        policy: RetryPolicy,
        reconnect: bool = True,
        reconnect_timeout: float = 60.0,
        replay_on_reconnect: bool = True,
        open_timeout: float = 10.0,
    ) -> None:
        self.ws_url = ws_url
        self._token = token
        self._policy = policy
        self._reconnect = reconnect
        self._reconnect_timeout = reconnect_timeout
        self._replay_on_reconnect = replay_on_reconnect
        self._open_timeout = open_timeout
        self._ws: Optional[ClientConnection] = None
        self._connected = asyncio.Event()
        self._open_lock = asyncio.Lock()
        self._supervisor: Optional[asyncio.Task[None]] = None
        self._closing = False
        #: Set when the supervisor gave up; the next call starts afresh.
        self._failure: Optional[errors.ClaudeStudioError] = None
        #: The last `reconnect`'s delay (seconds) and when it came.
        self._asked_delay: Optional[tuple[float, float]] = None
        self.attachments: dict[str, Attachment] = {}
        self.watches: dict[tuple[str, str], WatchState] = {}
        self._waiters: list[tuple[Matcher, asyncio.Future[Msg]]] = []
        self._listeners: dict[str, list[tuple[Optional[str], Listener]]] = {}
        #: How many times the connection was made (1 after the first).
        self.connections = 0

    # --- listeners -------------------------------------------------------

    def listen(self, kind: str, fn: Listener, session_id: Optional[str] = None) -> Callable[[], None]:
        """Calls ``fn`` for every ``kind`` (``output``, ``exit``, ``console``,
        ``port``, ``event``, ``error``, ``reconnect``, ``fs_event``); answers the
        function that stops it."""
        entry = (session_id, fn)
        self._listeners.setdefault(kind, []).append(entry)

        def remove() -> None:
            try:
                self._listeners.get(kind, []).remove(entry)
            except ValueError:
                pass

        return remove

    def _emit(self, kind: str, value: Any, session_id: Optional[str] = None) -> None:
        for wanted, fn in list(self._listeners.get(kind, ())):
            if wanted is not None and session_id is not None and wanted != session_id:
                continue
            try:
                r = fn(value)
                if inspect.isawaitable(r):
                    asyncio.ensure_future(r)
            except Exception:  # a listener's failure is its own
                log.exception("claude_studio: a %s listener failed", kind)

    # --- opening, sending, closing ------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def ensure_open(self) -> None:
        """Opens the connection if it is not open, or waits while it comes
        back. Bounded by the caller's timeout."""
        if self._closing:
            raise errors.ConnectionFailedError("the client is closed")
        if self._connected.is_set():
            return
        async with self._open_lock:
            if self._connected.is_set():
                return
            if self._supervisor is None or self._supervisor.done():
                ws = await self._connect_with_retries()
                self._start(ws)
                return
        await self._wait_connected()

    async def _wait_connected(self) -> None:
        waiting = asyncio.ensure_future(self._connected.wait())
        sup = self._supervisor
        try:
            if sup is None:
                await waiting
                return
            await asyncio.wait({waiting, sup}, return_when=asyncio.FIRST_COMPLETED)
            if not self._connected.is_set():
                raise self._failure or errors.ConnectionFailedError("the connection was closed")
        finally:
            waiting.cancel()

    async def _connect_once(self) -> ClientConnection:
        headers = {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            return await connect(
                self.ws_url,
                additional_headers=headers,
                user_agent_header=f"claude-studio-python/{__version__}",
                open_timeout=self._open_timeout,
                max_size=16 * 1024 * 1024,
                ping_interval=20,
                ping_timeout=20,
                close_timeout=5,
                compression=None,
            )
        except InvalidStatus as e:
            resp = e.response
            body: Any = None
            try:
                body = json.loads(resp.body or b"")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = {"message": f"WebSocket upgrade refused with HTTP {resp.status_code}"}
            headers_map = {k.lower(): v for k, v in resp.headers.raw_items()}
            extra: dict[str, Any] = {}
            if resp.status_code == 429:
                extra["retry_after"] = server_delay(headers_map)
            raise errors.from_body(body, status_code=resp.status_code, **extra) from None
        except (OSError, asyncio.TimeoutError, WebSocketException) as e:
            raise errors.ConnectionFailedError(f"cannot connect to {self.ws_url}: {e!r}") from None

    async def _connect_with_retries(self) -> ClientConnection:
        attempt = 0
        while True:
            try:
                return await self._connect_once()
            except errors.ClaudeStudioError as e:
                if not e.retryable or attempt >= self._policy.retries:
                    raise
                asked = getattr(e, "retry_after", None)
                if asked is not None and asked > self._policy.max_wait:
                    raise
                await asyncio.sleep(self._policy.delay(attempt, asked))
                attempt += 1

    def _start(self, ws: ClientConnection) -> None:
        self._failure = None
        self._ws = ws
        self.connections += 1
        self._connected.set()
        self._supervisor = asyncio.ensure_future(self._supervise(ws))

    async def send(self, msg: Msg) -> None:
        """Sends one message, waiting for the connection if it is down (a
        send cut by a drop is sent again on the next connection)."""
        text = json.dumps(msg)
        for _ in range(3):
            await self.ensure_open()
            ws = self._ws
            if ws is None:
                continue
            try:
                await ws.send(text)
                return
            except ConnectionClosed:
                if self._ws is ws:
                    self._connected.clear()
                await asyncio.sleep(0.05)
        raise errors.ConnectionFailedError("the connection kept closing while sending")

    async def request(self, msg: Msg, match: Matcher) -> Msg:
        """Sends ``msg`` and answers the first message ``match`` accepts
        (raising the error it maps to an error)."""
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            await self.send(msg)
            return await fut
        finally:
            try:
                self._waiters.remove(entry)
            except ValueError:
                pass

    async def close(self) -> None:
        self._closing = True
        ws, sup = self._ws, self._supervisor
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:
                pass
        if sup is not None:
            sup.cancel()
            try:
                await sup
            except BaseException:
                pass
        self._end_everything(None)

    def _end_everything(self, error: Optional[errors.ClaudeStudioError]) -> None:
        for a in self.attachments.values():
            a.end(error)
        for w in self.watches.values():
            if error is None:
                w.events.end()
            else:
                w.events.fail(error)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(error or errors.ConnectionFailedError("the client is closed"))
        self.attachments.clear()
        self.watches.clear()

    # --- the connection's life ---------------------------------------------

    async def _supervise(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._read(ws)
            self._connected.clear()
            self._ws = None
            if self._closing:
                return
            if not self._reconnect:
                self._give_up(errors.ConnectionFailedError("the connection closed"))
                return
            delay: Optional[float] = None
            if self._asked_delay is not None and loop.time() - self._asked_delay[1] < _ASKED_DELAY_VALID:
                delay = self._asked_delay[0]
            self._asked_delay = None
            self._emit("reconnect", delay)
            down_since = loop.time()
            attempt = 0
            if delay is None:
                delay = self._policy.backoff_delay(0)
            while True:
                await asyncio.sleep(delay)
                try:
                    ws = await self._connect_once()
                    break
                except errors.ClaudeStudioError as e:
                    if not e.retryable:
                        self._give_up(e)
                        return
                    attempt += 1
                    asked = getattr(e, "retry_after", None)
                    delay = self._policy.delay(attempt, asked)
                    if loop.time() + delay - down_since > self._reconnect_timeout:
                        self._give_up(
                            errors.ConnectionFailedError(
                                f"the connection dropped and could not be made again within "
                                f"{self._reconnect_timeout} s: {e.message}"
                            )
                        )
                        return
            self._ws = ws
            self.connections += 1
            await self._resubscribe(ws)
            self._connected.set()

    def _give_up(self, error: errors.ClaudeStudioError) -> None:
        log.warning("claude_studio: giving up the WebSocket: %s", error)
        self._failure = error
        self._emit("error", error)
        self._end_everything(error)

    async def _resubscribe(self, ws: ClientConnection) -> None:
        """Attaches again and watches again what the last connection had."""
        try:
            for a in list(self.attachments.values()):
                a.drop_replay = not self._replay_on_reconnect
                msg: dict[str, Any] = {"type": "attach", "sessionId": a.session_id}
                if a.since is not None:
                    msg["since"] = a.since
                await ws.send(json.dumps(msg))
            for w in list(self.watches.values()):
                await ws.send(
                    json.dumps(
                        {"type": "watch", "sessionId": w.session_id, "path": w.path, "recursive": w.recursive}
                    )
                )
                # What changed while the connection was down is unknown.
                w.events.put(FsEvent(session_id=w.session_id, path=w.path, kind="modified", overflow=True))
        except ConnectionClosed:
            pass  # the read loop sees it and starts over

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    msg = json.loads(raw)
                except ValueError:
                    log.warning("claude_studio: a message that is not JSON: %.200r", raw)
                    continue
                if isinstance(msg, dict):
                    self._dispatch(msg)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("claude_studio: reading the WebSocket failed")

    # --- what arrives --------------------------------------------------------

    def _dispatch(self, msg: Msg) -> None:
        t = msg.get("type")
        sid = msg.get("sessionId")
        consumed = False
        for match, fut in list(self._waiters):
            if fut.done():
                continue
            r = match(msg)
            if r is None:
                continue
            if isinstance(r, errors.ClaudeStudioError):
                fut.set_exception(r)
            else:
                fut.set_result(r)
            consumed = True
            break
        if t == "output":
            self._on_output(msg)
        elif t == "reconnect":
            # Followed by a close when the connection must go (server
            # restarting, client too slow); a session's terminal closing
            # sends one too, on a connection that stays open.
            # So the delay counts only for a close that follows soon.
            delay = msg.get("delay")
            if isinstance(delay, (int, float)):
                self._asked_delay = (max(0.0, delay / 1000.0), asyncio.get_running_loop().time())
        elif t == "error":
            if not consumed:
                err = errors.from_body(msg)
                a = self.attachments.get(sid) if isinstance(sid, str) else None
                if a is not None and isinstance(err, errors.ContainerNotFoundError):
                    # The session is gone (removed or expired while away).
                    self.attachments.pop(a.session_id, None)
                    a.end(err)
                self._emit("error", err, sid)
        elif t == "fs_event":
            self._on_fs_event(msg)
        elif isinstance(msg.get("seq"), int) and isinstance(sid, str):
            self._on_event(msg, sid)

    def _on_output(self, msg: Msg) -> None:
        sid = msg.get("sessionId", "")
        out = Output(session_id=sid, data=msg.get("data", ""), replay=bool(msg.get("replay", False)))
        a = self.attachments.get(sid)
        if a is not None:
            if out.replay and a.drop_replay:
                a.drop_replay = False
                return
            if out.replay:
                a.drop_replay = False
            if out.data or out.replay:
                a.output.put(out)
        # A replay is delivered even when empty: it marks an attach (after
        # a reconnect, say).
        if out.data or out.replay:
            self._emit("output", out, sid)

    def _on_event(self, msg: Msg, sid: str) -> None:
        ev = parse_event(msg)
        a = self.attachments.get(sid)
        if a is not None:
            if ev.seq is not None and (a.since is None or ev.seq > a.since):
                a.since = ev.seq
            a.events.put(ev)
        self._emit("event", ev, sid)
        if ev.type == "exit":
            self._emit("exit", ev, sid)
        elif ev.type == "console":
            self._emit("console", ev, sid)
        elif ev.type in ("port_opened", "port_closed"):
            self._emit("port", ev, sid)
        if ev.type == "lifecycle" and msg.get("state") in _GONE:
            if a is not None:
                self.attachments.pop(sid, None)
                a.end()
            for key in [k for k in self.watches if k[0] == sid]:
                self.watches.pop(key).events.end()

    def _on_fs_event(self, msg: Msg) -> None:
        sid = msg.get("sessionId", "")
        path = msg.get("path", "")
        ev = FsEvent(session_id=sid, path=path, kind=msg.get("kind", ""), overflow=bool(msg.get("overflow")))
        for w in self.watches.values():
            if w.session_id != sid:
                continue
            root = w.path.rstrip("/") or "/"
            if path == w.path or path.startswith(root + "/") or root == "/":
                w.events.put(ev)
        self._emit("fs_event", ev, sid)
