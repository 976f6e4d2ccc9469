"""The shared black-box scenarios (clients/scenarios.json), run with the
synchronous Client and with the AsyncClient, each against its own server."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any, Callable, Optional

import pytest

import claude_studio
from claude_studio import AsyncClient, Client, errors
from studio import REPO

SCENARIOS = json.loads((REPO / "clients" / "scenarios.json").read_text())["scenarios"]

# Wire names of a command's result → the typed attribute.
RESULT_FIELDS = {
    "exitCode": "exit_code",
    "signal": "signal",
    "stdout": "stdout",
    "stderr": "stderr",
    "truncated": "truncated",
    "timedOut": "timed_out",
    "durationMs": "duration_ms",
}


def substitute(value: Any, saved: dict[str, str]) -> Any:
    """``$name`` → what a step saved as ``name`` (other ``$`` left alone)."""
    if isinstance(value, str):
        return re.sub(r"\$([A-Za-z_]\w*)", lambda m: saved.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, saved) for k, v in value.items()}
    return value


def check_fields(expect: dict[str, Any], raw: Any, typed: Any = None, names: Optional[dict[str, str]] = None) -> None:
    for key, want in expect.items():
        assert raw.get(key) == want, f"{key}: expected {want!r}, got {raw.get(key)!r} in {raw}"
        if typed is not None and names and key in names:
            got = getattr(typed, names[key])
            assert got == want, f"{names[key]}: expected {want!r}, got {got!r}"


class Runner:
    """Runs one scenario's steps; ``call(client, method, *args, **kw)`` is
    how the client under test is called (sync or async)."""

    def __init__(self, scenario: dict[str, Any], make_client: Callable[[Optional[str]], Any], call: Callable[..., Any]):
        self.scenario = scenario
        self.tokens: dict[str, str] = scenario.get("tokens", {})
        self.make_client = make_client
        self.call = call
        self.clients: dict[Optional[str], Any] = {}
        self.saved: dict[str, str] = {}

    def client(self, step: dict[str, Any]) -> Any:
        name = step.get("as") or (next(iter(self.tokens)) if self.tokens else None)
        token = self.tokens[name] if name else None
        if token not in self.clients:
            self.clients[token] = self.make_client(token)
        return self.clients[token]

    def run(self) -> None:
        for i, raw_step in enumerate(self.scenario["steps"]):
            step = substitute(raw_step, self.saved)
            where = f"step {i} {raw_step}"
            expected_error = step.get("expect_error")
            try:
                self.step(step)
            except errors.ClaudeStudioError as e:
                if not expected_error:
                    raise AssertionError(f"{where} failed: {e!r}") from e
                name = expected_error["error"]
                assert e.error == name, f"{where}: expected {name}, got {e!r}"
                assert type(e) is errors.error_class(name), f"{where}: {type(e)} is not the class of {name}"
                assert isinstance(e, getattr(errors, name)), where
                if "retryable" in expected_error:
                    assert e.retryable == expected_error["retryable"], f"{where}: {e!r}"
                continue
            assert not expected_error, f"{where}: expected {expected_error}, but it succeeded"

    def step(self, step: dict[str, Any]) -> None:
        c = self.client(step)
        do = step["do"]
        call = self.call
        sid = step.get("session")
        retries = {"retries": step["retries"]} if "retries" in step else {}
        if do == "health":
            h = call(c, "health")
            check_fields(step.get("expect", {}), h.raw)
        elif do == "create":
            s = call(c, "create_container", **retries)
            assert s.id.startswith("session-")
            if "save" in step:
                self.saved[step["save"]] = s.id
        elif do == "get":
            info = call(c, "get_container", sid)
            assert info.session_id == sid
            check_fields(step.get("expect", {}), info.raw)
        elif do == "list":
            ids = [s.session_id for s in call(c, "list_containers")]
            if "expect_contains" in step:
                assert step["expect_contains"] in ids, ids
        elif do == "type":
            call(c, "send_input", sid, step["data"])
        elif do == "read_output":
            text = call(c, "read_output", sid, step["until"], timeout=20)
            assert step["until"] in text
        elif do == "exec":
            kw = {"timeout": step["timeout"]} if "timeout" in step else {}
            r = call(c, "execute_command", sid, step["cmd"], **kw, **retries)
            check_fields(step.get("expect", {}), r.raw, r, RESULT_FIELDS)
        elif do == "write_file":
            if "content_base64" in step:
                data: bytes | str = base64.b64decode(step["content_base64"])
            else:
                data = step["content"]
            # As the TypeScript runner does: the scenario writes into a new directory.
            w = call(c, "write_file", sid, step["path"], data, parents=True)
            assert w.size == len(data.encode() if isinstance(data, str) else data)
        elif do == "read_file":
            got = call(c, "read_file", sid, step["path"])
            if "expect_content" in step:
                assert got.decode("utf-8") == step["expect_content"]
            if "expect_content_base64" in step:
                assert got == base64.b64decode(step["expect_content_base64"])
        elif do == "list_files":
            names = sorted(e.name for e in call(c, "list_files", sid, step["path"]))
            assert names == sorted(step["expect_names"])
        elif do == "configure_preview":
            p = call(c, "configure_preview", sid, step["port"])
            if "expect_url_contains" in step:
                assert step["expect_url_contains"] in p.preview_url, p
        elif do == "remove":
            call(c, "remove_container", sid, **retries)
        else:
            raise AssertionError(f"unknown step {do!r}: teach this runner the new step")


def ids(s: dict[str, Any]) -> str:
    return s["name"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=ids)
def test_scenario_sync(scenario: dict[str, Any], start_server: Any) -> None:
    server = start_server(scenario.get("server", []))
    made: list[Client] = []

    def make(token: Optional[str]) -> Client:
        c = Client(server.url, token=token, request_timeout=30)
        made.append(c)
        return c

    try:
        Runner(scenario, make, lambda c, m, *a, **kw: getattr(c, m)(*a, **kw)).run()
    finally:
        for c in made:
            c.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=ids)
def test_scenario_async(scenario: dict[str, Any], start_server: Any) -> None:
    # The ws:// form of the address, to run the URL derivation both ways.
    server = start_server(scenario.get("server", []))
    with asyncio.Runner() as loop:
        made: list[AsyncClient] = []

        def make(token: Optional[str]) -> AsyncClient:
            async def new() -> AsyncClient:
                return AsyncClient(server.url.replace("http://", "ws://"), token=token, request_timeout=30)

            c = loop.run(new())
            made.append(c)
            return c

        def call(c: AsyncClient, method: str, *a: Any, **kw: Any) -> Any:
            return loop.run(getattr(c, method)(*a, **kw))

        try:
            Runner(scenario, make, call).run()
        finally:
            for c in made:
                loop.run(c.close())


def test_every_documented_error_name_has_a_class() -> None:
    for name in (
        "ValidationError",
        "AuthenticationError",
        "ContainerNotFoundError",
        "FileNotFoundError",
        "CommandNotFoundError",
        "MessageTooLarge",
        "RateLimitError",
        "ContainerCreationError",
        "DockerDaemonError",
        "ServiceUnavailableError",
        "PreviewUnavailableError",
    ):
        cls = getattr(errors, name)
        assert cls.default_name == name
        assert issubclass(cls, claude_studio.ClaudeStudioError)
