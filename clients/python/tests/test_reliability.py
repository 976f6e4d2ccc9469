"""Reconnects (the server restarting, or dying), giving up, and retries that
follow the rate-limit headers."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any, Callable, Optional

import httpx
import pytest

from claude_studio import AsyncClient, Client, Lifecycle, Output, errors
from studio import StudioServer

StartServer = Callable[..., StudioServer]


def test_reconnects_after_a_restart_and_reattaches_with_replay(start_server: StartServer) -> None:
    first = start_server()
    with Client(first.url, reconnect_timeout=30) as c:
        s = c.create_container()
        delays: list[Optional[float]] = []
        c.on_reconnect(delays.append)
        dropped_at = [0.0]
        replayed_at: list[float] = []
        replayed = threading.Event()

        def watch(o: Output) -> None:
            if o.replay and dropped_at[0]:
                replayed_at.append(time.monotonic())
                replayed.set()

        c.on_output(watch)
        term = c.attach(s.id, since=0)
        c.send_input(s.id, "echo before-$((1+1))\n")
        assert "before-2" in c.read_output(s.id, "before-2", timeout=15)

        dropped_at[0] = time.monotonic()
        first.stop(signal.SIGTERM)  # clients get `reconnect` (delay 1000 ms); containers stay
        second = start_server(instance=first.instance, state_dir=first.state_dir, listen=first.addr)
        assert replayed.wait(20), "no replay after the restart"
        assert delays == [1.0], delays
        # The server's delay was honoured: no attempt before it.
        assert replayed_at[0] - dropped_at[0] >= 0.95
        assert c.aio._conn.connections == 2
        # New output on the re-adopted session, over the new connection.
        c.send_input(s.id, "echo after-$((2+2))\n")
        assert "after-4" in c.read_output(s.id, "after-4", timeout=15)
        # Events resumed from the last seq seen: the restart's, not repeats.
        states = []
        with term.events() as events:
            for ev in events:
                if isinstance(ev, Lifecycle):
                    states.append(ev.state)
                if ev.type == "lifecycle" and ev.raw.get("state") == "restored":
                    break
        assert states == ["created", "restored"]
        assert c.get_container(s.id).status == "running"
        assert second.url == first.url


async def test_reconnects_with_backoff_when_the_server_dies(start_server: StartServer) -> None:
    first = start_server()
    async with AsyncClient(first.url, reconnect_timeout=30) as c:
        s = await c.create_container()
        delays: list[Optional[float]] = []
        dropped = asyncio.Event()

        def on_reconnect(delay: Optional[float]) -> None:
            delays.append(delay)
            dropped.set()

        c.on_reconnect(on_reconnect)
        await s.send_input("echo one-$((0+1))\n")
        await s.read_output("one-1", timeout=15)
        first.kill()  # no `reconnect` message: the socket just closes
        await asyncio.wait_for(dropped.wait(), 10)
        assert not c.connected
        # A call made while the connection is down waits for it to return.
        sending = asyncio.ensure_future(s.send_input("echo two-$((1+1))\n", request_timeout=20))
        await asyncio.to_thread(start_server, instance=first.instance, state_dir=first.state_dir, listen=first.addr)
        await sending
        await s.read_output("two-2", timeout=15)
        assert delays == [None]


async def test_gives_up_after_reconnect_timeout(start_server: StartServer) -> None:
    srv = start_server()
    async with AsyncClient(srv.url, reconnect_timeout=1.0) as c:
        s = await c.create_container()
        failures: list[errors.ClaudeStudioError] = []
        c.on_error(failures.append)
        await s.attach()
        srv.kill()
        started = time.monotonic()
        with pytest.raises(errors.ConnectionFailedError):
            async for _ in s.output():
                pass
        assert time.monotonic() - started < 10
        assert failures and isinstance(failures[-1], errors.ConnectionFailedError)
        assert not c.connected


async def test_websocket_upgrade_rate_limit_is_waited_out(start_server: StartServer) -> None:
    srv = start_server(["--rate-limit-ws", "1/1s"])
    async with AsyncClient(srv.url) as a, AsyncClient(srv.url) as b:
        s = await a.create_container()
        await a.attach(s.id)
        started = time.monotonic()
        # Refused with 429 and Retry-After at first; the client waits and retries.
        await b.attach(s.id, request_timeout=15)
        assert time.monotonic() - started >= 0.2
        async with AsyncClient(srv.url, retries=0) as c:
            with pytest.raises(errors.RateLimitError) as e:
                await c.attach(s.id)
            assert e.value.retryable and e.value.status_code == 429 and e.value.retry_after


# --- retries, without a server (httpx.MockTransport) -----------------------------


def mock_client(responses: list[httpx.Response], seen: list[float], **kw: Any) -> AsyncClient:
    it = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return next(it)

    return AsyncClient(
        "http://studio.test", http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)), **kw
    )


def limited(retry_after: Optional[str] = None, reset: Optional[float] = None) -> httpx.Response:
    headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if reset is not None:
        headers["X-RateLimit-Reset"] = str(int(reset))
    body = {"error": "RateLimitError", "message": "slow down", "retryable": True, "statusCode": 429}
    return httpx.Response(429, json=body, headers=headers)


OK = {"status": "ok", "docker": "connected", "uptime": 1}


async def test_retry_after_is_waited_then_the_call_succeeds() -> None:
    seen: list[float] = []
    async with mock_client([limited("1"), httpx.Response(200, json=OK)], seen) as c:
        assert (await c.health()).ok
    assert len(seen) == 2 and seen[1] - seen[0] >= 0.95


async def test_ratelimit_reset_is_used_without_retry_after() -> None:
    seen: list[float] = []
    reset = time.time() + 2  # whole seconds: waits up to 2 s
    async with mock_client([limited(reset=reset), httpx.Response(200, json=OK)], seen) as c:
        assert (await c.health()).ok
    assert seen[1] - seen[0] >= 0.5


async def test_rate_limit_error_carries_the_headers_when_retries_run_out() -> None:
    seen: list[float] = []
    async with mock_client([limited("7", reset=time.time() + 7)], seen, retries=0) as c:
        with pytest.raises(errors.RateLimitError) as e:
            await c.health()
    err = e.value
    assert err.retry_after == 7 and err.limit == 10 and err.remaining == 0 and err.reset
    assert err.retryable and err.status_code == 429 and err.error == "RateLimitError"


async def test_a_wait_beyond_the_deadline_or_the_maximum_fails_at_once() -> None:
    seen: list[float] = []
    async with mock_client([limited("30")], seen, request_timeout=5) as c:
        started = time.monotonic()
        with pytest.raises(errors.RateLimitError):
            await c.health()
        assert time.monotonic() - started < 1
    async with mock_client([limited("90")], seen, request_timeout=None, max_retry_wait=60) as c:
        with pytest.raises(errors.RateLimitError):
            await c.health()


async def test_retryable_server_errors_back_off_and_others_do_not() -> None:
    seen: list[float] = []
    daemon = {"error": "DockerDaemonError", "message": "down", "retryable": True, "statusCode": 503}
    async with mock_client([httpx.Response(503, json=daemon)] * 2 + [httpx.Response(200, json=OK)], seen) as c:
        assert (await c.health()).ok
    assert len(seen) == 3
    seen.clear()
    creation = {"error": "ContainerCreationError", "message": "no image", "retryable": False, "statusCode": 500}
    async with mock_client([httpx.Response(500, json=creation)], seen) as c:
        with pytest.raises(errors.ContainerCreationError):
            await c.health()
    assert len(seen) == 1


async def test_unreachable_server_is_a_connection_error() -> None:
    async with AsyncClient("http://127.0.0.1:9", retries=1, request_timeout=5) as c:
        with pytest.raises(errors.ConnectionFailedError) as e:
            await c.health()
        assert isinstance(e.value, ConnectionError) and e.value.retryable
        with pytest.raises(ConnectionError):
            await c.attach("session-x")


async def test_a_dropped_connection_reattaches_and_replays_recent_output(start_server: StartServer) -> None:
    srv = start_server()
    async with AsyncClient(srv.url) as c:
        s = await c.create_container()
        await s.send_input("echo kept-$((40+2))\n")
        await s.read_output("kept-42", timeout=15)
        # The network drops (no close frame, no `reconnect`).
        ws = c._conn._ws
        assert ws is not None
        ws.transport.abort()
        replay = ""
        async for out in s.output():
            if out.replay:
                replay = out.data
                break
        assert "kept-42" in replay and c._conn.connections == 2
        await s.send_input("echo fresh-$((1+1))\n")
        assert "fresh-2" in await s.read_output("fresh-2", timeout=15)
