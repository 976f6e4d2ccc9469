"""Every call is bounded in time; a cancelled or timed-out command is killed."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest

from claude_studio import AsyncClient, Client, errors
from studio import StudioServer


@pytest.fixture(scope="module")
def sid(server: StudioServer) -> Iterator[str]:
    with Client(server.url) as c:
        s = c.create_container()
        yield s.id
        s.remove(missing_ok=True)


async def wait_running(c: AsyncClient, sid: str, exec_id: str) -> None:
    """Until the server lists the command as running (no fixed sleep)."""
    async with asyncio.timeout(10):
        while exec_id not in [x.exec_id for x in await c.list_commands(sid)]:
            await asyncio.sleep(0.02)


async def test_a_call_past_its_request_timeout_raises_and_kills_the_command(server: StudioServer, sid: str) -> None:
    async with AsyncClient(server.url) as c:
        started = time.monotonic()
        with pytest.raises(errors.ClientTimeoutError) as e:
            await c.execute_command(sid, "sleep 30", exec_id="slow-1", request_timeout=0.5)
        assert 0.4 <= time.monotonic() - started < 3
        # Also the builtin TimeoutError (so asyncio.TimeoutError).
        assert isinstance(e.value, TimeoutError) and e.value.retryable and e.value.status_code is None
        r = await c.wait_command(sid, "slow-1", timeout=10)
        assert r.signal == "SIGKILL" and r.exit_code == 137


async def test_asyncio_cancellation_kills_the_command(server: StudioServer, sid: str) -> None:
    async with AsyncClient(server.url) as c:
        task = asyncio.ensure_future(c.execute_command(sid, "sleep 30", exec_id="cancelled-1"))
        await wait_running(c, sid, "cancelled-1")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = await c.wait_command(sid, "cancelled-1", timeout=10)
        assert not r.running and r.signal == "SIGKILL"


async def test_asyncio_timeout_around_a_call_cancels_it(server: StudioServer, sid: str) -> None:
    async with AsyncClient(server.url) as c:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await c.read_output(sid, "never-printed-marker", timeout=None)
        # The client stays usable.
        assert (await c.execute_command(sid, "echo still")).stdout == "still\n"


async def test_server_side_command_timeout(server: StudioServer, sid: str) -> None:
    async with AsyncClient(server.url) as c:
        r = await c.execute_command(sid, "sleep 30", timeout=0.5)
        assert r.timed_out and r.exit_code == 137 and r.signal == "SIGKILL"


async def test_waits_are_bounded(server: StudioServer, sid: str) -> None:
    async with AsyncClient(server.url) as c:
        for call in (
            c.read_output(sid, "never-printed-marker", timeout=0.3),
            c.get_events(sid, since=2**62, wait=10, request_timeout=0.3),
            c.wait_for_port(sid, 65000, timeout=0.3),
        ):
            started = time.monotonic()
            with pytest.raises(errors.ClientTimeoutError):
                await call
            assert time.monotonic() - started < 2


def test_sync_client_timeouts(server: StudioServer, sid: str) -> None:
    with Client(server.url, request_timeout=0.5) as c:
        with pytest.raises(errors.ClientTimeoutError):
            c.get_events(sid, since=2**62, wait=10, request_timeout=0.3)
        with pytest.raises(TimeoutError):
            c.read_output(sid, "never-printed-marker", timeout=0.3)
        h = c.start_command(sid, "sleep 30")
        with pytest.raises(errors.ClientTimeoutError):
            h.wait(timeout=0.3)
        # A command with a timeout of its own gets that long plus the usual margin.
        assert c.execute_command(sid, "sleep 0.7; echo done", timeout=5).stdout == "done\n"
        c._run(c.aio._kill_quietly(sid, h.exec_id))


def test_unreachable_server_fails_fast_without_retries() -> None:
    with Client("http://127.0.0.1:9", retries=0, request_timeout=5) as c:
        started = time.monotonic()
        with pytest.raises(errors.ConnectionFailedError):
            c.health()
        assert time.monotonic() - started < 2
