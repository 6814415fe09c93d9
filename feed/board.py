"""The collaborative whiteboard model: validated messages in, sequenced operations out; sans-I/O.

A board is a log of operations, each with the next ``seq``: ``stroke`` (a finished polyline),
``undo`` (removes one of the author's own strokes) and ``clear``. Applying the log in order
gives the picture, so a client that reconnects with ``since=N`` gets the operations after N
(:meth:`Board.replay`) and a newcomer, or one whose cursor fell out of the retained log, gets a
:meth:`Board.snapshot` of the visible strokes instead. Cursor moves are ephemeral: relayed, never
sequenced or stored. The server adds sockets, fan-out and rate limits (servers/demos/whiteboard.py).
See docs/demos.md, "Whiteboard".
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from feed.exceptions import BadInput, CapacityError
from feed.names import is_name, rule

COORD_MAX = 10_000.0

Coord = Annotated[float, Field(ge=0, le=COORD_MAX, allow_inf_nan=False)]


class BoardError(BadInput):
    """A whiteboard message the board refuses; ``code`` goes into the error frame."""

    def __init__(self, code: str, detail: object) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class StrokeIn(_Msg):
    """A finished stroke: a polyline in board coordinates (0..10,000)."""

    type: Literal["stroke"]
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    width: float = Field(gt=0, le=64, allow_inf_nan=False)
    points: list[tuple[Coord, Coord]] = Field(min_length=1)


class UndoIn(_Msg):
    """Undo the sender's most recent visible stroke."""

    type: Literal["undo"]


class ClearIn(_Msg):
    """Clear the whole board for everyone."""

    type: Literal["clear"]


class CursorIn(_Msg):
    """Where the sender's pointer is, and whether a stroke is in progress (presence)."""

    type: Literal["cursor"]
    x: Coord
    y: Coord
    drawing: bool = False


ClientMessage = Annotated[StrokeIn | UndoIn | ClearIn | CursorIn, Field(discriminator="type")]
_ADAPTER: TypeAdapter[StrokeIn | UndoIn | ClearIn | CursorIn] = TypeAdapter(ClientMessage)


def parse_message(raw: str | bytes) -> StrokeIn | UndoIn | ClearIn | CursorIn:
    """Validate one client frame; raises :class:`BoardError` ``invalid_message``."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]]
        raise BoardError("invalid_message", detail) from None


def check_name(value: str, what: str) -> str:
    """A board or user name: 1-64 characters of ``A-Z a-z 0-9 _ . : -``."""
    if not is_name(value):
        raise BoardError(f"bad_{what}", f"{what} must be {rule()}")
    return value


class Board:
    """One board's strokes, operation log and who is present."""

    def __init__(self, name: str, *, max_strokes: int, max_points: int, history: int) -> None:
        self.name = name
        self.seq = 0
        self.max_strokes = max_strokes
        self.max_points = max_points
        self._strokes: dict[tuple[str, str], dict[str, Any]] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=history)
        self._present: Counter[str] = Counter()

    def apply(self, user: str, msg: StrokeIn | UndoIn | ClearIn | CursorIn) -> dict[str, Any]:
        """The frame to broadcast for ``msg``; sequenced ops are also logged."""
        if isinstance(msg, CursorIn):
            return {"type": "cursor", "user": user, "x": msg.x, "y": msg.y, "drawing": msg.drawing}
        if isinstance(msg, StrokeIn):
            return self._stroke(user, msg)
        if isinstance(msg, UndoIn):
            mine = [k for k in self._strokes if k[0] == user]
            if not mine:
                raise BoardError("nothing_to_undo", "you have no stroke on the board")
            del self._strokes[mine[-1]]
            return self._log_op({"type": "undo", "user": user, "id": mine[-1][1]})
        self._strokes.clear()
        return self._log_op({"type": "clear", "user": user})

    def _stroke(self, user: str, msg: StrokeIn) -> dict[str, Any]:
        if len(msg.points) > self.max_points:
            raise BoardError("too_many_points", f"a stroke has at most {self.max_points} points")
        if (user, msg.id) in self._strokes:
            raise BoardError("duplicate_stroke", f"stroke {msg.id!r} is already on the board")
        if len(self._strokes) >= self.max_strokes:
            raise BoardError("board_full", f"the board holds at most {self.max_strokes} strokes")
        op = {
            "type": "stroke",
            "user": user,
            "id": msg.id,
            "color": msg.color,
            "width": msg.width,
            "points": [list(p) for p in msg.points],
        }
        op = self._log_op(op)
        self._strokes[(user, msg.id)] = op
        return op

    def _log_op(self, op: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        op = {**op, "seq": self.seq}
        self._log.append(op)
        return op

    def snapshot(self) -> dict[str, Any]:
        """The visible picture at ``seq``: what a newcomer draws before live operations."""
        return {
            "type": "snapshot",
            "board": self.name,
            "seq": self.seq,
            "strokes": list(self._strokes.values()),
            "users": self.users(),
        }

    def replay(self, since: int) -> list[dict[str, Any]] | None:
        """Operations after ``since``, or None when they are not all retained (send a snapshot)."""
        if since > self.seq:
            return None  # the board restarted: the client's picture is from another life
        if since == self.seq:
            return []
        oldest = self._log[0]["seq"] if self._log else self.seq + 1
        if since + 1 < oldest:
            return None
        return [op for op in self._log if op["seq"] > since]

    def join(self, user: str) -> bool:
        """Count one more connection of ``user``; True when the user just arrived."""
        self._present[user] += 1
        return self._present[user] == 1

    def leave(self, user: str) -> bool:
        """Count one connection fewer; True when the user's last connection left."""
        self._present[user] -= 1
        if self._present[user] <= 0:
            del self._present[user]
            return True
        return False

    def users(self) -> list[str]:
        """Users present now, sorted."""
        return sorted(self._present)

    def presence(self) -> dict[str, Any]:
        """The presence frame broadcast when someone arrives or leaves."""
        return {"type": "presence", "users": self.users()}


class Boards:
    """Every board of one server, created on first use, at most ``max_boards``."""

    def __init__(self, max_boards: int, **board_limits: int) -> None:
        self.max_boards = max_boards
        self._limits = board_limits
        self._boards: dict[str, Board] = {}

    def get(self, name: str) -> Board:
        """The board called ``name``, created if new; :class:`CapacityError` past the cap."""
        board = self._boards.get(name)
        if board is None:
            if len(self._boards) >= self.max_boards:
                raise CapacityError(f"at most {self.max_boards} boards")
            board = self._boards[name] = Board(name, **self._limits)
        return board
