"""``AsyncClient``: the whole API with ``async``/``await``."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Collection, Mapping, Optional, Union

import httpx

from . import errors
from ._base import DEFAULT, Timeout, sessions_path
from ._commands import AsyncCommand, Command, CommandsMixin
from ._connection import Connection
from ._files import AsyncWatch, FilesMixin
from ._http import Http
from ._retry import RetryPolicy, derive_urls
from ._terminal import AsyncTerminal, TerminalMixin
from .models import (
    CommandInfo,
    CommandMessage,
    CommandResult,
    Event,
    EventPage,
    FileEntry,
    FileInfo,
    Health,
    Images,
    Lifecycle,
    Output,
    PortOpened,
    Preview,
    SessionInfo,
    WriteResult,
    parse_event,
)

__all__ = ["AsyncClient", "AsyncSession"]

#: Default timeout of ``create_container`` (seconds): image pulls take long.
CREATE_TIMEOUT = 600.0


class AsyncClient(TerminalMixin, CommandsMixin, FilesMixin):
    """A client of a Claude Studio server, for asyncio.

    Args:
        url: the server, ``http[s]://…`` or ``ws[s]://…`` (either derives the
            other; a ``/ws`` path is the WebSocket's own).
        token: an API token, sent as ``Authorization: Bearer``.
        request_timeout: seconds each call may take (``None``: no limit);
            every method takes ``request_timeout=`` to change it for a call.
        retries: how often a call is tried again on a rate limit
            (waiting as ``Retry-After``/``X-RateLimit-Reset`` say), a
            retryable server error or a failure to connect.
        max_retry_wait: the longest wait a rate limit may ask for; a longer
            one raises :class:`~claude_studio.errors.RateLimitError` at once.
        reconnect: whether the WebSocket comes back by itself after a drop.
        reconnect_timeout: how long it keeps trying before it gives up.
        replay_on_reconnect: whether the terminal's replay after a reconnect
            is delivered (marked ``replay=True``) or left out.
        http_client: an ``httpx.AsyncClient`` of your own (proxies, TLS…).

    Use it as ``async with AsyncClient(...) as client:`` or call
    :meth:`close`.
    """

    def __init__(
        self,
        url: str = "http://localhost:3333",
        *,
        token: Optional[str] = None,
        request_timeout: Optional[float] = 30.0,
        retries: int = 3,
        max_retry_wait: float = 60.0,
        reconnect: bool = True,
        reconnect_timeout: float = 60.0,
        replay_on_reconnect: bool = True,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.base_url, self.ws_url = derive_urls(url)
        policy = RetryPolicy(retries=retries, max_wait=max_retry_wait)
        self._http = Http(
            self.base_url, token=token, request_timeout=request_timeout, policy=policy, client=http_client
        )
        self._conn = Connection(
            self.ws_url,
            token=token,
            policy=policy,
            reconnect=reconnect,
            reconnect_timeout=reconnect_timeout,
            replay_on_reconnect=replay_on_reconnect,
            open_timeout=request_timeout or 30.0,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def close(self) -> None:
        """Closes the WebSocket and the HTTP connections."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self._conn.close()
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now."""
        return self._conn.connected

    # --- sessions -----------------------------------------------------------

    async def health(self, *, request_timeout: Timeout = DEFAULT) -> Health:
        """The server's health (``status`` ``ok``/``degraded``, ``docker``)."""
        return Health.from_json(await self._http.json("GET", "/api/health", request_timeout=request_timeout))

    async def create_container(
        self,
        *,
        image: Optional[str] = None,
        workspace_dir: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        cols: Optional[int] = None,
        rows: Optional[int] = None,
        request_timeout: Timeout = DEFAULT,
        retries: Optional[int] = None,
    ) -> "AsyncSession":
        """Creates a session: a container with a terminal. Answers its
        handle (``.id`` is the ``sessionId``); ``async with`` it to remove the
        session at the end. ``image`` defaults to the server's default,
        ``workspace_dir`` (a host directory under a workspace root) to an
        empty ``/workspace``. The server may pull the image first, so the
        call's default timeout is 10 minutes."""
        body: dict[str, Any] = {}
        for key, value in (
            ("image", image),
            ("workspaceDir", workspace_dir),
            ("env", dict(env) if env is not None else None),
            ("cols", cols),
            ("rows", rows),
        ):
            if value is not None:
                body[key] = value
        if request_timeout is DEFAULT and self._http.request_timeout is not None:
            # A create may pull its image first: minutes, not seconds.
            request_timeout = max(self._http.request_timeout, CREATE_TIMEOUT)
        data = await self._http.json(
            "POST", "/api/containers", json=body, request_timeout=request_timeout, retries=retries
        )
        return AsyncSession(self, data)

    async def list_images(self, *, request_timeout: Timeout = DEFAULT) -> Images:
        """The images a create may name, and the default one."""
        return Images.from_json(await self._http.json("GET", "/api/images", request_timeout=request_timeout))

    def session(self, session_id: str) -> "AsyncSession":
        """A handle for an existing session (asks the server nothing)."""
        return AsyncSession(self, {"sessionId": session_id})

    async def get_container(self, session_id: str, *, request_timeout: Timeout = DEFAULT) -> SessionInfo:
        return SessionInfo.from_json(
            await self._http.json("GET", sessions_path(session_id), request_timeout=request_timeout)
        )

    async def list_containers(self, *, request_timeout: Timeout = DEFAULT) -> list[SessionInfo]:
        """This token's sessions."""
        data = await self._http.json("GET", "/api/containers", request_timeout=request_timeout)
        return [SessionInfo.from_json(d) for d in data]

    async def remove_container(
        self, session_id: str, *, request_timeout: Timeout = DEFAULT, retries: Optional[int] = None
    ) -> None:
        """Removes the session and its container."""
        await self._http.request(
            "DELETE", sessions_path(session_id), request_timeout=request_timeout, retries=retries
        )
        await self.detach(session_id)

    async def configure_preview(self, session_id: str, port: int, *, request_timeout: Timeout = DEFAULT) -> Preview:
        """Points the session's preview at ``port`` inside its container."""
        if isinstance(port, bool) or not isinstance(port, int):
            raise errors.ValidationError(f"port must be an integer, got {port!r}")
        data = await self._http.json(
            "POST",
            "/api/preview/configure",
            json={"sessionId": session_id, "port": port},
            request_timeout=request_timeout,
        )
        return Preview.from_json(data)

    # --- events and ports ----------------------------------------------------

    async def get_events(
        self,
        session_id: str,
        *,
        since: int = 0,
        wait: Optional[float] = None,
        request_timeout: Timeout = DEFAULT,
    ) -> EventPage:
        """The session's events after ``since`` (0: all kept). With ``wait``
        (seconds, up to 60) waits for one when there is none yet."""
        timeout = request_timeout
        if timeout is DEFAULT and wait:
            base = self._http.request_timeout
            timeout = None if base is None else base + wait
        data = await self._http.json(
            "GET",
            sessions_path(session_id, "events"),
            params={"since": since, "wait": wait},
            request_timeout=timeout,
        )
        return EventPage(
            events=tuple(parse_event(e) for e in data.get("events", [])),
            next=int(data.get("next", since)),
            missed=bool(data.get("missed", False)),
        )

    async def events(
        self,
        session_id: str,
        *,
        since: int = 0,
        wait: float = 30.0,
        types: Optional[Collection[str]] = None,
    ) -> AsyncIterator[Event]:
        """The session's events after ``since``, then each as it happens
        (long-polling REST, so it needs no WebSocket and survives server
        restarts). ``types`` keeps only those types (``"port_opened"``…).
        Ends after the session's ``removed``/``expired`` lifecycle event."""
        cursor = since
        while True:
            page = await self.get_events(session_id, since=cursor, wait=wait)
            for ev in page.events:
                if types is None or ev.type in types:
                    yield ev
                if isinstance(ev, Lifecycle) and ev.state in ("removed", "expired"):
                    return
            cursor = page.next

    async def get_ports(self, session_id: str, *, request_timeout: Timeout = DEFAULT) -> list[int]:
        """The TCP ports something in the session listens on now."""
        return list((await self.get_container(session_id, request_timeout=request_timeout)).ports)

    async def wait_for_port(
        self, session_id: str, port: Optional[int] = None, *, timeout: Optional[float] = 60.0
    ) -> int:
        """Waits until something in the session listens on ``port`` (any
        port when ``None``) and answers the port."""

        async def go() -> int:
            first = await self.get_events(session_id, since=0)
            cursor = first.next
            open_now = await self.get_ports(session_id)
            for p in open_now:
                if port is None or p == port:
                    return p
            while True:
                page = await self.get_events(session_id, since=cursor, wait=30)
                for ev in page.events:
                    if isinstance(ev, PortOpened) and (port is None or ev.port == port):
                        return ev.port
                    if isinstance(ev, Lifecycle) and ev.state in ("removed", "expired"):
                        raise errors.ContainerNotFoundError(f"Session '{session_id}' ended")
                cursor = page.next

        return await self._bounded(go(), timeout, f"waiting for port {port or 'any'}")


