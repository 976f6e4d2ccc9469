"""The README's example runs as written; the package builds as a wheel that
installs into a fresh virtual environment and works there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Callable

from studio import StudioServer

PROJECT = Path(__file__).resolve().parents[1]
StartServer = Callable[..., StudioServer]


def readme_examples() -> list[str]:
    text = (PROJECT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2, "the README's python examples (sync and async)"
    return [str(b) for b in blocks]


def test_readme_examples_run(start_server: StartServer, tmp_path: Path) -> None:
    srv = start_server()
    outputs = []
    for i, example in enumerate(readme_examples()):
        script = tmp_path / f"example{i}.py"
        script.write_text(example)
        out = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "STUDIO_URL": srv.url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
    first, second = outputs[0], outputs[1]
    assert "hello from Linux" in first and "typed-42" in first and "/preview/session-" in first
    assert "async Linux" in second and "async typed-42" in second
    # The examples' sessions were removed when their blocks ended.
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=studio.instance={srv.instance}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert left == []


SMOKE = textwrap.dedent(
    """
    import os, sys
    import claude_studio
    from claude_studio import Client, AsyncClient, errors

    assert claude_studio.__file__.startswith(sys.prefix), claude_studio.__file__
    assert os.path.exists(os.path.join(os.path.dirname(claude_studio.__file__), "py.typed"))
    with Client(os.environ["STUDIO_URL"]) as client:
        with client.create_container() as s:
            r = client.execute_command(s.id, ["echo", "from-the-wheel"])
            assert r.stdout == "from-the-wheel\\n", r
            client.send_input(s.id, "echo term-$((20+1))\\n")
            assert "term-21" in client.read_output(s.id, "term-21", timeout=20)
            try:
                client.read_file(s.id, "/workspace/absent")
            except errors.SessionFileNotFoundError as e:
                print("typed", e.error)
    print("wheel ok", claude_studio.__version__)
    """
)


def wheelhouse(tmp_path: Path) -> Path:
    """Where the dependencies' wheels are kept between runs: inside the
    development virtual environment when the tests run in one."""
    if sys.prefix != sys.base_prefix:
        house = Path(sys.prefix) / "wheelhouse"
    else:
        house = tmp_path / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    return house


def test_wheel_installs_and_runs_in_a_clean_venv(start_server: StartServer, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(PROJECT)],
        check=True,
        timeout=120,
    )
    wheels = list(dist.glob("claude_studio-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "claude_studio/py.typed" in names and "claude_studio/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)
    meta = zipfile.ZipFile(wheels[0]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    ).decode()
    assert "Requires-Dist: httpx" in meta and "Requires-Dist: websockets" in meta

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    # The development environment's pip installs into the new one. The
    # wheel's declared dependencies come from the package index the first
    # time, then from a wheelhouse kept in the development environment.
    house = wheelhouse(tmp_path)
    if not list(house.glob("httpx-*.whl")) or not list(house.glob("websockets-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(house), str(wheels[0])],
            check=True,
            timeout=300,
        )
        for own in house.glob("claude_studio-*.whl"):
            own.unlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
         "--find-links", str(house), str(wheels[0])],
        check=True,
        timeout=300,
    )
    srv = start_server()
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE)
    out = subprocess.run(
        [str(python), "-I", str(script)],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "STUDIO_URL": srv.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "typed FileNotFoundError" in out.stdout and "wheel ok" in out.stdout
