"""Starts real ``claude-studio`` servers for the tests.

Each server gets its own ``--instance`` label and state directory; stopping
it removes every container carrying that label, even when a test failed.
The binary comes from ``STUDIO_BIN`` (default: the repository's debug build),
the sessions' image from ``STUDIO_IMAGE``.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("STUDIO_BIN") or str(REPO / "target" / "debug" / "claude-studio")
IMAGE = os.environ.get("STUDIO_IMAGE", "studio-test-busybox:latest")
PREFIX = "listening on http://"


def unique(prefix: str = "py") -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_containers(instance: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=studio.instance={instance}"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)


class StudioServer:
    """One server process. ``url`` is its ``http://ADDR``."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        instance: Optional[str] = None,
        state_dir: Optional[str] = None,
        listen: str = "127.0.0.1:0",
    ) -> None:
        if not os.access(BIN, os.X_OK):
            raise RuntimeError(
                f"claude-studio binary not found at {BIN}: build it (cargo build in the repository) "
                "or set STUDIO_BIN"
            )
        self.args = list(args)
        self.instance = instance or unique()
        self._own_state = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="studio-py-state-")
        self.listen = listen
        self.proc: Optional[subprocess.Popen[str]] = None
        self.url = ""
        self.addr = ""
        self.log_path = os.path.join(self.state_dir, f"server-{uuid.uuid4().hex[:6]}.log")

    def start(self, timeout: float = 30.0) -> "StudioServer":
        cmd = [
            BIN,
            "--listen",
            self.listen,
            "--instance",
            self.instance,
            "--state-dir",
            self.state_dir,
            "--default-image",
            IMAGE,
            *self.args,
        ]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "RUST_LOG": "claude_studio=info"}
        )
        log.close()
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        proc = self.proc

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"claude-studio did not start listening within {timeout} s") from None
            if line is None:
                raise RuntimeError(f"claude-studio exited before listening:\n{self.log()}")
            if PREFIX in line:
                self.addr = line.split(PREFIX, 1)[1].strip()
                self.url = "http://" + self.addr
                return self

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text()[-4000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stops the process (containers are kept, as a restart would)."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def cleanup(self) -> None:
        """Stops the server and removes its containers and state."""
        self.stop()
        remove_containers(self.instance)
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
