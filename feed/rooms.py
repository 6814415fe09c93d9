"""Chat rooms with presence: a sans-I/O model fed connection events and parsed messages.

:class:`ChatRooms` owns who is connected (users, each with one or more connections — browser
tabs) and which connection joined which room. It never touches a socket: every method returns
the :class:`Delivery` list the server must send, in order. The server calls it from one event loop,
so a room's ``seq`` order is the order in which every connection receives that room's frames.

Deliberate rules (docs/demos.md, Chat):

- Membership is per connection; presence is per user. A user's first connection to join a room
  announces ``presence join``; the room hears ``presence leave`` only when the user's last
  connection in it leaves or disconnects.
- Sending to or asking ``who`` about a room requires this connection to have joined it
  (``not_member`` otherwise), so a tab always sees the room stream its messages belong to.
- Every frame about a room (message or presence) takes the room's next ``seq`` (from 1). A room
  that becomes empty is forgotten, so a later join starts a new history at ``seq`` 1.
- A direct message goes to every connection of the recipient and every other connection of the
  sender; the sending connection gets it too, as its acknowledgement.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from feed.chat_messages import ChatInputError, DirectMessage, Join, Leave, Say, Who

DEFAULT_CHAT_MAX_ROOMS = 100

ConnId = int


@dataclass(frozen=True, slots=True)
class Delivery:
    """Send ``message`` (a JSON-able dict) to each connection in ``to``, in list order."""

    to: tuple[ConnId, ...]
    message: dict[str, Any]


@dataclass(slots=True)
class _Room:
    name: str
    seq: int = 0
    conns: set[ConnId] = field(default_factory=set)
    tabs: Counter[str] = field(default_factory=Counter)  # user -> joined connections

    def members(self) -> list[str]:
        return sorted(self.tabs)


@dataclass(slots=True)
class _Conn:
    user: str
    rooms: set[str] = field(default_factory=set)


class ChatRooms:
    """Users, connections, rooms and presence; returns what to send, never sends."""

    def __init__(self, max_rooms_per_conn: int = DEFAULT_CHAT_MAX_ROOMS) -> None:
        self.max_rooms_per_conn = max_rooms_per_conn
        self._conns: dict[ConnId, _Conn] = {}
        self._users: dict[str, set[ConnId]] = {}
        self._rooms: dict[str, _Room] = {}
        self._next_conn = 0

    # -- connections -------------------------------------------------------------------------

    def connect(self, user: str) -> tuple[ConnId, list[Delivery]]:
        """Register a new connection of ``user``; returns its id and the ``welcome`` frame."""
        self._next_conn += 1
        conn = self._next_conn
        self._conns[conn] = _Conn(user)
        self._users.setdefault(user, set()).add(conn)
        tabs = len(self._users[user])
        return conn, [
            Delivery((conn,), {"type": "welcome", "user": user, "conn": conn, "tabs": tabs})
        ]

    def disconnect(self, conn: ConnId) -> list[Delivery]:
        """Forget ``conn``: it leaves every room (presence leave where it was the last tab)."""
        state = self._conns.get(conn)
        if state is None:
            return []
        out: list[Delivery] = []
        for room in sorted(state.rooms):
            out.extend(self._leave(conn, room))
        del self._conns[conn]
        tabs = self._users[state.user]
        tabs.discard(conn)
        if not tabs:
            del self._users[state.user]
        return out

    # -- messages ----------------------------------------------------------------------------

    def handle(
        self, conn: ConnId, message: Join | Leave | Say | DirectMessage | Who
    ) -> list[Delivery]:
        """Apply one parsed client message; refusals raise :class:`ChatInputError`."""
        if conn not in self._conns:
            raise KeyError(conn)
        if isinstance(message, Join):
            return self._join(conn, message)
        if isinstance(message, Leave):
            self._require_member(conn, message.room, message.id)
            left = {"type": "left", "room": message.room, "id": message.id}
            return [Delivery((conn,), left), *self._leave(conn, message.room)]
        if isinstance(message, Say):
            return self._say(conn, message)
        if isinstance(message, DirectMessage):
            return self._dm(conn, message)
        self._require_member(conn, message.room, message.id)
        room = self._rooms[message.room]
        reply = {"type": "who", "room": room.name, "members": room.members(), "seq": room.seq}
        return [Delivery((conn,), reply | {"id": message.id})]

    def _join(self, conn: ConnId, message: Join) -> list[Delivery]:
        state = self._conns[conn]
        if message.room in state.rooms:
            raise ChatInputError("already_member", f"already in {message.room}", message.id)
        if len(state.rooms) >= self.max_rooms_per_conn:
            detail = f"at most {self.max_rooms_per_conn} rooms per connection"
            raise ChatInputError("too_many_rooms", detail, message.id)
        room = self._rooms.setdefault(message.room, _Room(message.room))
        first_tab = room.tabs[state.user] == 0
        out = []
        if first_tab:
            # Announced before the joiner is added: it learns the members from its own reply.
            room.seq += 1
            event = self._presence(room, "join", state.user)
            if room.conns:
                out.append(Delivery(tuple(sorted(room.conns)), event))
        room.conns.add(conn)
        room.tabs[state.user] += 1
        state.rooms.add(room.name)
        joined = {"type": "joined", "room": room.name, "members": room.members(), "seq": room.seq}
        out.append(Delivery((conn,), joined | {"id": message.id}))
        return out

    def _leave(self, conn: ConnId, name: str) -> list[Delivery]:
        state = self._conns[conn]
        room = self._rooms[name]
        state.rooms.discard(name)
        room.conns.discard(conn)
        room.tabs[state.user] -= 1
        if room.tabs[state.user] > 0:
            return []
        del room.tabs[state.user]
        if not room.conns:
            del self._rooms[name]
            return []
        room.seq += 1
        return [Delivery(tuple(sorted(room.conns)), self._presence(room, "leave", state.user))]

    def _say(self, conn: ConnId, message: Say) -> list[Delivery]:
        self._require_member(conn, message.room, message.id)
        room = self._rooms[message.room]
        room.seq += 1
        frame = {
            "type": "message",
            "room": room.name,
            "seq": room.seq,
            "from": self._conns[conn].user,
            "text": message.text,
            "ts_ns": time.time_ns(),
        }
        others = tuple(sorted(room.conns - {conn}))
        # Only the sender's own copy carries its correlation id.
        out = [Delivery((conn,), frame | {"id": message.id})]
        if others:
            out.append(Delivery(others, frame))
        return out

    def _dm(self, conn: ConnId, message: DirectMessage) -> list[Delivery]:
        targets = self._users.get(message.to)
        if not targets:
            raise ChatInputError("user_offline", f"{message.to} is not connected", message.id)
        sender = self._conns[conn].user
        frame = {
            "type": "dm",
            "from": sender,
            "to": message.to,
            "text": message.text,
            "ts_ns": time.time_ns(),
        }
        others = tuple(sorted((targets | self._users[sender]) - {conn}))
        out = [Delivery((conn,), frame | {"id": message.id})]
        if others:
            out.append(Delivery(others, frame))
        return out

    def _require_member(self, conn: ConnId, room: str, client_id: Any) -> None:
        if room not in self._conns[conn].rooms:
            raise ChatInputError("not_member", f"join {room} first", client_id)

    @staticmethod
    def _presence(room: _Room, event: str, user: str) -> dict[str, Any]:
        return {
            "type": "presence",
            "room": room.name,
            "event": event,
            "user": user,
            "seq": room.seq,
        }

    # -- inspection (tests, metrics) ---------------------------------------------------------

    def members(self, room: str) -> list[str]:
        """Users present in ``room`` (each once, however many tabs)."""
        found = self._rooms.get(room)
        return found.members() if found else []

    def rooms(self) -> list[str]:
        """Rooms with at least one connection."""
        return sorted(self._rooms)

    def users(self) -> list[str]:
        """Connected users."""
        return sorted(self._users)

    def connections(self) -> int:
        """Open connections."""
        return len(self._conns)
