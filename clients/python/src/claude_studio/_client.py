"""``Client``: the whole API, synchronous.

Each method runs the :class:`~claude_studio.AsyncClient` method of the same
name on the client's own event-loop thread (see ``_runner``) and waits for
it; iterators are iterated the same way. Callbacks run on that thread.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Iterator, Mapping, Optional, Union
from re import Pattern

import httpx

from . import errors
from ._async_client import AsyncClient, AsyncSession
from ._base import DEFAULT, Timeout
from ._commands import AsyncCommand, Command
from ._files import AsyncWatch
from ._runner import Runner, SyncIterator
from ._terminal import AsyncTerminal
from .models import (
    Attached,
    CommandInfo,
    CommandMessage,
    CommandResult,
    ConsoleMessage,
    Event,
    EventPage,
    FileEntry,
    FileInfo,
    FsEvent,
    Health,
    Images,
    Output,
    PortClosed,
    PortOpened,
    Preview,
    SessionInfo,
    TerminalExit,
    Watching,
    WriteResult,
)

__all__ = ["Client", "Session", "Terminal", "Watch", "CommandHandle"]


class Client:
    """A client of a Claude Studio server (synchronous).

    Takes the same arguments as :class:`~claude_studio.AsyncClient`
    (``url``, ``token``, ``request_timeout``, ``retries``,
    ``max_retry_wait``, ``reconnect``, ``reconnect_timeout``,
    ``replay_on_reconnect``). Use it as ``with Client(...) as client:`` or
    call :meth:`close`.
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
        self._runner = Runner()
        self._closed = False

        async def make() -> AsyncClient:
            return AsyncClient(
                url,
                token=token,
                request_timeout=request_timeout,
                retries=retries,
                max_retry_wait=max_retry_wait,
                reconnect=reconnect,
                reconnect_timeout=reconnect_timeout,
                replay_on_reconnect=replay_on_reconnect,
                http_client=http_client,
            )

        try:
            self.aio: AsyncClient = self._runner.run(make())
        except BaseException:
            self._runner.stop()
            raise
        self.base_url = self.aio.base_url
        self.ws_url = self.aio.ws_url

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def _run(self, coro: Any) -> Any:
        return self._runner.run(coro)

    def _iter(self, ait: Any) -> Any:
        return SyncIterator(self._runner, ait)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self.aio.close())
        finally:
            self._runner.stop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self.aio.connected

    # --- sessions -----------------------------------------------------------

    def health(self, *, request_timeout: Timeout = DEFAULT) -> Health:
        return self._run(self.aio.health(request_timeout=request_timeout))  # type: ignore[no-any-return]

    def create_container(
        self,
        *,
        image: Optional[str] = None,
        workspace_dir: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        cols: Optional[int] = None,
        rows: Optional[int] = None,
        request_timeout: Timeout = DEFAULT,
        retries: Optional[int] = None,
    ) -> "Session":
        """Creates a session; ``with`` the answer removes it at the end."""
        s = self._run(
            self.aio.create_container(
                image=image,
                workspace_dir=workspace_dir,
                env=env,
                cols=cols,
                rows=rows,
                request_timeout=request_timeout,
                retries=retries,
            )
        )
        return Session(self, s)

    def list_images(self, *, request_timeout: Timeout = DEFAULT) -> Images:
        return self._run(self.aio.list_images(request_timeout=request_timeout))  # type: ignore[no-any-return]

    def session(self, session_id: str) -> "Session":
        return Session(self, self.aio.session(session_id))

    def get_container(self, session_id: str, *, request_timeout: Timeout = DEFAULT) -> SessionInfo:
        return self._run(self.aio.get_container(session_id, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def list_containers(self, *, request_timeout: Timeout = DEFAULT) -> list[SessionInfo]:
        return self._run(self.aio.list_containers(request_timeout=request_timeout))  # type: ignore[no-any-return]

    def remove_container(
        self, session_id: str, *, request_timeout: Timeout = DEFAULT, retries: Optional[int] = None
    ) -> None:
        self._run(self.aio.remove_container(session_id, request_timeout=request_timeout, retries=retries))

    def configure_preview(self, session_id: str, port: int, *, request_timeout: Timeout = DEFAULT) -> Preview:
        return self._run(self.aio.configure_preview(session_id, port, request_timeout=request_timeout))  # type: ignore[no-any-return]

    # --- terminal -------------------------------------------------------------

    def attach(
        self,
        session_id: str,
        *,
        since: Optional[int] = None,
        replay: bool = True,
        request_timeout: Timeout = DEFAULT,
    ) -> "Terminal":
        t = self._run(self.aio.attach(session_id, since=since, replay=replay, request_timeout=request_timeout))
        return Terminal(self, t)

    def detach(self, session_id: str) -> None:
        self._run(self.aio.detach(session_id))

    def send_input(self, session_id: str, data: str, *, request_timeout: Timeout = DEFAULT) -> None:
        self._run(self.aio.send_input(session_id, data, request_timeout=request_timeout))

    def resize(self, session_id: str, cols: int, rows: int, *, request_timeout: Timeout = DEFAULT) -> None:
        self._run(self.aio.resize(session_id, cols, rows, request_timeout=request_timeout))

    def output(self, session_id: str) -> SyncIterator[Output]:
        """The session's terminal output as it comes (an iterator; ``close()``
        it or use ``with`` to stop early)."""
        return self._iter(self.aio.output(session_id))  # type: ignore[no-any-return]

    def read_output(
        self,
        session_id: str,
        until: Union[str, Pattern[str]],
        *,
        timeout: Optional[float] = 30.0,
        include_replay: bool = True,
    ) -> str:
        return self._run(  # type: ignore[no-any-return]
            self.aio.read_output(session_id, until, timeout=timeout, include_replay=include_replay)
        )

    def on_output(self, callback: Callable[[Output], Any], session_id: Optional[str] = None) -> Callable[[], None]:
        return self.aio.on_output(callback, session_id)

    def on_exit(self, callback: Callable[[TerminalExit], Any], session_id: Optional[str] = None) -> Callable[[], None]:
        return self.aio.on_exit(callback, session_id)

    def on_console(
        self, callback: Callable[[ConsoleMessage], Any], session_id: Optional[str] = None
    ) -> Callable[[], None]:
        return self.aio.on_console(callback, session_id)

    def on_port(
        self, callback: Callable[[Union[PortOpened, PortClosed]], Any], session_id: Optional[str] = None
    ) -> Callable[[], None]:
        return self.aio.on_port(callback, session_id)

    def on_event(self, callback: Callable[[Event], Any], session_id: Optional[str] = None) -> Callable[[], None]:
        return self.aio.on_event(callback, session_id)

    def on_error(
        self, callback: Callable[[errors.ClaudeStudioError], Any], session_id: Optional[str] = None
    ) -> Callable[[], None]:
        return self.aio.on_error(callback, session_id)

    def on_reconnect(self, callback: Callable[[Optional[float]], Any]) -> Callable[[], None]:
        return self.aio.on_reconnect(callback)

    # --- commands ---------------------------------------------------------------

    def execute_command(
        self,
        session_id: str,
        command: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
        exec_id: Optional[str] = None,
        request_timeout: Timeout = DEFAULT,
        retries: Optional[int] = None,
    ) -> CommandResult:
        """Runs a command and waits for it (see
        :meth:`AsyncClient.execute_command`). Ctrl-C kills the command."""
        return self._run(  # type: ignore[no-any-return]
            self.aio.execute_command(
                session_id,
                command,
                cwd=cwd,
                env=env,
                stdin=stdin,
                timeout=timeout,
                exec_id=exec_id,
                request_timeout=request_timeout,
                retries=retries,
            )
        )

    def stream_command(
        self,
        session_id: str,
        command: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
        exec_id: Optional[str] = None,
        kill_on_close: bool = True,
        request_timeout: Timeout = DEFAULT,
    ) -> SyncIterator[CommandMessage]:
        return self._iter(  # type: ignore[no-any-return]
            self.aio.stream_command(
                session_id,
                command,
                cwd=cwd,
                env=env,
                stdin=stdin,
                timeout=timeout,
                exec_id=exec_id,
                kill_on_close=kill_on_close,
                request_timeout=request_timeout,
            )
        )

    def start_command(
        self,
        session_id: str,
        command: Command,
        *,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
        exec_id: Optional[str] = None,
        request_timeout: Timeout = DEFAULT,
    ) -> "CommandHandle":
        c = self._run(
            self.aio.start_command(
                session_id,
                command,
                cwd=cwd,
                env=env,
                stdin=stdin,
                timeout=timeout,
                exec_id=exec_id,
                request_timeout=request_timeout,
            )
        )
        return CommandHandle(self, c)

    def list_commands(self, session_id: str, *, request_timeout: Timeout = DEFAULT) -> list[CommandInfo]:
        return self._run(self.aio.list_commands(session_id, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def get_command(self, session_id: str, exec_id: str, *, request_timeout: Timeout = DEFAULT) -> CommandResult:
        return self._run(self.aio.get_command(session_id, exec_id, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def kill_command(
        self, session_id: str, exec_id: str, signal: Union[str, int] = "SIGKILL", *, request_timeout: Timeout = DEFAULT
    ) -> None:
        self._run(self.aio.kill_command(session_id, exec_id, signal, request_timeout=request_timeout))

    def send_command_input(
        self,
        session_id: str,
        exec_id: str,
        data: Union[str, bytes],
        *,
        eof: bool = False,
        request_timeout: Timeout = DEFAULT,
    ) -> None:
        self._run(self.aio.send_command_input(session_id, exec_id, data, eof=eof, request_timeout=request_timeout))

    def wait_command(self, session_id: str, exec_id: str, *, timeout: Optional[float] = None) -> CommandResult:
        return self._run(self.aio.wait_command(session_id, exec_id, timeout=timeout))  # type: ignore[no-any-return]

    # --- files --------------------------------------------------------------------

    def read_file(
        self,
        session_id: str,
        path: str,
        *,
        offset: Optional[int] = None,
        length: Optional[int] = None,
        request_timeout: Timeout = DEFAULT,
    ) -> bytes:
        return self._run(  # type: ignore[no-any-return]
            self.aio.read_file(session_id, path, offset=offset, length=length, request_timeout=request_timeout)
        )

    def read_text(
        self, session_id: str, path: str, *, encoding: str = "utf-8", request_timeout: Timeout = DEFAULT
    ) -> str:
        return self._run(self.aio.read_text(session_id, path, encoding=encoding, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def write_file(
        self,
        session_id: str,
        path: str,
        data: Union[bytes, str],
        *,
        parents: bool = False,
        request_timeout: Timeout = DEFAULT,
    ) -> WriteResult:
        return self._run(  # type: ignore[no-any-return]
            self.aio.write_file(session_id, path, data, parents=parents, request_timeout=request_timeout)
        )

    def stat(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> FileInfo:
        return self._run(self.aio.stat(session_id, path, recursive=recursive, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def list_files(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> list[FileEntry]:
        return self._run(  # type: ignore[no-any-return]
            self.aio.list_files(session_id, path, recursive=recursive, request_timeout=request_timeout)
        )

    def exists(self, session_id: str, path: str, *, request_timeout: Timeout = DEFAULT) -> bool:
        return self._run(self.aio.exists(session_id, path, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def remove_file(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> None:
        self._run(self.aio.remove_file(session_id, path, recursive=recursive, request_timeout=request_timeout))

    def mkdir(
        self, session_id: str, path: str, *, parents: bool = False, request_timeout: Timeout = DEFAULT
    ) -> bool:
        return self._run(  # type: ignore[no-any-return]
            self.aio.mkdir(session_id, path, parents=parents, request_timeout=request_timeout)
        )

    def move(self, session_id: str, source: str, destination: str, *, request_timeout: Timeout = DEFAULT) -> None:
        self._run(self.aio.move(session_id, source, destination, request_timeout=request_timeout))

    def download_archive(self, session_id: str, path: str, *, request_timeout: Timeout = DEFAULT) -> bytes:
        return self._run(self.aio.download_archive(session_id, path, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def upload_archive(self, session_id: str, path: str, tar: bytes, *, request_timeout: Timeout = DEFAULT) -> int:
        return self._run(self.aio.upload_archive(session_id, path, tar, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def watch(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> "Watch":
        w = self._run(self.aio.watch(session_id, path, recursive=recursive, request_timeout=request_timeout))
        return Watch(self, w)

    def unwatch(self, session_id: str, path: str, *, request_timeout: Timeout = DEFAULT) -> None:
        self._run(self.aio.unwatch(session_id, path, request_timeout=request_timeout))

    # --- events and ports -----------------------------------------------------------

    def get_events(
        self,
        session_id: str,
        *,
        since: int = 0,
        wait: Optional[float] = None,
        request_timeout: Timeout = DEFAULT,
    ) -> EventPage:
        return self._run(  # type: ignore[no-any-return]
            self.aio.get_events(session_id, since=since, wait=wait, request_timeout=request_timeout)
        )

    def events(
        self,
        session_id: str,
        *,
        since: int = 0,
        wait: float = 30.0,
        types: Optional[Collection[str]] = None,
    ) -> SyncIterator[Event]:
        return self._iter(self.aio.events(session_id, since=since, wait=wait, types=types))  # type: ignore[no-any-return]

    def get_ports(self, session_id: str, *, request_timeout: Timeout = DEFAULT) -> list[int]:
        return self._run(self.aio.get_ports(session_id, request_timeout=request_timeout))  # type: ignore[no-any-return]

    def wait_for_port(self, session_id: str, port: Optional[int] = None, *, timeout: Optional[float] = 60.0) -> int:
        return self._run(self.aio.wait_for_port(session_id, port, timeout=timeout))  # type: ignore[no-any-return]


class Session:
    """A session: ``.id`` is the ``sessionId``; ``with session:`` removes it
    at the end. Every method is the client's, for this session."""

    def __init__(self, client: Client, aio: AsyncSession) -> None:
        self.client = client
        self.aio = aio
        self.id = aio.id
        self.container_id = aio.container_id
        self.status = aio.status
        self.image = aio.image

    @property
    def session_id(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"Session({self.id!r})"

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove(missing_ok=True)

    def remove(self, *, missing_ok: bool = False, request_timeout: Timeout = DEFAULT) -> None:
        self.client._run(self.aio.remove(missing_ok=missing_ok, request_timeout=request_timeout))

    def info(self, *, request_timeout: Timeout = DEFAULT) -> SessionInfo:
        return self.client.get_container(self.id, request_timeout=request_timeout)

    def configure_preview(self, port: int, *, request_timeout: Timeout = DEFAULT) -> Preview:
        return self.client.configure_preview(self.id, port, request_timeout=request_timeout)

    def attach(
        self, *, since: Optional[int] = None, replay: bool = True, request_timeout: Timeout = DEFAULT
    ) -> "Terminal":
        return self.client.attach(self.id, since=since, replay=replay, request_timeout=request_timeout)

    def send_input(self, data: str, *, request_timeout: Timeout = DEFAULT) -> None:
        self.client.send_input(self.id, data, request_timeout=request_timeout)

    def resize(self, cols: int, rows: int, *, request_timeout: Timeout = DEFAULT) -> None:
        self.client.resize(self.id, cols, rows, request_timeout=request_timeout)

    def output(self) -> SyncIterator[Output]:
        return self.client.output(self.id)

    def read_output(self, until: Union[str, Pattern[str]], *, timeout: Optional[float] = 30.0, include_replay: bool = True) -> str:
        return self.client.read_output(self.id, until, timeout=timeout, include_replay=include_replay)

    def execute_command(self, command: Command, **kw: Any) -> CommandResult:
        return self.client.execute_command(self.id, command, **kw)

    def stream_command(self, command: Command, **kw: Any) -> SyncIterator[CommandMessage]:
        return self.client.stream_command(self.id, command, **kw)

    def start_command(self, command: Command, **kw: Any) -> "CommandHandle":
        return self.client.start_command(self.id, command, **kw)

    def list_commands(self, *, request_timeout: Timeout = DEFAULT) -> list[CommandInfo]:
        return self.client.list_commands(self.id, request_timeout=request_timeout)

    def read_file(self, path: str, **kw: Any) -> bytes:
        return self.client.read_file(self.id, path, **kw)

    def read_text(self, path: str, **kw: Any) -> str:
        return self.client.read_text(self.id, path, **kw)

    def write_file(self, path: str, data: Union[bytes, str], **kw: Any) -> WriteResult:
        return self.client.write_file(self.id, path, data, **kw)

    def stat(self, path: str, **kw: Any) -> FileInfo:
        return self.client.stat(self.id, path, **kw)

    def list_files(self, path: str, **kw: Any) -> list[FileEntry]:
        return self.client.list_files(self.id, path, **kw)

    def remove_file(self, path: str, **kw: Any) -> None:
        self.client.remove_file(self.id, path, **kw)

    def watch(self, path: str, **kw: Any) -> "Watch":
        return self.client.watch(self.id, path, **kw)

    def events(self, **kw: Any) -> SyncIterator[Event]:
        return self.client.events(self.id, **kw)

    def get_ports(self, *, request_timeout: Timeout = DEFAULT) -> list[int]:
        return self.client.get_ports(self.id, request_timeout=request_timeout)

    def wait_for_port(self, port: Optional[int] = None, *, timeout: Optional[float] = 60.0) -> int:
        return self.client.wait_for_port(self.id, port, timeout=timeout)


class Terminal:
    """A session's terminal this client is attached to; iterating it yields
    its :class:`Output`. ``with`` detaches at the end."""

    def __init__(self, client: Client, aio: AsyncTerminal) -> None:
        self.client = client
        self.aio = aio
        self.info: Attached = aio.info
        self.session_id = aio.session_id
        self.container_id = aio.container_id

    def __repr__(self) -> str:
        return f"Terminal({self.session_id!r})"

    def send_input(self, data: str, *, request_timeout: Timeout = DEFAULT) -> None:
        self.client.send_input(self.session_id, data, request_timeout=request_timeout)

    def resize(self, cols: int, rows: int, *, request_timeout: Timeout = DEFAULT) -> None:
        self.client.resize(self.session_id, cols, rows, request_timeout=request_timeout)

    def output(self) -> SyncIterator[Output]:
        return self.client.output(self.session_id)

    def events(self) -> SyncIterator[Event]:
        return self.client._iter(self.aio.events())  # type: ignore[no-any-return]

    def read_until(
        self, until: Union[str, Pattern[str]], *, timeout: Optional[float] = 30.0, include_replay: bool = True
    ) -> str:
        return self.client.read_output(self.session_id, until, timeout=timeout, include_replay=include_replay)

    def __iter__(self) -> Iterator[Output]:
        return self.output()

    def detach(self) -> None:
        self.client.detach(self.session_id)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


class Watch:
    """A watch on a path: an iterator of :class:`FsEvent`; ``with`` (or
    ``close()``) stops it."""

    def __init__(self, client: Client, aio: AsyncWatch) -> None:
        self.client = client
        self.aio = aio
        self.info: Watching = aio.info
        self.session_id = aio.session_id
        self.path = aio.path

    def __repr__(self) -> str:
        return f"Watch({self.session_id!r}, {self.path!r})"

    def __iter__(self) -> Iterator[FsEvent]:
        return self.client._iter(self.aio)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client._run(self.aio.close())

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CommandHandle:
    """A command started with :meth:`Client.start_command`."""

    def __init__(self, client: Client, aio: AsyncCommand) -> None:
        self.client = client
        self.aio = aio
        self.session_id = aio.session_id
        self.exec_id = aio.exec_id

    def __repr__(self) -> str:
        return f"CommandHandle({self.session_id!r}, {self.exec_id!r})"

    def wait(self, *, timeout: Optional[float] = None) -> CommandResult:
        return self.client._run(self.aio.wait(timeout=timeout))  # type: ignore[no-any-return]

    def result(self, *, request_timeout: Timeout = DEFAULT) -> CommandResult:
        return self.client._run(self.aio.result(request_timeout=request_timeout))  # type: ignore[no-any-return]

    def kill(self, signal: Union[str, int] = "SIGKILL", *, request_timeout: Timeout = DEFAULT) -> None:
        self.client._run(self.aio.kill(signal, request_timeout=request_timeout))

    def send_input(self, data: Union[str, bytes], *, eof: bool = False, request_timeout: Timeout = DEFAULT) -> None:
        self.client._run(self.aio.send_input(data, eof=eof, request_timeout=request_timeout))
