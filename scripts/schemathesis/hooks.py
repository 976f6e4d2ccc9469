"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

They keep the generated requests meaningful without changing what is checked:

- `application/x-tar` bodies: a positive case's bytes go inside a real tar
  archive (one regular file); a negative case's bytes are sent as they are.
- Real ids. A positive case (every part valid) that names a session by a
  well-formed but random id would only ever meet a 404, so the session id is
  replaced by the run's own session (STUDIO_ST_SESSION); `removeSession`
  gets a throwaway session made for it, `getCommand` a command that ran,
  `killCommand` a running `sleep`, `sendCommandInput` a running `cat`.
  An id schemathesis saw answered (a link of the stateful phase, or one it
  drew from earlier answers) is kept, unless the hooks removed that session
  since. The run's own session is never removed. A malformed id (a
  negative case) is sent as generated.
- What OpenAPI 3.0 cannot say. In positive cases only: the image is the one
  the server allows (--allowed-image), a `workspaceDir` is the one directory
  under the run's workspace root, environment variable names are made valid
  (the schema cannot constrain property names), a command gets a timeout of
  at most 5 s and an empty stdin when it names none (so it cannot wait for
  input or run on), and an events `wait` is at most 1 s.
  Likewise a command's program (`cmd[0]`) must not be empty, which a schema
  of OpenAPI 3.0 cannot say of one position of an array: a positive case's
  empty program becomes `true`.
