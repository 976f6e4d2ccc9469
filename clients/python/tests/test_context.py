"""Context managers remove the session at the end, even on an error."""

from __future__ import annotations

import pytest

from claude_studio import AsyncClient, Client, errors
from studio import StudioServer


def test_with_session_removes_it(server: StudioServer) -> None:
    with Client(server.url) as c:
        with c.create_container() as s:
            assert c.get_container(s.id).status == "running"
        with pytest.raises(errors.ContainerNotFoundError):
            c.get_container(s.id)

        with pytest.raises(RuntimeError, match="boom"):
            with c.create_container() as s2:
                c.execute_command(s2.id, "true")
                raise RuntimeError("boom")
        with pytest.raises(errors.ContainerNotFoundError):
            c.get_container(s2.id)

        # Removed already inside the block: leaving it is no error.
        with c.create_container() as s3:
            s3.remove()
    # The client is closed after its own block.
    with pytest.raises(RuntimeError):
        c.health()


async def test_async_with_session_removes_it(server: StudioServer) -> None:
    async with AsyncClient(server.url) as c:
        async with await c.create_container() as s:
            await s.send_input("echo in-$((2*2))\n")
            await s.read_output("in-4", timeout=15)
            sid = s.id
        with pytest.raises(errors.ContainerNotFoundError):
            await c.get_container(sid)
        assert sid not in [x.id for x in await c.list_containers()]
