"""Typed errors: each documented name is its own class, with ``retryable``,
``status_code`` and ``error``; from REST and from the WebSocket."""

from __future__ import annotations

import builtins
from typing import Callable, Iterator

import pytest

import claude_studio
from claude_studio import AsyncClient, Client, errors
from studio import StudioServer

StartServer = Callable[..., StudioServer]

DOCUMENTED = {
    "ValidationError": (400, False),
    "AuthenticationError": (401, False),
    "ContainerNotFoundError": (404, False),
    "FileNotFoundError": (404, False),
    "CommandNotFoundError": (404, False),
    "MessageTooLarge": (413, False),
    "RateLimitError": (429, True),
    "ContainerCreationError": (500, False),
    "DockerDaemonError": (503, True),
    "ServiceUnavailableError": (503, True),
    "PreviewUnavailableError": (502, True),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_error_name_maps_to_its_class(name: str) -> None:
    status, retryable = DOCUMENTED[name]
    body = {"error": name, "message": f"a {name}", "retryable": retryable, "statusCode": status}
    e = errors.from_body(body)
    assert type(e) is getattr(errors, name)
    assert isinstance(e, claude_studio.ClaudeStudioError)
    assert (e.error, e.status_code, e.retryable, e.message) == (name, status, retryable, f"a {name}")
    assert name in str(e) and str(status) in str(e)
    # Without statusCode (a WebSocket error) the class is the same.
    ws = errors.from_body({"type": "error", "error": name, "message": "m", "retryable": retryable, "sessionId": "s"})
    assert type(ws) is type(e) and ws.status_code is None and ws.session_id == "s"


def test_unknown_names_fall_back_to_the_status_or_the_base() -> None:
    assert type(errors.from_body({"error": "NewError", "message": "x"}, status_code=404)) is errors.ContainerNotFoundError
    e = errors.from_body({"error": "NewError", "message": "x"})
    assert type(e) is errors.ClaudeStudioError and e.error == "NewError" and not e.retryable


def test_the_file_error_is_also_the_builtin() -> None:
    assert errors.FileNotFoundError is errors.SessionFileNotFoundError is claude_studio.SessionFileNotFoundError
    assert issubclass(errors.FileNotFoundError, builtins.FileNotFoundError)
    assert builtins.FileNotFoundError is FileNotFoundError  # the package does not shadow it
    assert issubclass(errors.ClientTimeoutError, TimeoutError)
    assert issubclass(errors.ConnectionFailedError, ConnectionError)


@pytest.fixture(scope="module")
def server() -> Iterator[StudioServer]:
    s = StudioServer(["--max-file-size", "1k", "--rate-limit-general", "off"])
    s.start()
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="module")
def client(server: StudioServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture(scope="module")
def sid(client: Client) -> Iterator[str]:
    s = client.create_container()
    yield s.id
    s.remove(missing_ok=True)


def test_rest_errors_from_a_real_server(client: Client, sid: str) -> None:
    with pytest.raises(errors.ContainerNotFoundError) as nf:
        client.get_container("session-doesnotexist")
    assert nf.value.status_code == 404 and not nf.value.retryable and "session-doesnotexist" in nf.value.message
    with pytest.raises(errors.SessionFileNotFoundError) as fnf:
        client.read_file(sid, "/workspace/missing.txt")
    assert fnf.value.status_code == 404 and fnf.value.error == "FileNotFoundError"
    with pytest.raises(FileNotFoundError):  # the builtin catches it too
        client.read_text(sid, "/workspace/missing.txt")
    with pytest.raises(errors.CommandNotFoundError):
        client.kill_command(sid, "no-such-command")
    with pytest.raises(errors.ValidationError) as v:
        client.configure_preview(sid, 70000)
    assert v.value.status_code == 400 and "port" in v.value.message
    with pytest.raises(errors.ValidationError):
        client.execute_command(sid, "true", cwd="relative/path")
    with pytest.raises(errors.ValidationError):
        client.resize(sid, 0, 10)
    # (A body the server refuses before reading it must fit in the socket's
    # buffers for the 413 to arrive: see the server's --max-file-size below.)
    with pytest.raises(errors.MessageTooLarge) as big:
        client.write_file(sid, "/workspace/big.bin", b"x" * 4096)
    assert big.value.status_code == 413
    with pytest.raises(errors.ContainerCreationError) as cc:
        client.create_container(image="studio-no-such-image-for-tests:never", retries=0)
    assert cc.value.status_code == 500 and "studio-no-such-image-for-tests" in cc.value.message


async def test_websocket_errors_are_typed(server: StudioServer, sid: str) -> None:
    async with AsyncClient(server.url) as c:
        with pytest.raises(errors.ContainerNotFoundError) as e:
            await c.attach("session-doesnotexist")
        assert e.value.status_code is None and e.value.session_id == "session-doesnotexist"
        with pytest.raises(errors.FileNotFoundError) as w:
            await c.watch(sid, "/workspace/nothing-here")
        assert w.value.path == "/workspace/nothing-here"
        # A bad message gets an error and the connection stays usable.
        seen: list[errors.ClaudeStudioError] = []
        c.on_error(seen.append)
        await c._conn.send({"type": "no_such_message"})
        t = await c.attach(sid)
        assert t.session_id == sid
        assert seen and isinstance(seen[0], errors.ValidationError)
        # A message over 1 MiB is refused with MessageTooLarge, on a
        # connection that stays open.
        seen.clear()
        await c.send_input(sid, "x" * (1024 * 1024 + 100))
        await c.send_input(sid, "echo after-big-$((7*6))\n")
        await c.read_output(sid, "after-big-42", timeout=15)
        assert [type(e) for e in seen] == [errors.MessageTooLarge]


async def test_authentication_errors(start_server: StartServer) -> None:
    srv = start_server(["--api-token", "py-test-token-123456", "--rate-limit-auth", "off"])
    async with AsyncClient(srv.url, token="py-test-token-wrong") as bad:
        with pytest.raises(errors.AuthenticationError) as e:
            await bad.list_containers()
        assert e.value.status_code == 401 and not e.value.retryable
        with pytest.raises(errors.AuthenticationError):
            await bad.attach("session-x")  # the WebSocket upgrade is refused
        assert (await bad.health()).ok  # health needs no token
    async with AsyncClient(srv.url, token="py-test-token-123456") as good:
        assert await good.list_containers() == []
        with pytest.raises(errors.ContainerNotFoundError):
            await good.attach("session-x")  # past the upgrade: the token was taken
