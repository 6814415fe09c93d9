"""The sans-I/O chat model, fed messages directly."""

from __future__ import annotations

import pytest

from feed.chat_messages import ChatInputError, parse_client_message
from feed.rooms import ChatRooms, Delivery


def send(rooms: ChatRooms, conn: int, frame: str) -> list[Delivery]:
    return rooms.handle(conn, parse_client_message(frame))


def frames_for(deliveries: list[Delivery], conn: int) -> list[dict]:
    return [d.message for d in deliveries if conn in d.to]


def test_welcome_counts_tabs():
    """Each connection is welcomed with its id and how many tabs the user has."""
    rooms = ChatRooms()
    a1, out1 = rooms.connect("ann")
    a2, out2 = rooms.connect("ann")
    assert out1[0].message == {"type": "welcome", "user": "ann", "conn": a1, "tabs": 1}
    assert out2[0].message["tabs"] == 2 and a2 != a1


def test_join_announces_presence_to_members_and_lists_them():
    """A join is announced to the room; the joiner gets the member list and current seq."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    b, _ = rooms.connect("bob")
    assert frames_for(send(rooms, a, '{"type":"join","room":"r"}'), a) == [
        {"type": "joined", "room": "r", "members": ["ann"], "seq": 1, "id": None}
    ]
    out = send(rooms, b, '{"type":"join","room":"r","id":7}')
    assert frames_for(out, a) == [
        {"type": "presence", "room": "r", "event": "join", "user": "bob", "seq": 2}
    ]
    assert frames_for(out, b) == [
        {"type": "joined", "room": "r", "members": ["ann", "bob"], "seq": 2, "id": 7}
    ]


def test_messages_take_increasing_room_seq():
    """Messages and presence share one per-room sequence; rooms count independently."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    send(rooms, a, '{"type":"join","room":"r"}')
    send(rooms, a, '{"type":"join","room":"s"}')
    seqs = [send(rooms, a, '{"type":"say","room":"r","text":"x"}')[0].message["seq"] for _ in "abc"]
    assert seqs == [2, 3, 4]
    assert send(rooms, a, '{"type":"say","room":"s","text":"y"}')[0].message["seq"] == 2


def test_sender_copy_carries_id_others_do_not():
    """The sender's own copy acknowledges its id; other members get the same frame without it."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    b, _ = rooms.connect("bob")
    send(rooms, a, '{"type":"join","room":"r"}')
    send(rooms, b, '{"type":"join","room":"r"}')
    out = send(rooms, a, '{"type":"say","room":"r","text":"hi","id":"m1"}')
    mine, theirs = frames_for(out, a)[0], frames_for(out, b)[0]
    assert mine.pop("id") == "m1" and "id" not in theirs
    assert mine == theirs and theirs["from"] == "ann" and theirs["text"] == "hi"


def test_refuses_rooms_not_joined():
    """Saying, leaving or asking who in a room this connection has not joined is refused."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    b, _ = rooms.connect("bob")
    send(rooms, b, '{"type":"join","room":"r"}')
    for frame in (
        '{"type":"say","room":"r","text":"x","id":1}',
        '{"type":"leave","room":"r","id":1}',
        '{"type":"who","room":"r","id":1}',
    ):
        with pytest.raises(ChatInputError) as info:
            send(rooms, a, frame)
        assert info.value.code == "not_member" and info.value.client_id == 1


def test_second_join_and_room_limit_refused():
    """Joining twice is refused, and so is joining more than the per-connection limit."""
    rooms = ChatRooms(max_rooms_per_conn=2)
    a, _ = rooms.connect("ann")
    send(rooms, a, '{"type":"join","room":"r"}')
    with pytest.raises(ChatInputError, match="already"):
        send(rooms, a, '{"type":"join","room":"r"}')
    send(rooms, a, '{"type":"join","room":"s"}')
    with pytest.raises(ChatInputError) as info:
        send(rooms, a, '{"type":"join","room":"t"}')
    assert info.value.code == "too_many_rooms"


