"""What ships: ``pip install`` of the project without extras gives a server that serves every
transport, and the pins of pyproject.toml are the lock's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from feed.wire.contract import TRANSPORTS
from tests.support import MS, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]


def _pins(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", spec)
        assert m, f"not pinned with ==: {spec}"
        out[m[1].lower().replace("_", "-")] = m[2]
    return out


def test_every_pin_of_pyproject_is_the_locks():
    """``make venv`` installs with ``-c requirements.lock``: a pin the lock contradicts fails."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    lock = _pins([ln for ln in lines if ln.strip() and not ln.startswith("#")])
    wanted = _pins(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= _pins(extra)
    assert {k: v for k, v in wanted.items() if lock.get(k) != v} == {}


def _env() -> dict[str, str]:
    """No PYTHONPATH and no PUSHLAB_* settings: the installed package alone, with its defaults."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PUSHLAB_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway venv with ``pip install -c requirements.lock <repo>``: no extras."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # The local wheel cache and index pip is configured with here serve it, as for make venv.
    done = subprocess.run(
        [*pip, "-c", str(ROOT / "requirements.lock"), str(ROOT)],
        env=_env(), cwd=venv, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    check = subprocess.run([str(venv / "bin" / "pip"), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    yield venv


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except OSError:
        return 0


@pytest.mark.slow
@pytest.mark.timeout(600)  # the fixture's venv and pip install (~40 s here) count too
def test_installed_without_extras_serves_one_event_over_each_transport(bare_venv, tmp_path):
    """``pushlab serve`` from the bare venv; its own ``publish`` and ``listen`` (any transport)."""
    bin_ = bare_venv / "bin"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 (closed in finally)
    argv = [str(bin_ / "pushlab"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    # cwd is not the repository, so nothing of the work tree can be imported instead.
    server = subprocess.Popen(
        [*argv, "--rate", "0", "--log-level", "warning"], cwd=tmp_path, env=_env(),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(
            lambda: server.poll() is not None or _get(f"{url}/healthz") == 200, 30, "healthz"
        )
        log.seek(0)
        assert server.poll() is None, log.read()

        def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                argv, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=30 * MS
            )

        pub = [str(bin_ / "pushlab"), "publish", '{"n": 7}', "--url", url, "--topic", "t"]
        assert run(pub).returncode == 0
        for transport in TRANSPORTS:
            listen = [str(bin_ / "pushlab"), "listen", "-t", transport, "--url", url]
            listen += ["--topic", "t", "--since", "0", "--count", "1"]
            got = run(listen)
            assert (got.returncode, got.stdout) == (0, "1 {'n': 7}\n"), (transport, got.stderr)
        assert _get(f"{url}/web/dashboard.js") == 200  # the pages are package data
    finally:
        server.terminate()
        server.wait(30)
        log.seek(0)
        text = log.read()
        log.close()
    assert "Traceback" not in text, text
