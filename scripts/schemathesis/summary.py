"""Summary of a schemathesis run (scripts/schemathesis.sh).

    summary.py REPORT_DIR [MIN_REQUESTS]

REPORT_DIR holds `openapi.json` (the document the run was made against),
`tally.jsonl` (one line per response schemathesis got, written by hooks.py)
and the run's JUnit report. Prints the operations with how many generated
requests each got and the statuses they answered, the requests sent with a
method the path does not take, the failures by check, and the 5xx answers.
Exits 1 when a check failed or errored, an operation of the document got no
request, fewer than MIN_REQUESTS (default 1000) requests were made in all,
a response had a status the document does not list for its operation (a
method a path does not take must be a 405), or a 5xx came that is not a
documented engine failure (`DockerDaemonError`). The hooks' own requests
(sessions and commands made for the tests) are not counted.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# What a 5xx may be while the engine is up: only the engine not answering,
# which the document states for every operation that reaches it.
ENGINE_FAILURES = {"DockerDaemonError"}


def operations(document: dict) -> dict[tuple[str, str], dict]:
    ops = {}
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if method in METHODS:
                ops[(method.upper(), path)] = op
    return ops


def junit_failures(report: pathlib.Path) -> tuple[collections.Counter, dict[str, str], list[str]]:
    """Failures by check (`ST202 Schema-valid request rejected`), an example of each, and errors."""
    failures: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    errors: list[str] = []
    for path in report.glob("junit*.xml"):
        for testcase in ET.parse(path).getroot().iter("testcase"):
            for failure in testcase.findall("failure"):
                text = failure.text or ""
                # One numbered case per failing request; the check's code and title under it.
                for check in re.findall(r"^- (.+)$", text, flags=re.M):
                    failures[check] += 1
                    examples.setdefault(check, f"{testcase.get('name')}: {text[:700]}")
            for error in testcase.findall("error"):
                errors.append(f"{testcase.get('name')}: {(error.get('message') or error.text or '')[:300]}")
    return failures, examples, errors


def main() -> int:
    report = pathlib.Path(sys.argv[1])
    min_requests = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    ops = operations(json.loads((report / "openapi.json").read_text()))

    requests: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    by_op: dict = collections.defaultdict(collections.Counter)
    probes: collections.Counter = collections.Counter()
    undocumented = collections.Counter()
    server_errors = collections.Counter()
    tally = report / "tally.jsonl"
    lines = tally.read_text().splitlines() if tally.exists() else []
    for line in lines:
        r = json.loads(line)
        status = r["status"]
        statuses[status] += 1
        key = (r["method"], r["path"])
        if r["method"] != r["declared"] and key not in ops:
            # A method the path does not take (the unsupported-method check).
            probes[(r["method"], r["path"], status)] += 1
            if status != 405:
                undocumented[(r["method"], r["path"], status)] += 1
            continue
        requests[key] += 1
        by_op[key][status] += 1
        if str(status) not in ops.get(key, {}).get("responses", {}):
            undocumented[(r["method"], r["path"], status)] += 1
        if status >= 500:
            server_errors[(r["method"], r["path"], status, r.get("error"))] += 1

    total = sum(requests.values())
    print(f"operations in the document: {len(ops)}")
    print(f"generated requests: {total} to the operations, {sum(probes.values())} with a method a path does not take")
    width = max((len(f"{m} {p}") for m, p in ops), default=10)
    missing = []
    for method, path in sorted(ops, key=lambda k: (k[1], k[0])):
        n = requests.get((method, path), 0)
        if n == 0:
            missing.append(f"{method} {path}")
        seen = ", ".join(f"{s}: {c}" for s, c in sorted(by_op[(method, path)].items()))
        print(f"  {method + ' ' + path:<{width}}  {n:5}  [{seen}]")
    probe_statuses = collections.Counter()
    for (_, _, status), n in probes.items():
        probe_statuses[status] += n
    print("  other methods: " + (", ".join(f"{s}: {c}" for s, c in sorted(probe_statuses.items())) or "none"))
    print("statuses: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())))

    failures, examples, errors = junit_failures(report)
    print("failures by check: " + (", ".join(f"{n}: {c}" for n, c in sorted(failures.items())) or "none"))
    for name, example in sorted(examples.items()):
        print(f"--- {name}, e.g.:\n{example}\n---")
    print(f"errors: {len(errors)}")
    for e in errors[:10]:
        print(f"  {e}")
    print(f"statuses the document does not list: {sum(undocumented.values())}")
    for (method, path, status), n in sorted(undocumented.items(), key=str)[:30]:
        print(f"  {method} {path}: {status} ({n})")
    documented_5xx = sum(n for (_, _, _, name), n in server_errors.items() if name in ENGINE_FAILURES)
    print(f"5xx: {sum(server_errors.values())} ({documented_5xx} documented engine failures)")
    for (method, path, status, name), n in sorted(server_errors.items(), key=str):
        print(f"  {method} {path}: {status} {name} ({n})")

    problems = []
    if failures or errors:
        problems.append("checks failed or errored")
    if missing:
        problems.append("operations without a request: " + ", ".join(missing))
    if total < min_requests:
        problems.append(f"fewer than {min_requests} generated requests")
    if undocumented:
        problems.append("statuses the document does not list")
    if sum(server_errors.values()) > documented_5xx:
        problems.append("5xx other than engine failures")
    for p in problems:
        print(f"summary: {p}")
    print("summary: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
