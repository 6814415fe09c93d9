"""``pushlab chat`` driven as a subprocess through stdin/stdout against a live server."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time

import pytest

from clients.chat import parse_line, render
from tests.support import MS

CHAT = [sys.executable, "-m", "pushlab", "chat"]


class Terminal:
    """A running ``pushlab chat``: write lines, wait for output lines."""

    def __init__(self, url: str, user: str, *rooms: str) -> None:
        args = [*CHAT, "--url", url, "--user", user, *(a for r in rooms for a in ("--room", r))]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, text: str, timeout: float = 10) -> str:
        """The first output line containing ``text``."""
        deadline = time.monotonic() + timeout * MS
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}; saw {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def finish(self) -> tuple[int, str]:
        """Close stdin (EOF) and return the exit code and stderr."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        code = self.proc.wait(15 * MS)
        return code, self.proc.stderr.read()


@pytest.fixture
def terminals():
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal(*args))
        return started[-1]

    yield start
    for term in started:
        if term.proc.poll() is None:
            term.proc.kill()
        term.proc.wait(5)
        term.pump.join(5)
        for stream in (term.proc.stdin, term.proc.stdout, term.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def test_two_terminals_chat_and_see_presence(live, terminals):
    """Two users join a room, talk, DM, ask who, and see each other leave."""
    bob = terminals(live.url, "bob", "lobby")
    bob.expect("joined lobby: bob")
    ann = terminals(live.url, "ann")
    ann.expect("# welcome ann")
    ann.type("hello?")
    ann.expect("! no current room")
    ann.type("/join lobby")
    ann.expect("joined lobby: ann, bob")
    bob.expect("[lobby #2] * ann joins")
    ann.type("hi bob")
    assert bob.expect("ann: hi bob") == "[lobby #3] ann: hi bob"
    bob.type("/msg ann psst")
    assert ann.expect("[dm]") == "[dm] bob -> ann: psst"
    ann.type("/who lobby")
    ann.expect("in lobby: ann, bob")
    ann.type("/msg nobody x")
    ann.expect("! user_offline")
    ann.type("/nonsense")
    ann.expect("! usage:")
    assert ann.finish() == (0, "")
    bob.expect("[lobby #4] * ann leaves")
    assert bob.finish() == (0, "")


def test_refused_room_and_bad_user(live, terminals):
    """Saying in a room not joined prints the server's refusal; a bad user name exits 1."""
    ann = terminals(live.url, "ann")
    ann.expect("# welcome")
    ann.type("/room elsewhere")
    ann.type("anyone?")
    ann.expect("! not_member: join elsewhere first")
    assert ann.finish()[0] == 0
    bad = terminals(live.url, "no spaces")
    code, err = bad.finish()
    assert code == 1 and "HTTP 400" in err


def test_server_gone_is_an_error(terminals):
    """With nothing listening the client says it cannot connect and exits 1."""
    from tests.support import free_port

    term = terminals(f"http://127.0.0.1:{free_port()}", "ann")
    code, err = term.finish()
    assert code == 1 and "cannot connect" in err


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        ("/join r", {"type": "join", "room": "r"}),
        ("/msg bob hi there", {"type": "dm", "to": "bob", "text": "hi there"}),
        ("hello", {"type": "say", "room": "cur", "text": "hello"}),
        ("   ", None),
        ("/join", "usage"),
        ("/msg bob", "usage"),
    ],
)
def test_parse_line(line, frame):
    """Input lines map to client frames or a local usage error."""
    got = parse_line(line, "cur")
    assert got == frame or (isinstance(got, str) and frame in got)


def test_render_unknown_frames_verbatim():
    """A frame type the client does not know is shown as JSON, not dropped."""
    assert render({"type": "new", "x": 1}) == '? {"type":"new","x":1}'
