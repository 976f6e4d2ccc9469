"""What the server answers, as typed values.

Every value keeps the JSON object it was made from in ``raw``, so a field a
newer server adds is never out of reach.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

__all__ = [
    "Health",
    "Images",
    "SessionInfo",
    "Preview",
    "CommandResult",
    "CommandInfo",
    "CommandStarted",
    "CommandOutput",
    "CommandExit",
    "FileEntry",
    "FileInfo",
    "WriteResult",
    "Event",
    "ConsoleMessage",
    "PortOpened",
    "PortClosed",
    "TerminalExit",
    "Lifecycle",
    "EventPage",
    "Output",
    "Attached",
    "FsEvent",
    "Watching",
    "CommandMessage",
    "parse_event",
    "parse_command_message",
]

Raw = Mapping[str, Any]


def _decode(data: Any, encoding: Any) -> bytes:
    if not isinstance(data, str):
        return b""
    if encoding == "base64":
        return base64.b64decode(data)
    return data.encode("utf-8")


@dataclass(frozen=True)
class Health:
    """``GET /api/health``."""

    status: str
    docker: str
    uptime: int
    sessions: Optional[int] = None
    auth_required: Optional[bool] = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_json(cls, d: Raw) -> "Health":
        return cls(
            status=d.get("status", ""),
            docker=d.get("docker", ""),
            uptime=int(d.get("uptime", 0)),
            sessions=d.get("sessions"),
            auth_required=d.get("authRequired"),
            raw=d,
        )


@dataclass(frozen=True)
class Images:
    """``GET /api/images``: the image a create without one gets, the
    patterns allowed (empty: any), the images present on the engine."""

    default_image: str
    allowed: tuple[str, ...]
    local: tuple[str, ...]
    fallback_image: Optional[str] = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Raw) -> "Images":
        return cls(
            default_image=d.get("defaultImage", ""),
            allowed=tuple(d.get("allowed") or ()),
            local=tuple(d.get("local") or ()),
            fallback_image=d.get("fallbackImage"),
            raw=d,
        )


@dataclass(frozen=True)
class SessionInfo:
    """A session as ``GET /api/containers[/:sessionId]`` describes it."""

    session_id: str
    container_id: str
    status: str
    image: Optional[str] = None
    created_at: Optional[int] = None
    preview_port: Optional[int] = None
    ports: tuple[int, ...] = ()
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.session_id

    @classmethod
    def from_json(cls, d: Raw) -> "SessionInfo":
        return cls(
            session_id=d["sessionId"],
            container_id=d.get("containerId", ""),
            status=d.get("status", ""),
            image=d.get("image"),
            created_at=d.get("createdAt"),
            preview_port=d.get("previewPort"),
            ports=tuple(int(p) for p in d.get("ports") or ()),
            raw=d,
        )


@dataclass(frozen=True)
class Preview:
    """``configure_preview``'s answer. ``preview_url`` is a path on the
    server (``/preview/SESSION``); ``host_preview_url`` the preview on an
    origin of its own, the one to open in a browser."""

    session_id: str
    preview_url: str
    target_url: str
    host_preview_url: Optional[str] = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Raw) -> "Preview":
        return cls(
            session_id=d.get("sessionId", ""),
            preview_url=d.get("previewUrl", ""),
            target_url=d.get("targetUrl", ""),
            host_preview_url=d.get("hostPreviewUrl"),
            raw=d,
        )


@dataclass(frozen=True)
class CommandResult:
    """A command's result (``POST …/exec``, ``GET …/exec/:execId``).

    ``exit_code`` is ``128 + N`` for a process ended by signal ``N``, with
    ``signal`` naming it; ``None`` while it runs. ``stdout``/``stderr`` are
    text; output that was not UTF-8 is in ``stdout_bytes``/``stderr_bytes``
    exactly (and in ``stdout`` decoded with replacement characters).
    """

    exec_id: str
    exit_code: Optional[int]
    signal: Optional[str]
    stdout: str
    stderr: str
    truncated: bool
    duration_ms: int
    timed_out: bool
    running: bool = False
    stdout_bytes: bytes = field(default=b"", repr=False)
    stderr_bytes: bytes = field(default=b"", repr=False)
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the command ended with exit code 0."""
        return self.exit_code == 0

    @classmethod
    def from_json(cls, d: Raw) -> "CommandResult":
        out = _decode(d.get("stdout", ""), d.get("stdoutEncoding"))
        err = _decode(d.get("stderr", ""), d.get("stderrEncoding"))
        return cls(
            exec_id=d.get("execId", ""),
            exit_code=d.get("exitCode"),
            signal=d.get("signal"),
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            truncated=bool(d.get("truncated", False)),
            duration_ms=int(d.get("durationMs") or 0),
            timed_out=bool(d.get("timedOut", False)),
            running=bool(d.get("running", False)),
            stdout_bytes=out,
            stderr_bytes=err,
            raw=d,
        )


