"""What every part of :class:`~claude_studio.AsyncClient` shares: the REST
transport, the WebSocket connection, and how a call is bounded in time."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Optional, TypeVar
from urllib.parse import quote

from . import errors
from ._connection import Connection
from ._http import DEFAULT, Http, Timeout

T = TypeVar("T")


def q(segment: str) -> str:
    """One path segment, percent-encoded."""
    return quote(segment, safe="")


def sessions_path(session_id: str, *rest: str) -> str:
    return "/api/containers/" + "/".join([q(session_id), *rest])


class Base:
    _http: Http
    _conn: Connection
    _tasks: set[asyncio.Task[Any]]

    def _timeout(self, request_timeout: Timeout) -> Optional[float]:
        return self._http.timeout_of(request_timeout)

    async def _bounded(self, aw: Awaitable[T], request_timeout: Timeout, what: str) -> T:
        """``aw`` within the call's timeout, a
        :class:`~claude_studio.errors.ClientTimeoutError` past it."""
        t = self._timeout(request_timeout)
        try:
            async with asyncio.timeout(t):
                return await aw
        except TimeoutError as e:
            if isinstance(e, errors.ClaudeStudioError):
                raise
            raise errors.ClientTimeoutError(f"{what} did not finish within {t} s") from None

    def _background(self, aw: Awaitable[Any]) -> None:
        """Runs ``aw`` on its own (a clean-up that a cancellation must not
        stop), keeping a reference until it ends."""
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


__all__ = ["Base", "DEFAULT", "Timeout", "q", "sessions_path"]
