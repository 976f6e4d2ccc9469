from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from studio import StudioServer, remove_containers  # noqa: E402

StartServer = Callable[..., StudioServer]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Starts servers for one test; all are stopped and their containers
    removed afterwards, whatever happened."""
    servers: list[StudioServer] = []
    instances: set[str] = set()

    def start(args: Sequence[str] = (), **kw: object) -> StudioServer:
        s = StudioServer(args, **kw)  # type: ignore[arg-type]
        servers.append(s)
        instances.add(s.instance)
        return s.start()

    yield start
    for s in servers:
        s.stop()
    for i in instances:
        remove_containers(i)
    for s in servers:
        s.cleanup()


@pytest.fixture(scope="module")
def server() -> Iterator[StudioServer]:
    """One server shared by a module's tests (default settings)."""
    s = StudioServer(["--rate-limit-general", "off", "--rate-limit-container", "off", "--rate-limit-ws", "off"])
    s.start()
    try:
        yield s
    finally:
        s.cleanup()
