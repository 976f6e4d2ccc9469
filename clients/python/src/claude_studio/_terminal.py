"""The terminal over the WebSocket: attach (with replay and ``since``),
input, resize, output as an iterator or callbacks."""

from __future__ import annotations

from re import Pattern
from typing import Any, AsyncIterator, Callable, Optional, Union

from . import errors
from ._base import DEFAULT, Base, Timeout
from ._channel import Closed
from ._connection import Attachment, Listener, Matcher, Msg
from .models import Attached, ConsoleMessage, Event, Output, PortClosed, PortOpened, TerminalExit

__all__ = ["TerminalMixin", "AsyncTerminal"]


def _attached(session_id: str) -> Matcher:
    def match(msg: Msg) -> Union[None, Msg, errors.ClaudeStudioError]:
        if msg.get("sessionId") != session_id:
            return None
        if msg.get("type") == "attached":
            return msg
        if msg.get("type") == "error":
            return errors.from_body(msg)
        return None

    return match


class TerminalMixin(Base):
    async def attach(
        self,
        session_id: str,
        *,
        since: Optional[int] = None,
        replay: bool = True,
        request_timeout: Timeout = DEFAULT,
    ) -> "AsyncTerminal":
        """Attaches to a session's terminal over the WebSocket.

        The terminal's recent output arrives first as one :class:`Output`
        with ``replay=True`` (left out with ``replay=False``). With ``since``
        (an event ``seq``; 0 for all kept) the session's events after it come
        next, then live ones. After a dropped connection the client attaches
        again by itself with ``since`` = the last event it saw.
        """
        conn = self._conn
        new = session_id not in conn.attachments
        a = conn.attachments.get(session_id) or Attachment(session_id)
        conn.attachments[session_id] = a
        if since is not None:
            a.since = since
        a.drop_replay = not replay
        msg: dict[str, Any] = {"type": "attach", "sessionId": session_id}
        if since is not None:
            msg["since"] = since
        try:
            reply = await self._bounded(conn.request(msg, _attached(session_id)), request_timeout, "attach")
        except BaseException:
            if new and conn.attachments.get(session_id) is a:
                del conn.attachments[session_id]
            raise
        info = Attached(
            session_id=session_id,
            container_id=reply.get("containerId", ""),
            status=reply.get("status", ""),
        )
        return AsyncTerminal(self, info)

    async def detach(self, session_id: str) -> None:
        """Stops delivering the session's output and events to this client,
        and stops attaching to it again after a reconnect. (The server keeps
        this connection attached until it closes.)"""
        a = self._conn.attachments.pop(session_id, None)
        if a is not None:
            a.end()

    async def _attachment(self, session_id: str, request_timeout: Timeout) -> Attachment:
        a = self._conn.attachments.get(session_id)
        if a is None:
            await self.attach(session_id, request_timeout=request_timeout)
            a = self._conn.attachments.get(session_id)
            if a is None:  # gone again at once (removed meanwhile)
                raise errors.ContainerNotFoundError(f"Session '{session_id}' not found")
        return a

    async def send_input(self, session_id: str, data: str, *, request_timeout: Timeout = DEFAULT) -> None:
        """Types ``data`` into the session's terminal (attaching first if this
        client is not attached yet, so its output is kept for
        :meth:`output`/:meth:`read_output`)."""

        async def go() -> None:
            await self._attachment(session_id, None)
            await self._conn.send({"type": "input", "sessionId": session_id, "data": data})

        await self._bounded(go(), request_timeout, "send_input")

    async def resize(self, session_id: str, cols: int, rows: int, *, request_timeout: Timeout = DEFAULT) -> None:
        """Resizes the terminal (1 to 1000 columns and rows)."""
        if not (1 <= cols <= 1000 and 1 <= rows <= 1000):
            raise errors.ValidationError(f"cols and rows must be between 1 and 1000, got {cols}x{rows}")
        await self._bounded(
            self._conn.send({"type": "resize", "sessionId": session_id, "cols": cols, "rows": rows}),
            request_timeout,
            "resize",
        )

    async def output(self, session_id: str) -> AsyncIterator[Output]:
        """The session's terminal output as it comes (attaching first if
        needed). Ends when the session is removed or expires, or
        :meth:`detach` is called; raises if the connection is lost for good.
        One consumer per session: use :meth:`on_output` to fan out."""
        a = await self._attachment(session_id, DEFAULT)
        while True:
            try:
                yield await a.output.get()
            except Closed:
                return

    async def read_output(
        self,
        session_id: str,
        until: Union[str, Pattern[str]],
        *,
        timeout: Optional[float] = 30.0,
        include_replay: bool = True,
    ) -> str:
        """Reads the session's output until ``until`` (a substring or a
        compiled regular expression) appears; answers the text read, up to
        and including the match (what follows stays for the next read).
        Raises :class:`~claude_studio.errors.ClientTimeoutError` after
        ``timeout`` seconds."""

        async def go() -> str:
            a = await self._attachment(session_id, None)
            text = ""
            while True:
                try:
                    out = await a.output.get()
                except Closed:
                    raise errors.ContainerNotFoundError(
                        f"Session '{session_id}' ended before {until!r} appeared"
                    ) from None
                if out.replay and not include_replay:
                    continue
                start = max(0, len(text) - _longest(until))
                text += out.data
                end = _find(until, text, start)
                if end is not None:
                    rest = text[end:]
                    if rest:
                        a.output.put_front(Output(out.session_id, rest, out.replay))
                    return text[:end]

        return await self._bounded(go(), timeout, f"read_output until {until!r}")

    # --- callbacks --------------------------------------------------------

    def on_output(self, callback: Callable[[Output], Any], session_id: Optional[str] = None) -> Callable[[], None]:
        """Calls ``callback(Output)`` for every piece of terminal output this
        client receives (of one session, or of all). ``callback`` may be a
        coroutine function. Answers a function that unregisters it."""
        return self._conn.listen("output", callback, session_id)

    def on_exit(self, callback: Callable[[TerminalExit], Any], session_id: Optional[str] = None) -> Callable[[], None]:
        """Calls ``callback(TerminalExit)`` when an attached terminal's shell
        ends."""
        return self._conn.listen("exit", callback, session_id)

    def on_console(
        self, callback: Callable[[ConsoleMessage], Any], session_id: Optional[str] = None
    ) -> Callable[[], None]:
        """Calls ``callback(ConsoleMessage)`` for the console of a previewed
        page of an attached session."""
        return self._conn.listen("console", callback, session_id)

    def on_port(
        self, callback: Callable[[Union[PortOpened, PortClosed]], Any], session_id: Optional[str] = None
    ) -> Callable[[], None]:
        """Calls ``callback(PortOpened | PortClosed)`` when something in an
        attached session starts or stops listening on a port."""
        return self._conn.listen("port", callback, session_id)

    def on_event(self, callback: Callable[[Event], Any], session_id: Optional[str] = None) -> Callable[[], None]:
        """Calls ``callback(Event)`` for every session event of an attached
        session (console, ports, command and terminal exits, lifecycle)."""
        return self._conn.listen("event", callback, session_id)

    def on_error(
        self, callback: Callable[[errors.ClaudeStudioError], Any], session_id: Optional[str] = None
    ) -> Callable[[], None]:
        """Calls ``callback(error)`` for WebSocket errors no call was waiting
        for (input to a removed session, say), and when the connection is
        lost for good."""
        return self._conn.listen("error", callback, session_id)

    def on_reconnect(self, callback: Callable[[Optional[float]], Any]) -> Callable[[], None]:
        """Calls ``callback(delay)`` when the WebSocket dropped and the client
        is about to connect again (``delay``: what the server's
        ``reconnect`` asked, in seconds, or ``None``)."""
        listener: Listener = callback
        return self._conn.listen("reconnect", listener)