- Files that exist. A positive `readFile` writes the file it names first
  (so that ranges meet real content; one naming a place, a directory,
  reads the run's file instead), and a positive `moveFile` writes its
  `from` and makes the directory of its `to`; what these requests answer
  is not looked at.
- One check is told what a resource is here: `use_after_free` takes the
  URL's path for the resource, while the files operations name a file by
  their `path` query parameter. After `DELETE .../files?path=A` the
  failure is kept only for a read of A (or below it) that nothing made
  again since; reads of other files are no use after a free
  (`filter_failure`).
- Housekeeping: sessions the tests create are removed again once more than
  four of them are alive, oldest first (the server caps sessions per owner).
- The streamed command (`application/x-ndjson`): every other positive
  `startCommand` asks for it with `Accept`; a deserializer hands the
  schema check the first line, and the check `ndjson_lines_conform` holds
  every line to the document's line schema (`ExecStreamLine`).
- A tally: every response schemathesis gets is written as one JSON line to
  STUDIO_ST_TALLY (operation, method, status, error name), which
  summary.py counts. The report's own NDJSON would record every request
  body whole, and the coverage phase sends bodies of hundreds of MB.

Nothing here makes the server reach outside: images other than the local
test image are refused by --allowed-image, sessions run with --egress deny,
and every request goes to the loopback address of the server under test.
"""

from __future__ import annotations

import collections
import hashlib
import io
import itertools
import json
import os
import re
import tarfile
import threading

import requests
import schemathesis
from schemathesis.generation import GenerationMode

BASE = os.environ["STUDIO_ST_BASE_URL"].rstrip("/")
TOKEN = os.environ["STUDIO_ST_TOKEN"]
SESSION = os.environ["STUDIO_ST_SESSION"]
IMAGE = os.environ["STUDIO_ST_IMAGE"]
WORKSPACE_DIR = os.environ["STUDIO_ST_WORKSPACE_DIR"]
DONE_EXEC = os.environ["STUDIO_ST_DONE_EXEC"]

SESSION_ID = re.compile(r"^session-[A-Za-z0-9_-]{22,64}$")
EXEC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEEP_CREATED = 4
MAX_COMMAND_TIMEOUT = 5.0
MAX_EVENTS_WAIT = 1.0

TALLY = os.environ.get("STUDIO_ST_TALLY")
DOCUMENT = os.environ.get("STUDIO_ST_DOCUMENT")

_http = requests.Session()
_http.headers["Authorization"] = f"Bearer {TOKEN}"
_lock = threading.Lock()
_created: collections.deque[str] = collections.deque()
_ids = itertools.count(1)
_streamed = itertools.count()
_input_exec: str | None = None
# Ids the server answered (sessions made, commands started) during the run.
_known_sessions: set[str] = set()
_known_execs: set[str] = set()


def _op(case) -> str:
    return case.operation.definition.raw.get("operationId", "")


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


def _api(method: str, path: str, **kwargs) -> requests.Response:
    return _http.request(method, BASE + path, timeout=60, **kwargs)


def _start(cmd: list[str], timeout: float, stdin: str | None = None) -> str:
    """Starts a command in the run's session and returns its id once it runs."""
    exec_id = f"st-{os.getpid()}-{next(_ids)}"
    body = {"cmd": cmd, "execId": exec_id, "timeout": timeout}
    if stdin is not None:
        body["stdin"] = stdin
    with _api(
        "POST",
        f"/api/containers/{SESSION}/exec",
        json=body,
        headers={"Accept": "application/x-ndjson"},
        stream=True,
    ) as r:
        r.raise_for_status()
        # The first line is `exec_started`; the command goes on when we hang up.
        next(r.iter_lines())
    return exec_id


def _running(exec_id: str) -> bool:
    r = _api("GET", f"/api/containers/{SESSION}/exec/{exec_id}")
    return r.status_code == 200 and r.json().get("running") is True


def _throwaway_session() -> str:
    r = _api("POST", "/api/containers", json={})
    r.raise_for_status()
    session_id = r.json()["sessionId"]
    # Tracked like the tests' own, in case the case does not remove it.
    _track(session_id)
    return session_id


def _track(session_id: str) -> None:
    """Remembers a session the run made; removes the oldest beyond KEEP_CREATED."""
    doomed = []
    with _lock:
        if session_id not in _created:
            _created.append(session_id)
        while len(_created) > KEEP_CREATED:
            doomed.append(_created.popleft())
    for old in doomed:
        _api("DELETE", f"/api/containers/{old}")
        # Schemathesis draws ids it saw answered into later cases; one the
        # hooks removed names nothing any more, and is replaced like a
        # random one. (A session a case removed stays known: reads of it
        # must then be 404s, which `use_after_free` checks.)
        _known_sessions.discard(old)


def _forget_created(session_id: str) -> None:
    with _lock:
        try:
            _created.remove(session_id)
        except ValueError:
            pass


PLACES = ("/workspace", "/home/studio", "/tmp")


def _normal(path: str) -> str:
    """A session path without empty and `.` segments (as the server reads it)."""
    return "/" + "/".join(p for p in path.split("/") if p not in ("", "."))


def _parent(path: str) -> str:
    return _normal(path).rsplit("/", 1)[0] or "/"


def _make_directory(path: str) -> None:
    """Makes a directory (with parents) at `path`; whatever it answers."""
    try:
        with _api("POST", f"/api/containers/{SESSION}/files/mkdir", params={"path": path, "parents": "true"}) as r:
            if r.ok:
                _made(SESSION, path)
    except requests.RequestException:
        pass


def _path_exists_as_file(path: str) -> None:
    """Writes a small file at `path` (with parents); whatever it answers."""
    try:
        with _api(
            "PUT",
            f"/api/containers/{SESSION}/files/content",
            params={"path": path, "parents": "true"},
            data=b"0123456789abcdef\n",
            headers={"Content-Type": "application/octet-stream"},
        ) as r:
            if r.ok:
                _made(SESSION, path)
    except requests.RequestException:
        pass


def _openapi_to_json_schema(value):
    """OpenAPI 3.0 schema objects as JSON Schema draft 4 (`nullable`)."""
    if isinstance(value, list):
        return [_openapi_to_json_schema(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _openapi_to_json_schema(v) for k, v in value.items() if k not in ("discriminator", "example")}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


_line_validator = None


def _ndjson_line_validator():
    global _line_validator
    if _line_validator is None and DOCUMENT:
        import jsonschema_rs

        with open(DOCUMENT) as f:
            components = json.load(f)["components"]
        root = {
            "$ref": "#/components/schemas/ExecStreamLine",
            "components": {"schemas": _openapi_to_json_schema(components["schemas"])},
        }
        _line_validator = jsonschema_rs.Draft4Validator(root)
    return _line_validator


def _ndjson_lines(response) -> list:
    return [json.loads(line) for line in response.content.split(b"\n") if line.strip()]


@schemathesis.deserializer("application/x-ndjson")
def ndjson_first_line(ctx, response):
    # The document's schema is one line's; every line is checked by
    # `ndjson_lines_conform`.
    lines = _ndjson_lines(response)
    return lines[0] if lines else None


@schemathesis.check
def ndjson_lines_conform(ctx, response, case):
    """Every line of a streamed command fits `ExecStreamLine`, and the stream ends with `exec_exit`."""
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if response.status_code != 200 or not content_type.startswith("application/x-ndjson"):
        return None
    validator = _ndjson_line_validator()
    lines = _ndjson_lines(response)
    if not lines:
        raise AssertionError("The stream has no line")
    for i, line in enumerate(lines):
        errors = [e.message for e in validator.iter_errors(line)] if validator else []
        if errors:
            raise AssertionError(f"Line {i + 1} does not fit ExecStreamLine: {errors[0]}: {json.dumps(line)[:300]}")
    if lines[0].get("type") != "exec_started" or lines[-1].get("type") != "exec_exit":
        raise AssertionError(f"The stream runs from {lines[0].get('type')} to {lines[-1].get('type')}")
    return True


@schemathesis.serializer("application/x-tar")
def tar_serializer(ctx, value):
    if value is None:
        return None
    data = value if isinstance(value, bytes) else getattr(value, "data", None)
    if data is None:
        data = (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "replace")
    if not _positive(ctx.case):
        return data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(f"st-{hashlib.sha256(data).hexdigest()[:16]}.bin")
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@schemathesis.hook
def before_call(context, case, kwargs):
    global _input_exec
    op = _op(case)
    positive = _positive(case)
    path = case.path_parameters or {}
    # A well-formed id that names nothing (a random one, not one a link of
    # the stateful phase carried from an answer) is replaced by a real one.
    session_id = str(path.get("sessionId", ""))
    if SESSION_ID.match(session_id):
        if op == "removeSession" and (session_id == SESSION or session_id not in _known_sessions):
            # The run's own session is never removed (a create that named it
            # returns it, so a link may carry it here): the cases after this
            # one need it.
            path["sessionId"] = _throwaway_session()
        elif session_id not in _known_sessions:
            path["sessionId"] = SESSION
    exec_id = str(path.get("execId", ""))
    if EXEC_ID.match(exec_id) and exec_id not in _known_execs and path.get("sessionId") == SESSION:
        if op in ("getCommand", "getCommandHead"):
            path["execId"] = DONE_EXEC
        elif op == "killCommand":
            path["execId"] = _start(["sleep", "10"], 10)
        elif op == "sendCommandInput":
            with _lock:
                if _input_exec is None or not _running(_input_exec):
                    _input_exec = _start(["cat"], 30)
                path["execId"] = _input_exec
    body = case.body if isinstance(case.body, dict) else None
    if positive and body is not None:
        if op == "createSession":
            if body.get("image") is not None:
                body["image"] = IMAGE
            if body.get("workspaceDir") is not None:
                body["workspaceDir"] = WORKSPACE_DIR
            if body.get("sessionId") is not None and SESSION_ID.match(str(body["sessionId"])):
                body["sessionId"] = SESSION
        if op == "configurePreview":
            body["sessionId"] = SESSION
        if op in ("createSession", "startCommand") and isinstance(body.get("env"), dict):
            body["env"] = {
                (k if ENV_NAME.match(k) else f"V{i}"): v for i, (k, v) in enumerate(body["env"].items())
            }
        if op == "startCommand":
            cmd = body.get("cmd")
            if isinstance(cmd, list) and cmd and cmd[0] == "":
                cmd[0] = "true"
            timeout = body.get("timeout")
            body["timeout"] = MAX_COMMAND_TIMEOUT if timeout is None else min(timeout, MAX_COMMAND_TIMEOUT)
            if body.get("stdin") is None:
                body["stdin"] = ""
            # Every other command asks for the stream (the operation's other
            # answer), so that its lines are checked too.
            if next(_streamed) % 2 == 0:
                case.headers = case.headers or {}
                case.headers["Accept"] = "application/x-ndjson"
            if body.get("execId") is not None:
                # A client's id may be in use already (a 409); keep it unique.
                body["execId"] = f"{body['execId'][:40]}-{os.getpid()}-{next(_ids)}"
    on_session = path.get("sessionId") == SESSION
    if positive and on_session and op == "moveFile" and body is not None:
        if isinstance(body.get("from"), str):
            _path_exists_as_file(body["from"])
        if isinstance(body.get("to"), str) and _parent(body["to"]) not in ("/",) + PLACES:
            _make_directory(_parent(body["to"]))
    query = case.query or {}
    if positive and on_session and op in ("readFile", "readFileHead") and isinstance(query.get("path"), str):
        if _normal(query["path"]) in PLACES:
            # A place is a directory: read the run's file instead.
            query["path"] = "/workspace/notes.txt"
        else:
            _path_exists_as_file(query["path"])
    if positive and op in ("listEvents", "listEventsHead") and case.query:
        # The coverage phase sends query values as strings.
        try:
            wait = float(case.query.get("wait"))
        except (TypeError, ValueError):
            wait = None
        if wait is not None and wait > MAX_EVENTS_WAIT:
            case.query["wait"] = MAX_EVENTS_WAIT


_tally_lock = threading.Lock()


def _tally(case, response) -> None:
    if not TALLY:
        return
    name = None
    if response.status_code >= 400:
        try:
            name = response.json().get("error")
        except Exception:
            pass
    declared = str(case.operation.method).upper()
    line = {
        "operationId": _op(case),
        "method": str(case.method).upper(),
        "declared": declared,
        "path": case.path,
        "status": response.status_code,
        "error": name,
        "positive": _positive(case),
    }
    if os.environ.get("STUDIO_ST_DEBUG"):
        line["case"] = {"path": case.path_parameters, "query": case.query, "headers": dict(case.headers or {}),
                        "body": case.body if isinstance(case.body, (dict, list, str)) else None}
        line["response"] = response.content[:300].decode("utf-8", "replace")
    with _tally_lock, open(TALLY, "a") as f:
        f.write(json.dumps(line) + "\n")


# Paths `removeFile` removed (and nothing made again since), by session.
_removed: set[tuple[str, str]] = set()
MAKERS = {"writeFile": "path", "makeDirectory": "path", "uploadArchive": "path"}


def _note_files(op: str, case, response) -> None:
    if not 200 <= response.status_code < 300:
        return
    session_id = str((case.path_parameters or {}).get("sessionId"))
    query = case.query or {}
    made = None
    if op == "removeFile" and isinstance(query.get("path"), str):
        _removed.add((session_id, _normal(query["path"])))
        return
    if op in MAKERS and isinstance(query.get("path"), str):
        made = query["path"]
    if op == "moveFile" and isinstance(case.body, dict) and isinstance(case.body.get("to"), str):
        made = case.body["to"]
    if made is not None:
        _made(session_id, made)


def _made(session_id: str, path: str) -> None:
    """`path` and every directory on the way exist again."""
    path = _normal(path)
    while path not in ("/", ""):
        _removed.discard((session_id, path))
        path = _parent(path)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # `use_after_free` takes the URL's path for the resource, so after
    # `DELETE .../files?path=A` it expects a 404 from every read under
    # `.../files`, whatever path the read names. Here a file is named by the
    # `path` query parameter: the failure stands only when the read names a
    # path that was removed (or lies below one) and was not made again.
    if type(failure).__name__ != "UseAfterFree" or not str(getattr(failure, "free", "")).endswith("/files"):
        return True
    session_id = str((case.path_parameters or {}).get("sessionId"))
    read = (case.query or {}).get("path")
    if not isinstance(read, str):
        return True
    read = _normal(read)
    while read not in ("/", ""):
        if (session_id, read) in _removed:
            return True
        read = _parent(read)
    return False


@schemathesis.hook
def after_call(context, case, response):
    _tally(case, response)
    op = _op(case)
    _note_files(op, case, response)
    if response.status_code not in (200, 201):
        return
    if op == "removeSession":
        _forget_created(str((case.path_parameters or {}).get("sessionId")))
        return
    if op == "startCommand":
        try:
            _known_execs.add(json.loads(response.content.split(b"\n", 1)[0])["execId"])
        except Exception:
            pass
        return
    if op != "createSession":
        return
    try:
        created = response.json()["sessionId"]
    except Exception:
        return
    _known_sessions.add(created)
    if created == SESSION:
        return
    _track(created)
