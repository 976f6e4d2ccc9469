"""The REST side: one ``httpx.AsyncClient``, typed errors, retries within a
deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from typing import Any, AsyncIterator, Mapping, Optional, Union

import httpx

from . import errors
from ._retry import RetryPolicy, server_delay
from ._version import __version__

__all__ = ["Http", "DEFAULT", "Timeout"]


class _Default:
    """Marks an argument left out (``None`` means "no timeout")."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
#: Seconds, ``None`` for no limit, or ``DEFAULT`` for the client's setting.
Timeout = Union[float, None, _Default]

_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


def error_from_response(resp: httpx.Response, body: Optional[bytes] = None) -> errors.ClaudeStudioError:
    data: Any = None
    raw = resp.content if body is None else body
    try:
        data = jsonlib.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = raw.decode("utf-8", "replace")[:200] if raw else ""
        data = {"message": text or f"HTTP {resp.status_code} {resp.reason_phrase}"}
    extra: dict[str, Any] = {}
    if resp.status_code == 429:
        h = resp.headers

        def num(name: str) -> Optional[int]:
            try:
                return int(h[name]) if name in h else None
            except ValueError:
                return None

        extra = dict(
            retry_after=server_delay(h),
            limit=num("x-ratelimit-limit"),
            remaining=num("x-ratelimit-remaining"),
            reset=num("x-ratelimit-reset"),
        )
    return errors.from_body(data, status_code=resp.status_code, **extra)


class Http:
    def __init__(
        self,
        base_url: str,
        *,
        token: Optional[str],
        request_timeout: Optional[float],
        policy: RetryPolicy,
        client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.base_url = base_url
        self.request_timeout = request_timeout
        self.policy = policy
        headers = {"User-Agent": f"claude-studio-python/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._own = client is None
        # Deadlines are the asyncio timeouts around each call; httpx's own
        # are only a backstop for connecting.
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=30.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._headers = headers

    async def aclose(self) -> None:
        if self._own:
            await self._client.aclose()

    def timeout_of(self, request_timeout: Timeout) -> Optional[float]:
        if isinstance(request_timeout, _Default):
            return self.request_timeout
        return request_timeout

    def retries_of(self, retries: Optional[int]) -> int:
        return self.policy.retries if retries is None else retries

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        content: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        request_timeout: Timeout = DEFAULT,
        retries: Optional[int] = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Sends the request, retrying what may be retried; answers the
        response (2xx/3xx), or raises the typed error. With ``stream`` the
        body is not read: the caller reads and closes it."""
        timeout = self.timeout_of(request_timeout)
        try:
            async with asyncio.timeout(timeout):
                return await self._attempts(
                    method, path, params, json, content, headers, self.retries_of(retries), stream, timeout
                )
        except TimeoutError as e:
            if isinstance(e, errors.ClaudeStudioError):
                raise
            raise errors.ClientTimeoutError(
                f"{method} {path} did not finish within {timeout} s"
            ) from None

    async def _attempts(
        self,
        method: str,
        path: str,
        params: Optional[Mapping[str, Any]],
        json: Any,
        content: Optional[bytes],
        headers: Optional[Mapping[str, str]],
        retries: int,
        stream: bool,
        timeout: Optional[float],
    ) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        all_headers = dict(self._headers)
        if headers:
            all_headers.update(headers)
        if json is not None:
            content = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = "application/json"
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            asked: Optional[float] = None
            try:
                req = self._client.build_request(
                    method, self.base_url + path, params=query, content=content, headers=all_headers
                )
                resp = await self._client.send(req, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                # Nothing was sent: safe to try again whatever the method.
                err: errors.ClaudeStudioError = errors.ConnectionFailedError(
                    f"cannot reach {self.base_url}: {e}"
                )
            except (httpx.TransportError,) as e:
                err = errors.ConnectionFailedError(f"{method} {path} failed: {e!r}")
                if method not in _IDEMPOTENT:
                    raise err from e
            else:
                if resp.status_code < 400:
                    if not stream:
                        try:
                            await resp.aread()
                        finally:
                            await resp.aclose()
                    return resp
                try:
                    body = await resp.aread()
                finally:
                    await resp.aclose()
                err = error_from_response(resp, body)
                if not err.retryable:
                    raise err
                if isinstance(err, errors.RateLimitError):
                    asked = err.retry_after
            if attempt >= retries:
                raise err
            if asked is not None and asked > self.policy.max_wait:
                raise err
            delay = self.policy.delay(attempt, asked)
            if deadline is not None and loop.time() + delay > deadline:
                raise err
            await asyncio.sleep(delay)
            attempt += 1

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.request(method, path, **kw)
        if not resp.content:
            return None
        return resp.json()

    @contextlib.asynccontextmanager
    async def stream(self, method: str, path: str, **kw: Any) -> AsyncIterator[httpx.Response]:
        resp = await self.request(method, path, stream=True, **kw)
        try:
            yield resp
        finally:
            await resp.aclose()


def _query_value(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v