def _longest(until: Union[str, Pattern[str]]) -> int:
    return len(until) if isinstance(until, str) else 1 << 30


def _find(until: Union[str, Pattern[str]], text: str, start: int) -> Optional[int]:
    if isinstance(until, str):
        i = text.find(until, start)
        return None if i < 0 else i + len(until)
    m = until.search(text)
    return None if m is None else m.end()


class AsyncTerminal:
    """A session's terminal this client is attached to. Iterating it
    yields its :class:`Output`; ``async with`` detaches at the end."""

    def __init__(self, client: TerminalMixin, info: Attached) -> None:
        self._client = client
        self.info = info
        self.session_id = info.session_id
        self.container_id = info.container_id

    def __repr__(self) -> str:
        return f"AsyncTerminal({self.session_id!r})"

    async def send_input(self, data: str, *, request_timeout: Timeout = DEFAULT) -> None:
        await self._client.send_input(self.session_id, data, request_timeout=request_timeout)

    async def resize(self, cols: int, rows: int, *, request_timeout: Timeout = DEFAULT) -> None:
        await self._client.resize(self.session_id, cols, rows, request_timeout=request_timeout)

    def output(self) -> AsyncIterator[Output]:
        return self._client.output(self.session_id)

    async def events(self) -> AsyncIterator[Event]:
        """The session's events as they arrive on the WebSocket (those after
        ``since`` first, when the attach gave one)."""
        a = self._client._conn.attachments.get(self.session_id)
        if a is None:
            return
        while True:
            try:
                yield await a.events.get()
            except Closed:
                return

    async def read_until(
        self, until: Union[str, Pattern[str]], *, timeout: Optional[float] = 30.0, include_replay: bool = True
    ) -> str:
        return await self._client.read_output(
            self.session_id, until, timeout=timeout, include_replay=include_replay
        )

    def __aiter__(self) -> AsyncIterator[Output]:
        return self.output()

    async def detach(self) -> None:
        await self._client.detach(self.session_id)

    async def __aenter__(self) -> "AsyncTerminal":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.detach()

