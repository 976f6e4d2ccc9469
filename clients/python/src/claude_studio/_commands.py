"""Commands over REST: run and wait, stream the output, or start in the
background and wait, signal or feed them later."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any, AsyncIterator, Mapping, Optional, Sequence, Union

from . import errors
from ._base import DEFAULT, Base, Timeout, q, sessions_path
from .models import (
    CommandExit,
    CommandInfo,
    CommandMessage,
    CommandResult,
    CommandStarted,
    parse_command_message,
)

__all__ = ["CommandsMixin", "AsyncCommand", "Command"]

#: A command: a string run by ``/bin/sh -c``, or an argument vector.
Command = Union[str, Sequence[str]]


def _new_exec_id() -> str:
    return "py-" + secrets.token_urlsafe(12)


def _body(
    command: Command,
    cwd: Optional[str],
    env: Optional[Mapping[str, str]],
    stdin: Optional[str],
    timeout: Optional[float],
    exec_id: str,
) -> dict[str, Any]:
    if isinstance(command, (bytes, bytearray)):
        raise TypeError("command must be a str or a sequence of str, not bytes")
    body: dict[str, Any] = {"cmd": command if isinstance(command, str) else list(command), "execId": exec_id}
    if cwd is not None:
        body["cwd"] = cwd
    if env is not None:
        body["env"] = dict(env)
    if stdin is not None:
        body["stdin"] = stdin
    if timeout is not None:
        body["timeout"] = timeout
    return body


class CommandsMixin(Base):
    def _exec_timeout(self, timeout: Optional[float], request_timeout: Timeout) -> Optional[float]:
        """A call that waits for a command waits as long as the command may
        run (its ``timeout``, plus the usual margin), or without a limit."""
        if request_timeout is not DEFAULT:
            return request_timeout  # type: ignore[return-value]
        if timeout is None:
            return None
        margin = self._http.request_timeout or 30.0
        return timeout + margin

    async def execute_command(
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
        """Runs a command in the session and waits for it.

        ``command`` is a string (run by ``/bin/sh -c``) or an argument vector.
        ``timeout`` (seconds) is the command's: the server kills its process
        group then, and the result says ``timed_out``. ``request_timeout``
        bounds the call itself (default: ``timeout`` plus the client's
        request timeout, or no limit for a command without ``timeout``).

        When the call is cancelled or times out, the command is killed.
        """
        exec_id = exec_id or _new_exec_id()
        body = _body(command, cwd, env, stdin, timeout, exec_id)
        try:
            data = await self._http.json(
                "POST",
                sessions_path(session_id, "exec"),
                json=body,
                request_timeout=self._exec_timeout(timeout, request_timeout),
                retries=retries,
            )
        except (asyncio.CancelledError, errors.ClientTimeoutError):
            self._background(self._kill_quietly(session_id, exec_id))
            raise
        return CommandResult.from_json(data)

    async def stream_command(
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
    ) -> AsyncIterator[CommandMessage]:
        """Runs a command and yields its :class:`CommandStarted`, each
        :class:`CommandOutput` (``stream``, ``data`` bytes, ``text``) as it
        comes, and its :class:`CommandExit` last. Leaving the loop early (or
        cancelling) kills the command unless ``kill_on_close=False``.
        ``request_timeout`` bounds the wait for the command to start."""
        exec_id = exec_id or _new_exec_id()
        body = _body(command, cwd, env, stdin, timeout, exec_id)
        finished = False
        try:
            async with self._http.stream(
                "POST",
                sessions_path(session_id, "exec"),
                json=body,
                headers={"Accept": "application/x-ndjson"},
                request_timeout=request_timeout,
            ) as resp:
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    msg = json.loads(line)
                    if msg.get("type") == "error":
                        finished = True
                        raise errors.from_body(msg)
                    item = parse_command_message(msg)
                    if item is None:
                        continue
                    if isinstance(item, CommandExit):
                        finished = True
                    yield item
        finally:
            if not finished and kill_on_close:
                self._background(self._kill_quietly(session_id, exec_id))

    async def start_command(
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
    ) -> "AsyncCommand":
        """Starts a command in the background and answers its handle (wait
        for it, read its result so far, feed its stdin, signal it). Its
        output is kept by the server (up to 16 MiB) for :meth:`get_command`."""
        exec_id = exec_id or _new_exec_id()
        body = _body(command, cwd, env, stdin, timeout, exec_id)

        async def go() -> str:
            async with self._http.stream(
                "POST",
                sessions_path(session_id, "exec"),
                json=body,
                headers={"Accept": "application/x-ndjson"},
                request_timeout=None,
            ) as resp:
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    msg = json.loads(line)
                    if msg.get("type") == "error":
                        raise errors.from_body(msg)
                    item = parse_command_message(msg)
                    if isinstance(item, CommandStarted):
                        return item.exec_id
            raise errors.ConnectionFailedError("the command's stream ended before it started")

        started = await self._bounded(go(), request_timeout, "start_command")
        return AsyncCommand(self, session_id, started)

    async def list_commands(self, session_id: str, *, request_timeout: Timeout = DEFAULT) -> list[CommandInfo]:
        """The session's running commands."""
        data = await self._http.json("GET", sessions_path(session_id, "exec"), request_timeout=request_timeout)
        return [CommandInfo.from_json(c) for c in data.get("commands", [])]

    async def get_command(
        self, session_id: str, exec_id: str, *, request_timeout: Timeout = DEFAULT
    ) -> CommandResult:
        """A command's result so far (``running`` while it runs)."""
        data = await self._http.json(
            "GET", sessions_path(session_id, "exec", q(exec_id)), request_timeout=request_timeout
        )
        return CommandResult.from_json(data)

    async def kill_command(
        self,
        session_id: str,
        exec_id: str,
        signal: Union[str, int] = "SIGKILL",
        *,
        request_timeout: Timeout = DEFAULT,
    ) -> None:
        """Sends ``signal`` (a name like ``"SIGTERM"``/``"TERM"`` or a number)
        to the command's process group."""
        await self._http.request(
            "DELETE",
            sessions_path(session_id, "exec", q(exec_id)),
            params={"signal": str(signal)},
            request_timeout=request_timeout,
        )

    async def send_command_input(
        self,
        session_id: str,
        exec_id: str,
        data: Union[str, bytes],
        *,
        eof: bool = False,
        request_timeout: Timeout = DEFAULT,
    ) -> None:
        """Writes ``data`` to the command's stdin (``eof=True`` closes it)."""
        body: dict[str, Any]
        if isinstance(data, (bytes, bytearray)):
            body = {"data": base64.b64encode(bytes(data)).decode(), "encoding": "base64"}
        else:
            body = {"data": data}
        if eof:
            body["eof"] = True
        await self._http.request(
            "POST",
            sessions_path(session_id, "exec", q(exec_id), "input"),
            json=body,
            request_timeout=request_timeout,
        )

    async def wait_command(
        self, session_id: str, exec_id: str, *, timeout: Optional[float] = None
    ) -> CommandResult:
        """Waits for a command to end (long-polling the session's events, not
        polling the command) and answers its result."""

        async def go() -> CommandResult:
            cursor = 0
            while True:
                result = await self.get_command(session_id, exec_id)
                if not result.running:
                    return result
                page = await self._http.json(
                    "GET",
                    sessions_path(session_id, "events"),
                    params={"since": cursor, "wait": 30},
                    request_timeout=30 + (self._http.request_timeout or 30.0),
                )
                cursor = int(page.get("next", cursor))
                ended = any(
                    e.get("type") == "exec_exit" and e.get("execId") == exec_id for e in page.get("events", [])
                )
                if ended:
                    # The result may trail the event by a moment.
                    for _ in range(50):
                        result = await self.get_command(session_id, exec_id)
                        if not result.running:
                            return result
                        await asyncio.sleep(0.02)

        return await self._bounded(go(), timeout, f"waiting for command {exec_id}")

    async def _kill_quietly(self, session_id: str, exec_id: str) -> None:
        """Kills a command the caller gave up on, and makes sure it ended:
        the kill is sent again until the command is seen ended (for at most
        a few seconds), as the start itself may still be on its way."""
        try:
            async with asyncio.timeout(10):
                unknown = 0
                for attempt in range(20):
                    try:
                        await self.kill_command(session_id, exec_id, request_timeout=5.0)
                    except errors.CommandNotFoundError:
                        # Not started yet, or never: the request may not
                        # have reached the server at all.
                        unknown += 1
                        if unknown >= 5:
                            return
                    except errors.ValidationError:
                        return  # it has ended already
                    await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
                    try:
                        if not (await self.get_command(session_id, exec_id, request_timeout=5.0)).running:
                            return
                    except errors.CommandNotFoundError:
                        continue
        except Exception:
            pass


class AsyncCommand:
    """A command started with :meth:`AsyncClient.start_command`."""

    def __init__(self, client: CommandsMixin, session_id: str, exec_id: str) -> None:
        self._client = client
        self.session_id = session_id
        self.exec_id = exec_id

    def __repr__(self) -> str:
        return f"AsyncCommand({self.session_id!r}, {self.exec_id!r})"

    async def wait(self, *, timeout: Optional[float] = None) -> CommandResult:
        return await self._client.wait_command(self.session_id, self.exec_id, timeout=timeout)

    async def result(self, *, request_timeout: Timeout = DEFAULT) -> CommandResult:
        return await self._client.get_command(self.session_id, self.exec_id, request_timeout=request_timeout)

    async def kill(self, signal: Union[str, int] = "SIGKILL", *, request_timeout: Timeout = DEFAULT) -> None:
        await self._client.kill_command(self.session_id, self.exec_id, signal, request_timeout=request_timeout)

    async def send_input(
        self, data: Union[str, bytes], *, eof: bool = False, request_timeout: Timeout = DEFAULT
    ) -> None:
        await self._client.send_command_input(
            self.session_id, self.exec_id, data, eof=eof, request_timeout=request_timeout
        )
