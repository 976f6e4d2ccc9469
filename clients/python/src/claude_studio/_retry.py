"""When to try again, and after how long.

A ``429`` says how long to wait (``Retry-After``, else ``X-RateLimit-Reset``
minus now); other retryable failures back off exponentially with jitter.
Every wait fits inside the call's deadline: when it would not, the call
fails now with the error it got rather than sleep past its timeout.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RetryPolicy", "server_delay", "derive_urls"]


@dataclass(frozen=True)
class RetryPolicy:
    """``retries``: attempts after the first. ``backoff``: the first wait of
    the exponential backoff (doubling, capped at ``max_backoff``).
    ``max_wait``: the longest single wait a server may ask for; a longer one
    fails the call at once (with :class:`~claude_studio.errors.RateLimitError`
    and its ``retry_after``)."""

    retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 8.0
    max_wait: float = 60.0

    def backoff_delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0-based), with jitter."""
        base: float = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.75 + random.random() * 0.5)

    def delay(self, attempt: int, asked: Optional[float]) -> float:
        """What the server asked for, never less than the backoff would
        wait after the first retry (repeated refusals back off further)."""
        backoff = self.backoff_delay(attempt)
        if asked is None:
            return backoff
        return max(asked, backoff if attempt > 0 else 0.0)


def _number(headers: Mapping[str, str], name: str) -> Optional[float]:
    v = headers.get(name)
    if v is None:
        return None
    try:
        return float(v.strip())
    except ValueError:
        return None


def server_delay(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds a ``429`` asks the client to wait: ``Retry-After`` (seconds),
    else ``X-RateLimit-Reset`` (Unix seconds) minus now, at least 0.1 s."""
    retry_after = _number(headers, "retry-after")
    if retry_after is not None:
        return max(retry_after, 0.1)
    reset = _number(headers, "x-ratelimit-reset")
    if reset is not None:
        now = time.time() if now is None else now
        return max(reset - now, 0.1)
    return None


def derive_urls(url: str) -> tuple[str, str]:
    """The REST base (``http[s]://host[:port][/prefix]``) and the WebSocket
    URL (``ws[s]://host[:port][/prefix]/ws``) from either one."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    secure = scheme in ("https", "wss")
    if scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use http(s):// or ws(s)://")
    if not parts.netloc:
        raise ValueError(f"URL {url!r} names no host")
    path = parts.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    http = urlunsplit(("https" if secure else "http", parts.netloc, path, "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, path + "/ws", "", ""))
    return http, ws
