"""An event loop on a thread of its own, for the synchronous client.

The synchronous :class:`~claude_studio.Client` is the asynchronous one driven
from here, so both share one implementation of retries, reconnects and
iterators. The loop also keeps the WebSocket alive (heartbeats, reconnects)
between calls. Callbacks (``on_output``…) run on this thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Coroutine, Generic, Iterator, TypeVar

T = TypeVar("T")

__all__ = ["Runner", "SyncIterator"]


class Runner:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="claude-studio", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the loop and waits for it. An interrupt
        (Ctrl-C) while waiting cancels it there."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a synchronous Client method was called from one of its own callbacks; "
                "callbacks run on the client's event loop thread: hand the work to another thread"
            )
        if self.loop.is_closed():
            coro.close()
            raise RuntimeError("the client is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


_END = object()


class SyncIterator(Generic[T], Iterator[T]):
    """An async iterator, iterated from another thread through the runner.
    ``close()`` (or leaving ``with``) closes it there."""

    def __init__(self, runner: Runner, ait: AsyncIterator[T]) -> None:
        self._runner = runner
        self._ait = ait
        self._done = False

    def __iter__(self) -> "SyncIterator[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration

        async def step() -> Any:
            try:
                return await self._ait.__anext__()
            except StopAsyncIteration:
                return _END

        item = self._runner.run(step())
        if item is _END:
            self._done = True
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        aclose = getattr(self._ait, "aclose", None)
        if aclose is not None and not self._runner.loop.is_closed():
            self._runner.run(aclose())

    def __enter__(self) -> "SyncIterator[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._done and not self._runner.loop.is_closed():
                aclose = getattr(self._ait, "aclose", None)
                if aclose is not None:
                    asyncio.run_coroutine_threadsafe(aclose(), self._runner.loop)
        except Exception:
            pass

