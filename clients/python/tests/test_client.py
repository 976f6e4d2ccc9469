"""The API surface against a real server: commands, files, watches, ports,
events and the terminal, with both clients."""

from __future__ import annotations

import asyncio
import io
import queue
import re
import tarfile
import threading
import time
from typing import Any, Iterator

import pytest

from claude_studio import (
    AsyncClient,
    Client,
    CommandExit,
    CommandOutput,
    CommandStarted,
    ConsoleMessage,
    Lifecycle,
    Output,
    PortClosed,
    PortOpened,
    TerminalExit,
    errors,
)
from claude_studio._retry import derive_urls
from studio import IMAGE, StudioServer


@pytest.fixture(scope="module")
def client(server: StudioServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture(scope="module")
def sid(client: Client) -> Iterator[str]:
    """One session shared by the module's tests."""
    s = client.create_container()
    yield s.id
    s.remove(missing_ok=True)


def test_urls_derive_each_other() -> None:
    assert derive_urls("ws://localhost:3333") == ("http://localhost:3333", "ws://localhost:3333/ws")
    assert derive_urls("http://localhost:3333/") == ("http://localhost:3333", "ws://localhost:3333/ws")
    assert derive_urls("wss://h.example/ws") == ("https://h.example", "wss://h.example/ws")
    assert derive_urls("https://h.example/studio") == ("https://h.example/studio", "wss://h.example/studio/ws")
    assert derive_urls("localhost:3333") == ("http://localhost:3333", "ws://localhost:3333/ws")
    with pytest.raises(ValueError):
        derive_urls("ftp://x")


def test_health_and_listing(client: Client, sid: str) -> None:
    h = client.health()
    assert h.ok and h.docker == "connected" and h.uptime >= 0
    info = client.get_container(sid)
    assert info.id == sid and info.status == "running" and info.container_id
    assert sid in [s.id for s in client.list_containers()]
    assert client.list_images().default_image == IMAGE


def test_execute_command_result(client: Client, sid: str) -> None:
    r = client.execute_command(sid, ["sh", "-c", 'printf "%s" "$GREETING"; pwd'], cwd="/tmp", env={"GREETING": "hi "})
    assert r.ok and r.stdout == "hi /tmp\n" and r.stderr == "" and not r.timed_out
    assert r.duration_ms >= 0 and r.exec_id.startswith("py-")
    r = client.execute_command(sid, "cat", stdin="from stdin")
    assert r.stdout == "from stdin"
    r = client.execute_command(sid, "printf '\\377\\376'")
    assert r.stdout_bytes == b"\xff\xfe"
    r = client.execute_command(sid, "no-such-program")
    assert r.exit_code == 127


def test_stream_command_yields_output_as_it_comes(client: Client, sid: str) -> None:
    with client.stream_command(sid, "echo one; sleep 0.3; echo two >&2; exit 4") as it:
        items = list(it)
    assert isinstance(items[0], CommandStarted)
    outs = [i for i in items if isinstance(i, CommandOutput)]
    assert [(o.stream, o.text) for o in outs] == [("stdout", "one\n"), ("stderr", "two\n")]
    assert isinstance(items[-1], CommandExit) and items[-1].exit_code == 4


def test_leaving_a_stream_early_kills_the_command(client: Client, sid: str) -> None:
    it = client.stream_command(sid, "echo started; sleep 30", exec_id="early-exit")
    for item in it:
        if isinstance(item, CommandOutput):
            break
    it.close()
    r = client.wait_command(sid, "early-exit", timeout=10)
    assert r.signal == "SIGKILL" and r.exit_code == 137


def test_background_command_input_and_wait(client: Client, sid: str) -> None:
    h = client.start_command(sid, "read line; echo got-$line")
    assert h.exec_id in [c.exec_id for c in client.list_commands(sid)]
    h.send_input("abc\n", eof=True)
    r = h.wait(timeout=10)
    assert r.stdout == "got-abc\n" and r.exit_code == 0
    h2 = client.start_command(sid, "echo ready; sleep 30", exec_id="to-term")
    # The signal must land after the echo, so wait for its output first.
    deadline = time.monotonic() + 10
    while client.get_command(sid, "to-term").stdout != "ready\n":
        assert time.monotonic() < deadline, "the command never printed ready"
        time.sleep(0.02)
    h2.kill("TERM")
    r2 = h2.wait(timeout=10)
    assert r2.signal == "SIGTERM" and r2.exit_code == 143 and r2.stdout == "ready\n"
    with pytest.raises(errors.CommandNotFoundError):
        client.get_command(sid, "never-started")


def test_a_signal_right_after_start_is_not_lost(client: Client, sid: str) -> None:
    h = client.start_command(sid, "sleep 30")
    h.kill("TERM")
    try:
        assert h.wait(timeout=1).signal == "SIGTERM"
    finally:
        client._run(client.aio._kill_quietly(sid, h.exec_id))


def test_files(client: Client, sid: str) -> None:
    assert client.mkdir(sid, "/workspace/f/a/b", parents=True)
    assert not client.mkdir(sid, "/workspace/f/a/b", parents=True)
    w = client.write_file(sid, "/workspace/f/a/x.txt", b"0123456789")
    assert w.created and w.size == 10
    assert not client.write_file(sid, "/workspace/f/a/x.txt", b"0123456789").created
    assert client.read_file(sid, "/workspace/f/a/x.txt", offset=2, length=3) == b"234"
    assert client.read_file(sid, "/workspace/f/a/x.txt", offset=8) == b"89"
    st = client.stat(sid, "/workspace/f/a/x.txt")
    assert st.type == "file" and st.size == 10 and st.entries is None
    client.move(sid, "/workspace/f/a/x.txt", "/tmp/y.txt")
    assert client.read_text(sid, "/tmp/y.txt") == "0123456789"
    assert not client.exists(sid, "/workspace/f/a/x.txt")
    names = {e.name for e in client.list_files(sid, "/workspace/f", recursive=True)}
    assert {"a", "a/b"} <= names
    with pytest.raises(errors.ValidationError) as e:
        client.remove_file(sid, "/workspace/f")
    assert e.value.status_code == 409
    client.remove_file(sid, "/workspace/f", recursive=True)
    assert not client.exists(sid, "/workspace/f")
    with pytest.raises(errors.FileNotFoundError):
        client.write_file(sid, "/workspace/no/such/dir.txt", "x", parents=False)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"packed"
        ti = tarfile.TarInfo("inner/p.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    assert client.upload_archive(sid, "/workspace/t", buf.getvalue()) >= 1
    assert client.read_file(sid, "/workspace/t/inner/p.txt") == b"packed"
    back = tarfile.open(fileobj=io.BytesIO(client.download_archive(sid, "/workspace/t")))
    assert any(n.endswith("inner/p.txt") for n in back.getnames())


def test_watch_reports_changes(client: Client, sid: str) -> None:
    client.mkdir(sid, "/workspace/watched", parents=True)
    with client.watch(sid, "/workspace/watched", recursive=True) as w:
        assert w.info.directories >= 1
        client.write_file(sid, "/workspace/watched/new.txt", "x")
        ev = next(iter(w))
        assert ev.path == "/workspace/watched/new.txt" and ev.kind in ("created", "modified")
    with pytest.raises(errors.FileNotFoundError):
        client.watch(sid, "/workspace/not-there")


def test_ports_and_events(client: Client, sid: str) -> None:
    seen: "queue.Queue[Any]" = queue.Queue()
    stop = client.on_port(seen.put, session_id=sid)
    client.attach(sid, replay=False)
    start = client.get_events(sid)
    h = client.start_command(sid, "mkdir -p /tmp/www && echo hi > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www")
    try:
        assert client.wait_for_port(sid, 8080, timeout=20) == 8080
        assert 8080 in client.get_ports(sid)
        with client.events(sid, since=start.next, types={"port_opened"}) as events:
            ev = next(events)
        assert isinstance(ev, PortOpened) and ev.port == 8080 and "8080-" in ev.preview_url
        p = client.configure_preview(sid, 8080)
        assert p.preview_url == f"/preview/{sid}" and p.target_url == "http://localhost:8080"
        assert client.get_container(sid).preview_port == 8080
        assert seen.get(timeout=10) == PortOpened(type="port_opened", session_id=sid, seq=ev.seq, port=8080, preview_url=ev.preview_url)
    finally:
        client._run(client.aio._kill_quietly(sid, h.exec_id))
    closed = seen.get(timeout=10)
    assert isinstance(closed, PortClosed) and closed.port == 8080
    stop()
    page = client.get_events(sid, since=start.next, wait=10)
    assert page.next > start.next and all(e.seq and e.seq > start.next for e in page.events)


def test_terminal_attach_replay_since_and_callbacks(client: Client, sid: str) -> None:
    outputs: list[Output] = []
    exits: list[TerminalExit] = []
    stop_out = client.on_output(outputs.append, session_id=sid)
    stop_exit = client.on_exit(exits.append)
    try:
        first = client.get_events(sid)
        with client.attach(sid, since=first.next, replay=True) as term:
            term.resize(100, 30)
            term.send_input("echo term-$((3*3))\n")
            assert "term-9" in term.read_until("term-9", timeout=10)
            term.send_input("exit 5\n")
            ev = next(e for e in term.events() if isinstance(e, TerminalExit))
            assert ev.code == 5
            # The next input starts a new shell.
            term.send_input("echo again-$((1+1))\n")
            assert "again-2" in term.read_until(re.compile(r"again-\d"), timeout=10)
        deadline = time.monotonic() + 5
        while not exits and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exits and exits[0].code == 5
        assert any("term-9" in o.data for o in outputs)
    finally:
        stop_out()
        stop_exit()


async def test_async_client_surface(server: StudioServer) -> None:
    async with AsyncClient(server.url) as c:
        async with await c.create_container() as s:
            r = await s.execute_command("echo async")
            assert r.stdout == "async\n"
            t = await s.attach(replay=False)
            await t.send_input("echo async-$((5*5))\n")
            got = ""
            async for out in t:
                assert not out.replay
                got += out.data
                if "async-25" in got:
                    break
            seen: list[Any] = []
            async for item in s.stream_command(["sh", "-c", "echo x"]):
                seen.append(item)
            assert isinstance(seen[-1], CommandExit)
            await s.write_file("/workspace/a.txt", "a")
            assert (await s.read_text("/workspace/a.txt")) == "a"
            events = [e async for e in _take(s.events(), 1)]
            assert isinstance(events[0], Lifecycle) and events[0].state == "created"
            cmd = await s.start_command("sleep 0.2; echo bg")
            assert (await cmd.wait(timeout=10)).stdout == "bg\n"
            # Several output listeners, one of them a coroutine function.
            got_async = asyncio.Event()

            async def listener(o: Output) -> None:
                if "ping-ok" in o.data:
                    got_async.set()

            c.on_output(listener)
            await s.send_input("echo ping-$((0))ok | tr -d 0\n")
            await asyncio.wait_for(got_async.wait(), 10)


async def _take(ait: Any, n: int) -> Any:
    i = 0
    async for item in ait:
        yield item
        i += 1
        if i >= n:
            await ait.aclose()
            return


def test_sync_iterators_close_cleanly_and_the_thread_stops(server: StudioServer, sid: str) -> None:
    before = threading.active_count()
    c = Client(server.url)
    it = c.stream_command(sid, "for i in 1 2 3; do echo $i; sleep 0.1; done")
    assert isinstance(next(it), CommandStarted)
    it.close()
    assert list(it) == []
    c.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


async def test_console_messages_reach_on_console(server: StudioServer, sid: str) -> None:
    """A previewed page's console (what the injected script reports) comes
    to the attached client's on_console listeners, typed."""
    import httpx

    async with AsyncClient(server.url) as c:
        got: asyncio.Queue[ConsoleMessage] = asyncio.Queue()
        c.on_console(got.put_nowait, session_id=sid)
        await c.attach(sid, replay=False)
        report = {"level": "warn", "args": ["careful", 3], "url": "http://page/"}
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{server.url}/preview/{sid}/__studio/console", json=report)
            assert r.status_code < 300, r.text
        msg = await asyncio.wait_for(got.get(), 10)
        assert (msg.level, msg.args, msg.url, msg.session_id) == ("warn", ("careful", 3), "http://page/", sid)
        assert msg.seq is not None and msg.timestamp > 0
