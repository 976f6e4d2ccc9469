"""A session's files over REST, and watches over the WebSocket."""

from __future__ import annotations

from typing import AsyncIterator, Optional, Union

from . import errors
from ._base import DEFAULT, Base, Timeout, sessions_path
from ._channel import Closed
from ._connection import Msg, WatchState
from .models import FileEntry, FileInfo, FsEvent, Watching, WriteResult

__all__ = ["FilesMixin", "AsyncWatch"]


class FilesMixin(Base):
    async def read_file(
        self,
        session_id: str,
        path: str,
        *,
        offset: Optional[int] = None,
        length: Optional[int] = None,
        request_timeout: Timeout = DEFAULT,
    ) -> bytes:
        """The file's bytes (or ``length`` bytes from ``offset``). Paths are
        absolute, under ``/workspace``, ``/home/studio`` or ``/tmp``."""
        headers = {}
        if offset is not None or length is not None:
            start = offset or 0
            end = "" if length is None else str(start + max(length, 1) - 1)
            headers["Range"] = f"bytes={start}-{end}"
        resp = await self._http.request(
            "GET",
            sessions_path(session_id, "files", "content"),
            params={"path": path},
            headers=headers,
            request_timeout=request_timeout,
        )
        return resp.content

    async def read_text(
        self, session_id: str, path: str, *, encoding: str = "utf-8", request_timeout: Timeout = DEFAULT
    ) -> str:
        return (await self.read_file(session_id, path, request_timeout=request_timeout)).decode(encoding)

    async def write_file(
        self,
        session_id: str,
        path: str,
        data: Union[bytes, str],
        *,
        parents: bool = False,
        request_timeout: Timeout = DEFAULT,
    ) -> WriteResult:
        """Writes the file atomically (a reader sees the old or the new one).
        ``parents=True`` makes missing parent directories (else a missing
        parent is a :class:`~claude_studio.errors.FileNotFoundError`)."""
        content = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        resp = await self._http.request(
            "PUT",
            sessions_path(session_id, "files", "content"),
            params={"path": path, "parents": parents or None},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
            request_timeout=request_timeout,
        )
        body = resp.json()
        return WriteResult(path=body.get("path", path), size=int(body.get("size", len(content))), created=resp.status_code == 201)

    async def stat(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> FileInfo:
        """A path's type, size, mode and mtime; a directory's with its
        ``entries`` (``recursive``: every entry below, at most 10 000)."""
        data = await self._http.json(
            "GET",
            sessions_path(session_id, "files"),
            params={"path": path, "recursive": recursive or None},
            request_timeout=request_timeout,
        )
        return FileInfo.from_json(data)

    async def list_files(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> list[FileEntry]:
        """A directory's entries (names relative to it)."""
        info = await self.stat(session_id, path, recursive=recursive, request_timeout=request_timeout)
        if info.entries is None:
            raise errors.ValidationError(f"{path} is not a directory", status_code=None)
        return list(info.entries)

    async def exists(self, session_id: str, path: str, *, request_timeout: Timeout = DEFAULT) -> bool:
        try:
            await self.stat(session_id, path, request_timeout=request_timeout)
            return True
        except errors.FileNotFoundError:
            return False

    async def remove_file(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> None:
        """Removes a file or an empty directory (``recursive``: any directory)."""
        await self._http.request(
            "DELETE",
            sessions_path(session_id, "files"),
            params={"path": path, "recursive": recursive or None},
            request_timeout=request_timeout,
        )

    async def mkdir(
        self, session_id: str, path: str, *, parents: bool = False, request_timeout: Timeout = DEFAULT
    ) -> bool:
        """Makes a directory; answers whether it was made (with ``parents``,
        an existing one is no error and answers ``False``)."""
        data = await self._http.json(
            "POST",
            sessions_path(session_id, "files", "mkdir"),
            params={"path": path, "parents": parents or None},
            request_timeout=request_timeout,
        )
        return bool(data.get("created", True))

    async def move(self, session_id: str, source: str, destination: str, *, request_timeout: Timeout = DEFAULT) -> None:
        await self._http.request(
            "POST",
            sessions_path(session_id, "files", "move"),
            json={"from": source, "to": destination},
            request_timeout=request_timeout,
        )

    async def download_archive(self, session_id: str, path: str, *, request_timeout: Timeout = DEFAULT) -> bytes:
        """A directory as a tar archive."""
        resp = await self._http.request(
            "GET",
            sessions_path(session_id, "files", "archive"),
            params={"path": path},
            request_timeout=request_timeout,
        )
        return resp.content

    async def upload_archive(
        self, session_id: str, path: str, tar: bytes, *, request_timeout: Timeout = DEFAULT
    ) -> int:
        """Unpacks a tar archive into the directory ``path`` (made if
        missing); answers how many entries it had."""
        data = await self._http.json(
            "PUT",
            sessions_path(session_id, "files", "archive"),
            params={"path": path},
            content=bytes(tar),
            headers={"Content-Type": "application/x-tar"},
            request_timeout=request_timeout,
        )
        return int(data.get("entries", 0))

    async def watch(
        self, session_id: str, path: str, *, recursive: bool = False, request_timeout: Timeout = DEFAULT
    ) -> "AsyncWatch":
        """Watches a path for changes (over the WebSocket). Iterate the
        answer for :class:`FsEvent`\\ s; ``close()`` (or leaving ``async
        with``) stops it. Watched again after a reconnect, with an
        ``overflow`` event for the time in between."""
        conn = self._conn
        key = (session_id, path)
        state = conn.watches.get(key) or WatchState(session_id, path, recursive)
        conn.watches[key] = state

        def match(msg: Msg) -> Union[None, Msg, errors.ClaudeStudioError]:
            if msg.get("sessionId") != session_id or msg.get("path") != path:
                return None
            if msg.get("type") == "watching":
                return msg
            if msg.get("type") == "error":
                return errors.from_body(msg)
            return None

        try:
            reply = await self._bounded(
                conn.request(
                    {"type": "watch", "sessionId": session_id, "path": path, "recursive": recursive},
                    match,
                ),
                request_timeout,
                "watch",
            )
        except BaseException:
            if conn.watches.get(key) is state:
                del conn.watches[key]
            raise
        info = Watching(
            session_id=session_id,
            path=path,
            directories=int(reply.get("directories", 0)),
            truncated=bool(reply.get("truncated", False)),
        )
        return AsyncWatch(self, state, info)

    async def unwatch(self, session_id: str, path: str, *, request_timeout: Timeout = DEFAULT) -> None:
        state = self._conn.watches.pop((session_id, path), None)
        if state is None:
            return
        state.events.end()
        if self._conn.connected:

            def match(msg: Msg) -> Union[None, Msg, errors.ClaudeStudioError]:
                if msg.get("sessionId") == session_id and msg.get("path") == path:
                    if msg.get("type") in ("unwatched", "error"):
                        return msg
                return None

            try:
                await self._bounded(
                    self._conn.request(
                        {"type": "unwatch", "sessionId": session_id, "path": path},
                        match,
                    ),
                    request_timeout,
                    "unwatch",
                )
            except errors.ClaudeStudioError:
                pass


class AsyncWatch:
    """A watch on a path of a session: an async iterator of
    :class:`FsEvent`."""

    def __init__(self, client: FilesMixin, state: WatchState, info: Watching) -> None:
        self._client = client
        self._state = state
        self.info = info
        self.session_id = state.session_id
        self.path = state.path

    def __repr__(self) -> str:
        return f"AsyncWatch({self.session_id!r}, {self.path!r})"

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> FsEvent:
        try:
            return await self._state.events.get()
        except Closed:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        await self._client.unwatch(self.session_id, self.path)

    async def __aenter__(self) -> "AsyncWatch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