@dataclass(frozen=True)
class CommandInfo:
    """A running command (``GET …/exec``)."""

    exec_id: str
    cmd: tuple[str, ...]
    started_at: Optional[int]
    running: bool
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Raw) -> "CommandInfo":
        cmd = d.get("cmd")
        return cls(
            exec_id=d.get("execId", ""),
            cmd=tuple(cmd) if isinstance(cmd, list) else (str(cmd),),
            started_at=d.get("startedAt"),
            running=bool(d.get("running", True)),
            raw=d,
        )


# --- events -----------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A session event (REST ``…/events``, or live on the WebSocket).

    ``seq`` increases; pass the last one seen as ``since`` to get only what
    came after. Known types have subclasses; others arrive as ``Event``."""

    type: str
    session_id: str
    seq: Optional[int]
    raw: Raw = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ConsoleMessage(Event):
    """A console call, uncaught error (``kind="uncaught"``) or unhandled
    rejection in a previewed page."""

    level: str = "log"
    args: tuple[Any, ...] = ()
    url: str = ""
    timestamp: int = 0
    kind: Optional[str] = None


@dataclass(frozen=True)
class PortOpened(Event):
    port: int = 0
    preview_url: str = ""


@dataclass(frozen=True)
class PortClosed(Event):
    port: int = 0


@dataclass(frozen=True)
class CommandExit(Event):
    """A command ended (``exec_exit``)."""

    exec_id: str = ""
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    duration_ms: int = 0
    timed_out: bool = False


@dataclass(frozen=True)
class TerminalExit(Event):
    """The terminal's shell ended (``exit``); the container keeps running,
    and the next input or attach starts a new shell."""

    code: Optional[int] = None
    signal: Optional[str] = None


@dataclass(frozen=True)
class Lifecycle(Event):
    """``created``, ``restored`` (after a server restart), ``restarted``,
    ``removed`` or ``expired``."""

    state: str = ""
    reason: str = ""


def parse_event(d: Raw) -> Event:
    """The typed event for a server message that is a session event."""
    t = d.get("type", "")
    base: dict[str, Any] = dict(
        type=t, session_id=d.get("sessionId", ""), seq=d.get("seq"), raw=d
    )
    if t == "console":
        return ConsoleMessage(
            **base,
            level=d.get("level", "log"),
            args=tuple(d.get("args") or ()),
            url=d.get("url", ""),
            timestamp=int(d.get("timestamp") or 0),
            kind=d.get("kind"),
        )
    if t == "port_opened":
        return PortOpened(**base, port=int(d.get("port", 0)), preview_url=d.get("previewUrl", ""))
    if t == "port_closed":
        return PortClosed(**base, port=int(d.get("port", 0)))
    if t == "exec_exit":
        return CommandExit(
            **base,
            exec_id=d.get("execId", ""),
            exit_code=d.get("code"),
            signal=d.get("signal"),
            duration_ms=int(d.get("durationMs") or 0),
            timed_out=bool(d.get("timedOut", False)),
        )
    if t == "exit":
        return TerminalExit(**base, code=d.get("code"), signal=d.get("signal"))
    if t == "lifecycle":
        return Lifecycle(**base, state=d.get("state", ""), reason=d.get("reason", ""))
    return Event(**base)


@dataclass(frozen=True)
class EventPage:
    """One read of the event log: the events after ``since``, the ``next``
    to ask for, and whether some were dropped before being read."""

    events: tuple[Event, ...]
    next: int
    missed: bool = False


# --- streamed commands ------------------------------------------------------


@dataclass(frozen=True)
class CommandStarted:
    exec_id: str
    session_id: str = ""


@dataclass(frozen=True)
class CommandOutput:
    """A piece of a command's output: ``stream`` is ``stdout`` or ``stderr``."""

    exec_id: str
    stream: str
    data: bytes
    session_id: str = ""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


