"""The adversarial probe runner records what real servers answer (short form; make abuse: long).

A few fast probes whose answers are known on today's code run against a real pushlab server and a
real Node baseline; the checks are on the recording (an int status, the n/a reason, a complete
results folder), and on the raw-socket observer telling "no answer" from "closed by server".
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from clients.explain.wire import Wire
from experiments import abuse
from experiments.abuse_wire import ask, await_head, describe, hold, server_socket
from experiments.baseline import node_available
from experiments.children import ROOT
from experiments.docfigures import main as docfigures_main
from tests.support import IN_CI, MS, free_port, require, wait_until

pytestmark = pytest.mark.abuse

FAST = ["unknown_route", "ws_version_12", "chat_no_token"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers are children that read PUSHLAB_* and refuse the suite's own variables."""
    monkeypatch.delenv("PUSHLAB_TEST_MS", raising=False)
    monkeypatch.delenv("PUSHLAB_TEST_FULL", raising=False)


def _node_ok() -> None:
    require("node", "the Node.js baseline row")
    ok, why = node_available()
    if not ok:
        (pytest.fail if IN_CI else pytest.skip)(why)


def test_runner_records_answers_of_both_servers(tmp_path, clean_env) -> None:
    """Status codes are ints, n/a carries its reason, and the folder has summary, meta, report."""
    _node_ok()
    probes = [abuse.BY_NAME[n] for n in FAST]
    path = abuse.run(
        probes, abuse.SHORT, ["pushlab", "node"], abuse.RunSettings(), tmp_path, progress=False
    )
    cells = {c["probe"]: c for c in json.loads((path / "summary.json").read_text())["cells"]}
    assert list(cells) == FAST

    for kind in ("pushlab", "node"):
        route = cells["unknown_route"][f"{kind}_detail"]
        assert route["status"] == 404 and route["answer"] == "404"
        assert cells["unknown_route"][kind] == "404"
        version = cells["ws_version_12"][f"{kind}_detail"]
        assert isinstance(version["status"], int) and 400 <= version["status"] < 500
        assert cells["ws_version_12"][kind].startswith(str(version["status"]))

    pushlab = cells["unknown_route"]["pushlab_detail"]
    assert pushlab["tracebacks"] == 0 and isinstance(pushlab["rss_before_mb"], float)
    assert "tracebacks" not in cells["unknown_route"]["node_detail"]
    assert cells["chat_no_token"]["node"] == "n/a"
    assert "/chat" in cells["chat_no_token"]["node_detail"]["why"]
    assert isinstance(cells["chat_no_token"]["pushlab_detail"]["status"], int)

    meta = json.loads((path / "meta.json").read_text())
    assert meta["params"]["form"]["name"] == "short" and meta["params"]["probes"] == FAST
    assert meta["params"]["pushlab_flags"] == abuse.PUSHLAB_FLAGS and "ended_at" in meta
    assert meta["machine"]["git_commit"] and meta["versions"]["ws"]
    report = (path / "report.md").read_text()
    assert "| item | probe | expected | pushlab | node |" in report
    for name in FAST:
        assert f"`{name}`" in report
    assert (path / "raw" / "unknown_route.pushlab.log").exists()
    assert not (path / "raw" / "chat_no_token.node.log").exists()


@pytest.fixture
def mute_listener() -> Iterator[tuple[str, list[socket.socket]]]:
    """A listener that accepts connections and never writes; the test may close them."""
    srv = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        srv.settimeout(0.05)
        while not done.is_set():
            try:
                accepted.append(srv.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}", accepted
    done.set()
    thread.join()
    for s in accepted:
        s.close()
    srv.close()


def test_silence_and_close_are_told_apart(mute_listener) -> None:
    """A server that says nothing is "no answer within T"; one that hangs up is "closed"."""
    url, accepted = mute_listener
    # Heads in this file are hand-written on purpose: some are cut short, which no builder does.
    silent = ask(url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", seconds=0.3 * MS)
    assert silent["kind"] == "silent" and silent["answer"].startswith("no answer within")
    assert "status" not in silent

    with Wire(url, 5.0) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        wait_until(lambda: len(accepted) == 2, 5, "the listener to accept the second connection")
        accepted[1].close()
        closed = describe(await_head(wire, 5 * MS))
    assert closed["kind"] in ("closed", "reset") and "by server" in closed["answer"]


def test_held_connections_are_counted(mute_listener) -> None:
    """Connections nobody answers are reported still open when the watch ends."""
    url, _accepted = mute_listener
    seen = hold(url, 3, b"GET / HTTP/1.1\r\n", b"a", seconds=0.3 * MS, drip_every_s=0.1)
    assert seen["still_open"] == 3 and seen["outcomes"] == {}
    assert seen["answer"].startswith("3/3 still open")


def test_hardening_doc_is_generated_from_the_reference_run() -> None:
    """docs/hardening.md's comparison table equals what docfigures renders from results/."""
    doc = ROOT / "docs" / "hardening.md"
    assert docfigures_main([str(doc), "--results", str(ROOT / "results"), "--check"]) == 0


def test_server_socket_state_is_read_from_the_kernel(mute_listener) -> None:
    """The server side of a live connection is ESTAB in ``ss``; a port with none is None."""
    url, accepted = mute_listener
    port = int(url.rsplit(":", 1)[1])
    with Wire(url, 5.0) as wire:
        wait_until(lambda: len(accepted) == 1, 5, "the listener to accept")
        wire.send(b"x" * 10)
        seen = server_socket(port, wire.local_port)
        assert seen is not None and seen["state"] == "ESTAB"
        wait_until(lambda: server_socket(port, wire.local_port)["recv_q"] == 10, 5, "Recv-Q 10")
    assert server_socket(port, free_port()) is None
