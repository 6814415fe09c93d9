"""Client WebSocket messages: pydantic validation and the error codes it maps to."""

import pytest

from feed.messages import Auth, MessageError, Ping, Pong, Publish, parse_message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"ping","id":7}', Ping(type="ping", id=7)),
        ('{"type":"pong","id":"a","extra":1}', Pong(type="pong", id="a")),
        ('{"type":"publish","data":null}', Publish(type="publish", data=None)),
        ('{"type":"auth","token":"x.y.z"}', Auth(type="auth", token="x.y.z")),
    ],
)
def test_valid_messages(text, expected):
    """Each known message type parses; unknown extra keys are ignored."""
    assert parse_message(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "invalid_json"),
        ("{", "invalid_json"),
        ('{"type":"subscribe"}', "unknown_message"),
        ("{}", "unknown_message"),
        ('{"type":5}', "unknown_message"),
        ("[1,2]", "unknown_message"),
        ('"text"', "unknown_message"),
        ('{"type":"publish"}', "invalid_message"),
        ('{"type":"ping","id":[1]}', "invalid_message"),
        ('{"type":"auth","token":""}', "invalid_message"),
        ('{"type":"auth","token":1}', "invalid_message"),
    ],
)
def test_invalid_messages(text, code):
    """Bad frames raise MessageError with the documented error code."""
    with pytest.raises(MessageError) as info:
        parse_message(text)
    assert info.value.code == code
