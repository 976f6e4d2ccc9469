"""Typed errors: one class per error name the server documents.

Every error the server sends, over REST or the WebSocket, has the shape
``{"error", "message", "retryable", "statusCode"?}``. :func:`from_body` turns
it into the class named by ``error``, so callers catch what they mean::

    try:
        client.read_file(session_id, "/workspace/missing.txt")
    except claude_studio.errors.FileNotFoundError:
        ...

``FileNotFoundError`` here shadows the builtin of the same name inside this
module only. It is also exported as :class:`SessionFileNotFoundError` (the
name ``claude_studio`` itself exports), and it subclasses the builtin
``FileNotFoundError`` too, so ``except FileNotFoundError`` (the builtin)
catches it as well. Likewise :class:`ClientTimeoutError` is a builtin
``TimeoutError`` and :class:`ConnectionFailedError` a builtin
``ConnectionError``.
"""

from __future__ import annotations

import builtins
from typing import Any, Mapping

__all__ = [
    "ClaudeStudioError",
    "ValidationError",
    "AuthenticationError",
    "ContainerNotFoundError",
    "FileNotFoundError",
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
    "from_body",
]


class ClaudeStudioError(Exception):
    """Base of every error this library raises.

    Attributes:
        error: the server's error name (``"ValidationError"``…), or a name
            of this library's own for errors met on the client side
            (``"ClientTimeout"``, ``"ConnectionFailed"``).
        message: what went wrong, in the server's words.
        retryable: whether trying the same call again later may succeed.
        status_code: the HTTP status (``None`` for WebSocket errors and
            client-side errors).
        session_id, exec_id, path: what a WebSocket error was about, when it
            says.
        body: the error object as received.
    """

    #: The error name this class stands for (``error`` of the server's body).
    default_name: str = "ClaudeStudioError"
    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        retryable: bool | None = None,
        status_code: int | None = None,
        session_id: str | None = None,
        exec_id: str | None = None,
        path: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or self.default_name
        self.retryable = self.default_retryable if retryable is None else retryable
        self.status_code = status_code
        self.session_id = session_id
        self.exec_id = exec_id
        self.path = path
        self.body: Mapping[str, Any] = body or {}

    def __str__(self) -> str:
        where = f" [{self.status_code}]" if self.status_code else ""
        return f"{self.error}{where}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(error={self.error!r}, message={self.message!r}, "
            f"retryable={self.retryable!r}, status_code={self.status_code!r})"
        )


class ValidationError(ClaudeStudioError):
    """400 (and 403, 405, 409, 416): the request was refused as it is."""

    default_name = "ValidationError"


class AuthenticationError(ClaudeStudioError):
    """401: a missing or wrong API token."""

    default_name = "AuthenticationError"


class ContainerNotFoundError(ClaudeStudioError):
    """404: no such session (or another token's session), or no such route."""

    default_name = "ContainerNotFoundError"


class FileNotFoundError(ClaudeStudioError, builtins.FileNotFoundError):
    """404: no such file in the session. Also a builtin ``FileNotFoundError``."""

    default_name = "FileNotFoundError"


#: The same class under a name that does not shadow the builtin.
SessionFileNotFoundError = FileNotFoundError


class CommandNotFoundError(ClaudeStudioError):
    """404: no such command (``execId``) in the session."""

    default_name = "CommandNotFoundError"


class MessageTooLarge(ClaudeStudioError):
    """413: a body or WebSocket message over its limit."""

    default_name = "MessageTooLarge"


class RateLimitError(ClaudeStudioError):
    """429: a rate limit or a cap. Retryable after :attr:`retry_after` seconds.

    Attributes:
        retry_after: seconds to wait, from ``Retry-After`` or else
            ``X-RateLimit-Reset`` (``None`` when neither was sent).
        limit, remaining, reset: the ``X-RateLimit-*`` headers (``reset`` in
            Unix seconds), when sent.
    """

    default_name = "RateLimitError"
    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        limit: int | None = None,
        remaining: int | None = None,
        reset: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining
        self.reset = reset


class ContainerCreationError(ClaudeStudioError):
    """500: the container could not be made (image missing, pull failed)."""

    default_name = "ContainerCreationError"


class DockerDaemonError(ClaudeStudioError):
    """503: the Docker engine does not answer. Retryable."""

    default_name = "DockerDaemonError"
    default_retryable = True


class ServiceUnavailableError(ClaudeStudioError):
    """503: a service the server needs, other than the engine. Retryable."""

    default_name = "ServiceUnavailableError"
    default_retryable = True


class PreviewUnavailableError(ClaudeStudioError):
    """502/504: nothing answers on the preview's port, or too slowly."""

    default_name = "PreviewUnavailableError"
    default_retryable = True


class ClientTimeoutError(ClaudeStudioError, builtins.TimeoutError):
    """A call did not finish within its ``request_timeout`` (client side).

    Also a builtin ``TimeoutError`` (and so ``asyncio.TimeoutError``)."""

    default_name = "ClientTimeout"
    default_retryable = True


class ConnectionFailedError(ClaudeStudioError, builtins.ConnectionError):
    """The server could not be reached, or the connection broke and could
    not be made again in time. Also a builtin ``ConnectionError``."""

    default_name = "ConnectionFailed"
    default_retryable = True


_BY_NAME: dict[str, type[ClaudeStudioError]] = {
    cls.default_name: cls
    for cls in (
        ValidationError,
        AuthenticationError,
        ContainerNotFoundError,
        FileNotFoundError,
        CommandNotFoundError,
        MessageTooLarge,
        RateLimitError,
        ContainerCreationError,
        DockerDaemonError,
        ServiceUnavailableError,
        PreviewUnavailableError,
    )
}

# When a body names no error (a proxy's page, say), the status decides.
_BY_STATUS: dict[int, type[ClaudeStudioError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: ValidationError,
    404: ContainerNotFoundError,
    405: ValidationError,
    409: ValidationError,
    413: MessageTooLarge,
    416: ValidationError,
    429: RateLimitError,
    500: ContainerCreationError,
    502: PreviewUnavailableError,
    503: ServiceUnavailableError,
    504: PreviewUnavailableError,
}


def error_class(name: str | None, status_code: int | None = None) -> type[ClaudeStudioError]:
    """The class for an error name (or, for an unknown name, the status)."""
    if name and name in _BY_NAME:
        return _BY_NAME[name]
    if status_code is not None and status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    return ClaudeStudioError


def from_body(
    body: Mapping[str, Any] | None,
    *,
    status_code: int | None = None,
    **extra: Any,
) -> ClaudeStudioError:
    """The typed error for a server error object (REST body or WebSocket
    ``error`` message). ``extra`` goes to the constructor (``retry_after``…)."""
    body = body or {}
    name = body.get("error") if isinstance(body.get("error"), str) else None
    status = status_code
    if status is None and isinstance(body.get("statusCode"), int):
        status = body["statusCode"]
    cls = error_class(name, status)
    message = body.get("message")
    if not isinstance(message, str):
        message = f"HTTP {status}" if status else "unknown error"
    retryable = body.get("retryable")
    kwargs: dict[str, Any] = dict(
        error=name or cls.default_name,
        retryable=retryable if isinstance(retryable, bool) else None,
        status_code=status,
        session_id=body.get("sessionId"),
        exec_id=body.get("execId"),
        path=body.get("path"),
        body=body,
    )
    if cls is not RateLimitError:
        extra = {}
    return cls(message, **kwargs, **extra)
