"""Python client for Claude Studio: isolated Docker workspaces with a
terminal, commands, files, ports, events and a live preview.

    from claude_studio import Client

    with Client("http://localhost:3333") as client:
        with client.create_container() as session:
            result = client.execute_command(session.id, "echo hello")
            print(result.exit_code, result.stdout)

:class:`Client` is synchronous, :class:`AsyncClient` the same with
``async``. Errors are the classes of :mod:`claude_studio.errors`.
"""

from . import errors, models
from ._async_client import AsyncClient, AsyncSession
from ._client import Client, CommandHandle, Session, Terminal, Watch
from ._commands import AsyncCommand
from ._files import AsyncWatch
from ._terminal import AsyncTerminal
from ._version import __version__
from .errors import (
    AuthenticationError,
    ClaudeStudioError,
    ClientTimeoutError,
    CommandNotFoundError,
    ConnectionFailedError,
    ContainerCreationError,
    ContainerNotFoundError,
    DockerDaemonError,
    MessageTooLarge,
    PreviewUnavailableError,
    RateLimitError,
    ServiceUnavailableError,
    SessionFileNotFoundError,
    ValidationError,
)
from .models import (
    Attached,
    CommandExit,
    CommandInfo,
    CommandOutput,
    CommandResult,
    CommandStarted,
    ConsoleMessage,
    Event,
    EventPage,
    FileEntry,
    FileInfo,
    FsEvent,
    Health,
    Images,
    Lifecycle,
    Output,
    PortClosed,
    PortOpened,
    Preview,
    SessionInfo,
    TerminalExit,
    Watching,
    WriteResult,
)

__all__ = [
    "__version__",
    "errors",
    "models",
    "Client",
    "AsyncClient",
    "Session",
    "AsyncSession",
    "Terminal",
    "AsyncTerminal",
    "Watch",
    "AsyncWatch",
    "CommandHandle",
    "AsyncCommand",
    # errors (FileNotFoundError as SessionFileNotFoundError: see errors)
    "ClaudeStudioError",
    "ValidationError",
    "AuthenticationError",
    "ContainerNotFoundError",
    "SessionFileNotFoundError",
    "CommandNotFoundError",
    "MessageTooLarge",
    "RateLimitError",
    "ContainerCreationError",
    "DockerDaemonError",
    "ServiceUnavailableError",
    "PreviewUnavailableError",
    "ClientTimeoutError",
    "ConnectionFailedError",
    # values
    "Attached",
    "CommandExit",
    "CommandInfo",
    "CommandOutput",
    "CommandResult",
    "CommandStarted",
    "ConsoleMessage",
    "Event",
    "EventPage",
    "FileEntry",
    "FileInfo",
    "FsEvent",
    "Health",
    "Images",
    "Lifecycle",
    "Output",
    "PortClosed",
    "PortOpened",
    "Preview",
    "SessionInfo",
    "TerminalExit",
    "Watching",
    "WriteResult",
]