def test_multi_tab_presence_counts_user_once():
    """A second tab joining is silent; the user leaves only when the last tab does."""
    rooms = ChatRooms()
    a1, _ = rooms.connect("ann")
    a2, _ = rooms.connect("ann")
    b, _ = rooms.connect("bob")
    send(rooms, b, '{"type":"join","room":"r"}')
    send(rooms, a1, '{"type":"join","room":"r"}')
    assert frames_for(send(rooms, a2, '{"type":"join","room":"r"}'), b) == []
    assert rooms.members("r") == ["ann", "bob"]
    assert frames_for(send(rooms, a1, '{"type":"leave","room":"r"}'), b) == []
    assert rooms.members("r") == ["ann", "bob"]
    assert frames_for(rooms.disconnect(a2), b) == [
        {"type": "presence", "room": "r", "event": "leave", "user": "ann", "seq": 3}
    ]
    assert rooms.members("r") == ["bob"]


def test_messages_reach_only_joined_tabs():
    """Room frames go to the connections that joined, not to the user's other tabs."""
    rooms = ChatRooms()
    a1, _ = rooms.connect("ann")
    a2, _ = rooms.connect("ann")
    send(rooms, a1, '{"type":"join","room":"r"}')
    out = send(rooms, a1, '{"type":"say","room":"r","text":"x"}')
    assert frames_for(out, a2) == []


def test_direct_message_reaches_all_tabs_of_both_users():
    """A DM goes to every tab of the recipient and the sender's other tabs."""
    rooms = ChatRooms()
    a1, _ = rooms.connect("ann")
    a2, _ = rooms.connect("ann")
    b1, _ = rooms.connect("bob")
    b2, _ = rooms.connect("bob")
    out = send(rooms, a1, '{"type":"dm","to":"bob","text":"psst","id":3}')
    for conn in (a1, a2, b1, b2):
        (frame,) = frames_for(out, conn)
        assert frame["type"] == "dm" and frame["from"] == "ann" and frame["text"] == "psst"
    assert frames_for(out, a1)[0]["id"] == 3


def test_direct_message_to_offline_user_refused():
    """A DM to a user with no connection is refused with user_offline."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    with pytest.raises(ChatInputError) as info:
        send(rooms, a, '{"type":"dm","to":"zed","text":"x"}')
    assert info.value.code == "user_offline"


def test_disconnect_cleans_everything():
    """After the last connection goes, no room, user or connection remains."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    b, _ = rooms.connect("bob")
    for conn in (a, b):
        send(rooms, conn, '{"type":"join","room":"r"}')
        send(rooms, conn, '{"type":"join","room":"s"}')
    out = rooms.disconnect(a)
    assert [m["room"] for m in frames_for(out, b)] == ["r", "s"]
    rooms.disconnect(b)
    assert rooms.rooms() == [] and rooms.users() == [] and rooms.connections() == 0
    assert rooms.disconnect(b) == []


def test_empty_room_restarts_its_sequence():
    """A room forgotten when empty starts again at seq 1."""
    rooms = ChatRooms()
    a, _ = rooms.connect("ann")
    send(rooms, a, '{"type":"join","room":"r"}')
    send(rooms, a, '{"type":"say","room":"r","text":"x"}')
    send(rooms, a, '{"type":"leave","room":"r"}')
    assert send(rooms, a, '{"type":"join","room":"r"}')[0].message["seq"] == 1


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type":"shout","room":"r"}', "invalid_message"),
        ('{"type":"join"}', "invalid_message"),
        ('{"type":"join","room":"r","extra":1}', "invalid_message"),
        ('{"type":"join","room":"bad room"}', "invalid_message"),
        ('{"type":"say","room":"r","text":""}', "bad_text"),
        ('{"type":"say","room":"r","text":5}', "invalid_message"),
        ('{"type":"dm","to":"","text":"x"}', "invalid_message"),
    ],
)
def test_bad_frames_have_specific_codes(frame, code):
    """Garbage and schema violations are rejected with a code for the error frame."""
    with pytest.raises(ChatInputError) as info:
        parse_client_message(frame)
    assert info.value.code == code


def test_text_limit():
    """Text longer than the limit is refused; at the limit it passes."""
    assert parse_client_message('{"type":"say","room":"r","text":"xxxx"}', max_text=4)
    with pytest.raises(ChatInputError, match="1..3"):
        parse_client_message('{"type":"say","room":"r","text":"xxxx"}', max_text=3)