class AsyncSession:
    """A session (a container with its terminal): ``.id`` is the
    ``sessionId``. Every method is the client's, for this session.
    ``async with session:`` removes it at the end."""

    def __init__(self, client: AsyncClient, data: Mapping[str, Any]) -> None:
        self.client = client
        self.id: str = data["sessionId"]
        self.container_id: str = data.get("containerId", "")
        self.status: str = data.get("status", "")
        self.image: Optional[str] = data.get("image")
        self.raw = data

    @property
    def session_id(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"AsyncSession({self.id!r})"

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.remove(missing_ok=True)

    async def remove(self, *, missing_ok: bool = False, request_timeout: Timeout = DEFAULT) -> None:
        try:
            await self.client.remove_container(self.id, request_timeout=request_timeout)
        except errors.ContainerNotFoundError:
            if not missing_ok:
                raise

    async def info(self, *, request_timeout: Timeout = DEFAULT) -> SessionInfo:
        return await self.client.get_container(self.id, request_timeout=request_timeout)

    async def configure_preview(self, port: int, *, request_timeout: Timeout = DEFAULT) -> Preview:
        return await self.client.configure_preview(self.id, port, request_timeout=request_timeout)

    # terminal
    async def attach(
        self, *, since: Optional[int] = None, replay: bool = True, request_timeout: Timeout = DEFAULT
    ) -> AsyncTerminal:
        return await self.client.attach(self.id, since=since, replay=replay, request_timeout=request_timeout)

    async def send_input(self, data: str, *, request_timeout: Timeout = DEFAULT) -> None:
        await self.client.send_input(self.id, data, request_timeout=request_timeout)

    async def resize(self, cols: int, rows: int, *, request_timeout: Timeout = DEFAULT) -> None:
        await self.client.resize(self.id, cols, rows, request_timeout=request_timeout)

    def output(self) -> AsyncIterator[Output]:
        return self.client.output(self.id)

    async def read_output(
        self, until: Any, *, timeout: Optional[float] = 30.0, include_replay: bool = True
    ) -> str:
        return await self.client.read_output(self.id, until, timeout=timeout, include_replay=include_replay)

    # commands
    async def execute_command(self, command: Command, **kw: Any) -> CommandResult:
        return await self.client.execute_command(self.id, command, **kw)

    def stream_command(self, command: Command, **kw: Any) -> AsyncIterator[CommandMessage]:
        return self.client.stream_command(self.id, command, **kw)

    async def start_command(self, command: Command, **kw: Any) -> AsyncCommand:
        return await self.client.start_command(self.id, command, **kw)

    async def list_commands(self, *, request_timeout: Timeout = DEFAULT) -> list[CommandInfo]:
        return await self.client.list_commands(self.id, request_timeout=request_timeout)

    # files
    async def read_file(self, path: str, **kw: Any) -> bytes:
        return await self.client.read_file(self.id, path, **kw)

    async def read_text(self, path: str, **kw: Any) -> str:
        return await self.client.read_text(self.id, path, **kw)

    async def write_file(self, path: str, data: Union[bytes, str], **kw: Any) -> WriteResult:
        return await self.client.write_file(self.id, path, data, **kw)

    async def stat(self, path: str, **kw: Any) -> FileInfo:
        return await self.client.stat(self.id, path, **kw)

    async def list_files(self, path: str, **kw: Any) -> list[FileEntry]:
        return await self.client.list_files(self.id, path, **kw)

    async def remove_file(self, path: str, **kw: Any) -> None:
        await self.client.remove_file(self.id, path, **kw)

    async def watch(self, path: str, **kw: Any) -> AsyncWatch:
        return await self.client.watch(self.id, path, **kw)

    # events and ports
    def events(self, **kw: Any) -> AsyncIterator[Event]:
        return self.client.events(self.id, **kw)

    async def get_ports(self, *, request_timeout: Timeout = DEFAULT) -> list[int]:
        return await self.client.get_ports(self.id, request_timeout=request_timeout)

    async def wait_for_port(self, port: Optional[int] = None, *, timeout: Optional[float] = 60.0) -> int:
        return await self.client.wait_for_port(self.id, port, timeout=timeout)
