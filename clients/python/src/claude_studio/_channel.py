"""A bounded queue that one reader drains and that can end or fail.

The WebSocket's reader never waits on a slow consumer: when a channel is
full its oldest item is dropped (``dropped`` counts them), so one session's
unread output cannot hold up another session's, nor the heartbeat.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Deque, Generic, Optional, TypeVar

T = TypeVar("T")

__all__ = ["Channel", "Closed"]


class Closed(Exception):
    """The channel ended without an error."""


class Channel(Generic[T]):
    def __init__(self, max_items: int = 10_000) -> None:
        self._items: Deque[T] = deque()
        self._max = max_items
        self._ready = asyncio.Event()
        self._error: Optional[BaseException] = None
        self._ended = False
        self.dropped = 0

    @property
    def done(self) -> bool:
        return self._ended or self._error is not None

    def put(self, item: T) -> None:
        if self.done:
            return
        self._items.append(item)
        if len(self._items) > self._max:
            self._items.popleft()
            self.dropped += 1
        self._ready.set()

    def put_front(self, item: T) -> None:
        """Gives an item back, to be read first."""
        self._items.appendleft(item)
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self._error = error
        self._ready.set()

    def get_nowait(self) -> Optional[T]:
        return self._items.popleft() if self._items else None

    async def get(self) -> T:
        """The next item; raises the channel's error, or :class:`Closed`
        once it ended and is empty."""
        while True:
            if self._items:
                item = self._items.popleft()
                if not self._items and not self.done:
                    self._ready.clear()
                return item
            if self._error is not None:
                raise self._error
            if self._ended:
                raise Closed()
            self._ready.clear()
            await self._ready.wait()