CommandMessage = Union[CommandStarted, CommandOutput, CommandExit]


def parse_command_message(d: Raw) -> Optional[CommandMessage]:
    t = d.get("type")
    if t == "exec_started":
        return CommandStarted(exec_id=d.get("execId", ""), session_id=d.get("sessionId", ""))
    if t == "exec_output":
        return CommandOutput(
            exec_id=d.get("execId", ""),
            stream=d.get("stream", "stdout"),
            data=_decode(d.get("data", ""), d.get("encoding")),
            session_id=d.get("sessionId", ""),
        )
    if t == "exec_exit":
        ev = parse_event(d)
        assert isinstance(ev, CommandExit)
        return ev
    return None


# --- files ------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory listing (``name`` relative to it)."""

    name: str
    type: str
    size: int
    mode: str
    mtime: int
    target: Optional[str] = None

    @classmethod
    def from_json(cls, d: Raw) -> "FileEntry":
        return cls(
            name=d.get("name", ""),
            type=d.get("type", ""),
            size=int(d.get("size") or 0),
            mode=d.get("mode", ""),
            mtime=int(d.get("mtime") or 0),
            target=d.get("target"),
        )


@dataclass(frozen=True)
class FileInfo:
    """A path's stat; for a directory also its ``entries`` (``None`` for a
    file) and whether the listing was ``truncated``."""

    path: str
    name: str
    type: str
    size: int
    mode: str
    mtime: int
    target: Optional[str] = None
    entries: Optional[tuple[FileEntry, ...]] = None
    truncated: bool = False
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries or ()]

    @classmethod
    def from_json(cls, d: Raw) -> "FileInfo":
        entries = d.get("entries")
        return cls(
            path=d.get("path", ""),
            name=d.get("name", ""),
            type=d.get("type", ""),
            size=int(d.get("size") or 0),
            mode=d.get("mode", ""),
            mtime=int(d.get("mtime") or 0),
            target=d.get("target"),
            entries=None
            if entries is None
            else tuple(FileEntry.from_json(e) for e in entries),
            truncated=bool(d.get("truncated", False)),
            raw=d,
        )


@dataclass(frozen=True)
class WriteResult:
    path: str
    size: int
    created: bool


# --- the terminal -----------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """A piece of a session's terminal output. ``replay`` marks the recent
    output the server sends on attach (also after a reconnect)."""

    session_id: str
    data: str
    replay: bool = False

    def __str__(self) -> str:
        return self.data


@dataclass(frozen=True)
class Attached:
    session_id: str
    container_id: str
    status: str


@dataclass(frozen=True)
class FsEvent:
    """A change under a watched path: ``kind`` is ``created``, ``modified``,
    ``removed`` or ``renamed``. ``overflow`` means some changes were left
    out (also sent after a reconnect): read the directory again."""

    session_id: str
    path: str
    kind: str
    overflow: bool = False


@dataclass(frozen=True)
class Watching:
    session_id: str
    path: str
    directories: int
    truncated: bool
