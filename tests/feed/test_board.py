"""The whiteboard model, fed messages directly: sequencing, undo, clear, snapshot, replay."""

from __future__ import annotations

import orjson
import pytest

from feed.board import Board, BoardError, Boards, check_name, parse_message
from feed.exceptions import CapacityError


def stroke(sid: str, n: int = 2, **extra) -> bytes:
    body = {"type": "stroke", "id": sid, "color": "#112233", "width": 3}
    body["points"] = [[i * 10, i * 5] for i in range(n)]
    return orjson.dumps(body | extra)


def board(**limits: int) -> Board:
    return Board("b", **({"max_strokes": 10, "max_points": 50, "history": 100} | limits))


def apply(b: Board, user: str, raw: bytes | str) -> dict:
    return b.apply(user, parse_message(raw))


def picture(frames: list[dict]) -> set[tuple[str, str]]:
    """Apply frames the way a client does; returns the visible (user, id) pairs."""
    visible: dict[tuple[str, str], dict] = {}
    for f in frames:
        if f["type"] == "snapshot":
            visible = {(s["user"], s["id"]): s for s in f["strokes"]}
        elif f["type"] == "stroke":
            visible[(f["user"], f["id"])] = f
        elif f["type"] == "undo":
            visible.pop((f["user"], f["id"]))
        elif f["type"] == "clear":
            visible.clear()
    return set(visible)


def test_operations_get_consecutive_seqs():
    """Strokes, undo and clear are numbered 1, 2, 3... in the order applied."""
    b = board()
    ops = [
        apply(b, "ann", stroke("a")),
        apply(b, "bob", stroke("b")),
        apply(b, "ann", '{"type":"undo"}'),
    ]
    ops.append(apply(b, "bob", '{"type":"clear"}'))
    assert [o["seq"] for o in ops] == [1, 2, 3, 4]
    assert [o["type"] for o in ops] == ["stroke", "stroke", "undo", "clear"]
    assert ops[2]["id"] == "a" and ops[2]["user"] == "ann"


def test_undo_removes_only_the_senders_latest_stroke():
    """Undo takes back the sender's own most recent stroke, never someone else's."""
    b = board()
    apply(b, "ann", stroke("a1"))
    apply(b, "ann", stroke("a2"))
    apply(b, "bob", stroke("b1"))
    assert apply(b, "ann", '{"type":"undo"}')["id"] == "a2"
    assert picture([b.snapshot()]) == {("ann", "a1"), ("bob", "b1")}
    apply(b, "ann", '{"type":"undo"}')
    with pytest.raises(BoardError) as err:
        apply(b, "ann", '{"type":"undo"}')
    assert err.value.code == "nothing_to_undo"


def test_replay_after_any_cursor_rebuilds_the_picture():
    """Picture at seq N plus replay(N) equals the live picture, for every N."""
    b = board()
    frames: list[dict] = []
    script = [
        ("ann", stroke("a")),
        ("bob", stroke("b")),
        ("ann", '{"type":"undo"}'),
        ("bob", '{"type":"clear"}'),
        ("ann", stroke("c")),
        ("bob", stroke("d")),
    ]
    for user, raw in script:
        frames.append(apply(b, user, raw))
    for n in range(len(frames) + 1):
        ops = b.replay(n)
        assert ops is not None and [o["seq"] for o in ops] == list(range(n + 1, len(frames) + 1))
        assert picture(frames[:n] + ops) == picture([b.snapshot()]) == {("ann", "c"), ("bob", "d")}


def test_replay_refuses_cursors_it_cannot_honour():
    """A cursor older than the retained log, or from a board's previous life, gets None."""
    b = board(history=3)
    for i in range(6):
        apply(b, "ann", stroke(f"s{i}"))
    assert b.replay(3) is not None and b.replay(2) is None
    assert b.replay(7) is None
    assert b.replay(6) == []


def test_snapshot_lists_visible_strokes_and_users():
    """The snapshot carries seq, strokes in board order and who is present."""
    b = board()
    assert b.join("ann") and not b.join("ann") and b.join("bob")
    apply(b, "ann", stroke("a"))
    apply(b, "bob", stroke("b"))
    snap = b.snapshot()
    assert snap["seq"] == 2 and [s["id"] for s in snap["strokes"]] == ["a", "b"]
    assert snap["users"] == ["ann", "bob"]
    assert not b.leave("ann") and b.leave("ann") and b.users() == ["bob"]


def test_cursor_moves_are_relayed_not_sequenced():
    """A cursor frame names its user and leaves seq and the log untouched."""
    b = board()
    frame = apply(b, "ann", '{"type":"cursor","x":5,"y":6,"drawing":true}')
    assert frame == {"type": "cursor", "user": "ann", "x": 5, "y": 6, "drawing": True}
    assert b.seq == 0 and b.replay(0) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1,2]",
        b'{"type":"paint"}',
        stroke("a", color="red"),
        stroke("a", width=0),
        stroke("a", width=1000),
        stroke("a", n=0),
        stroke("bad id!"),
        stroke("a", points=[[1, 2, 3]]),
        stroke("a", points=[[-1, 2]]),
        stroke("a", points=[[1, 20000]]),
        stroke("a", extra=1),
        b'{"type":"cursor","x":"left","y":1}',
    ],
)
def test_malformed_messages_are_refused(raw):
    """Anything but a well-formed message is invalid_message, with field details."""
    with pytest.raises(BoardError) as err:
        parse_message(raw)
    assert err.value.code == "invalid_message" and err.value.detail


def test_limits_on_points_strokes_and_duplicates():
    """Too many points, a full board and a reused stroke id are refused by name."""
    b = board(max_points=5, max_strokes=2)
    with pytest.raises(BoardError, match="too_many_points"):
        apply(b, "ann", stroke("a", n=6))
    apply(b, "ann", stroke("a", n=5))
    with pytest.raises(BoardError, match="duplicate_stroke"):
        apply(b, "ann", stroke("a"))
    apply(b, "bob", stroke("a"))
    with pytest.raises(BoardError, match="board_full"):
        apply(b, "ann", stroke("c"))
    assert b.seq == 2


def test_boards_are_isolated_and_capped():
    """Each name gets its own board; past max_boards a new name is a CapacityError."""
    boards = Boards(2, max_strokes=10, max_points=10, history=10)
    apply(boards.get("x"), "ann", stroke("a"))
    assert boards.get("y").seq == 0 and boards.get("x").seq == 1
    with pytest.raises(CapacityError):
        boards.get("z")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "ü", "a/b"])
def test_bad_names_are_refused(name):
    """Board and user names outside 1-64 safe characters are refused."""
    with pytest.raises(BoardError, match="bad_user"):
        check_name(name, "user")
