"""servers/fastpath/ws_protocol.py: uvicorn's sansio protocol with lean per-socket state.

The protocol's behaviour is uvicorn's (the delivery, echo, chat and Autobahn suites run on it, it
is the default); these tests pin what the class changes: nothing uvicorn's ``__init__`` provides
is missing, the inbox and flag keep the asyncio semantics uvicorn relies on, an idle socket
really holds less memory, and the answers it changes (a close between fragments, an unsupported
version, pongs while the peer does not read). The library behaviour each change replaces is
pinned too, so an upgrade of websockets or uvicorn that changes it fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect

import pytest
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.server import ServerProtocol

from experiments.idle_memory import idle_growth, upgrade_request
from feed.wire import ws
from feed.wire.ws import (
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Decoded,
    close_payload,
    decode_frame,
    encode_frame,
    new_mask_key,
)
from servers.fastpath.ws_protocol import (
    Flag,
    Inbox,
    LeanSansIOProtocol,
    PushlabServerProtocol,
    uvicorn_ws,
)
from tests.servers.rawws import OP_CLOSE, OP_CONT, OP_TEXT, RawWS
from tests.support import MS, wait_until


async def _noop_app(scope, receive, send) -> None:  # pragma: no cover - never called
    pass


@pytest.mark.parametrize("deflate", [False, True])
async def test_every_attribute_uvicorn_sets_is_there_with_the_same_value(deflate):
    """A uvicorn upgrade that adds per-connection state fails here, not in production."""
    config = Config(
        _noop_app, ws_per_message_deflate=deflate, ws_ping_interval=3.0, log_config=None
    )
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    theirs = WebSocketsSansIOProtocol(config, state, {"k": 1}, loop)
    ours = LeanSansIOProtocol(config, state, {"k": 1}, loop)
    for name, value in vars(theirs).items():
        assert hasattr(ours, name), name
        mine = getattr(ours, name)
        if name in ("queue", "writable"):
            assert type(mine) in (Inbox, Flag)
        elif name == "app":  # a method that calls the app (see the class)
            assert ours.config.loaded_app is value
        elif name == "conn":
            assert [type(e) for e in mine.available_extensions] == [
                type(e) for e in value.available_extensions
            ]
            assert (mine.max_message_size, mine.max_fragment_size) == (
                value.max_message_size,
                value.max_fragment_size,
            )
        elif name != "logger" or mine is not value:
            assert mine == value, name
    assert ours.writable.is_set() and ours.queue.empty()


def test_uvicorn_option_names_the_lean_class():
    assert uvicorn_ws("pushlab-sansio") == "servers.fastpath.ws_protocol:LeanSansIOProtocol"
    assert uvicorn_ws("wsproto") == "wsproto"


async def test_inbox_keeps_order_and_wakes_a_waiting_reader():
    inbox = Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty()
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait(3)
    assert await asyncio.wait_for(reader, 5 * MS) == 3


async def test_inbox_cancelled_reader_loses_no_message():
    """A reader woken and then cancelled leaves the message for the next reader."""
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("m")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 5 * MS) == "m"
    assert first.cancelled() and inbox.empty()
    cancelled = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    inbox.put_nowait("n")
    assert await inbox.get() == "n"


async def test_flag_blocks_while_clear_and_releases_every_waiter():
    flag = Flag()
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters[1:]), 5 * MS) == [True, True]


def _idle_bytes_per_socket(serve, settings, n: int) -> float:
    """tracemalloc growth per idle feed WebSocket to an in-thread server, after warm-up."""
    server = serve(settings)
    conns = server.app.state.pushlab.conns

    def settle(k: int) -> None:  # upgrade answered and registered
        wait_until(lambda: len(conns.live) == k, what=f"{k} sockets registered")

    growth = idle_growth(server.port, upgrade_request("ws", topic="t"), b" 101 ", n, settle)
    return sum(d.size_diff for d in growth) / n


def test_lean_protocol_holds_less_per_idle_socket(serve, settings):
    """The point of the class: measured against uvicorn's own, same app, same sockets."""
    settings = settings.replace(ticker_rate=0)
    lean = _idle_bytes_per_socket(serve, settings.replace(ws_impl="pushlab-sansio"), 200)
    plain = _idle_bytes_per_socket(serve, settings.replace(ws_impl="websockets-sansio"), 200)
    assert lean < 0.75 * plain, (lean, plain)


# uvicorn 0.54 methods LeanSansIOProtocol replaces (send_receive_event_to_app) or compensates for
# (the denial path of send, run_asgi's handshake check): a new uvicorn that changes one fails
# here, and the class must be re-read against it (sha256 of the source, first 16 hex digits).
UVICORN_PINNED = {
    "send_receive_event_to_app": "a2b10de91477dc1d",
    "send": "d4919ed760ce9f7b",
    "run_asgi": "662375aa38d9044c",
}


@pytest.mark.parametrize("name", sorted(UVICORN_PINNED))
def test_uvicorn_code_the_class_depends_on_is_the_pinned_one(name):
    source = inspect.getsource(getattr(WebSocketsSansIOProtocol, name))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == UVICORN_PINNED[name], (
        f"uvicorn's WebSocketsSansIOProtocol.{name} changed: "
        "re-read servers/fastpath/ws_protocol.py"
    )


def _open(cls: type[ServerProtocol]) -> ServerProtocol:
    """A sans-I/O server protocol past a valid opening handshake, its output drained."""
    proto = cls()
    proto.receive_data(ws.upgrade_request("x", "/echo", ws.new_ws_key()))
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))
    proto.data_to_send()
    return proto


def _sent(proto: ServerProtocol) -> list[Decoded]:
    """The frames the protocol wants to send."""
    buf, out = b"".join(proto.data_to_send()), []
    while buf:
        decoded = decode_frame(buf)
        assert decoded is not None, buf
        out.append(decoded[0])
        buf = buf[decoded[1] :]
    return out


def _client(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask_key=new_mask_key())


@pytest.mark.parametrize(("cls", "code"), [(ServerProtocol, 1002), (PushlabServerProtocol, 1000)])
def test_close_between_fragments(cls, code):
    """websockets answers 1002; pushlab's protocol echoes the close (RFC 6455 §5.4, §5.5.1).

    The first row pins websockets' own answer: when an upgrade makes it echo the close too, this
    fails and PushlabServerProtocol.recv_frame's override can go.
    """
    proto = _open(cls)
    proto.receive_data(
        _client(TEXT, b"frag", fin=False)
        + _client(CLOSE, close_payload(1000, "bye"))
        + _client(CONTINUATION, b"ment")
    )
    assert [f.close_code for f in _sent(proto) if f.opcode == CLOSE] == [code]
    if code == 1000:
        assert proto.close_rcvd is not None and proto.close_rcvd.code == 1000
        assert proto.close_sent == proto.close_rcvd  # the handshake, not a failure


@pytest.mark.parametrize(("cls", "status"), [(ServerProtocol, 400), (PushlabServerProtocol, 426)])
def test_unsupported_version(cls, status):
    """websockets answers a bare 400; pushlab's protocol 426 and the version it speaks (§4.2.2)."""
    proto = cls()
    proto.receive_data(
        ws.upgrade_request("x", "/echo", ws.new_ws_key(), {"Sec-WebSocket-Version": "12"})
    )
    (request,) = proto.events_received()
    response = proto.accept(request)
    assert response.status_code == status
    assert response.headers.get("Sec-WebSocket-Version") == ("13" if status == 426 else None)


def test_held_pings_get_one_pong_for_the_latest():
    """While pongs are held every ping is read, none answered; on release, the last one only."""
    proto = _open(PushlabServerProtocol)
    proto.receive_data(_client(PING, b"a"))
    assert [(f.opcode, f.payload) for f in _sent(proto)] == [(PONG, b"a")]
    proto.hold_pongs = True
    proto.receive_data(b"".join(_client(PING, b"%d" % i) for i in range(100)))
    assert len(proto.events_received()) == 101 and proto.data_to_send() == []
    proto.release_pong()
    assert [(f.opcode, f.payload) for f in _sent(proto)] == [(PONG, b"99")]
    proto.release_pong()  # nothing held: nothing sent
    assert proto.data_to_send() == []


async def test_close_between_fragments_gets_a_normal_closing_handshake(live):
    """Autobahn 7.1.5 against the real server's /echo: the close is echoed, the fragment after
    it ignored, and the server ends the connection."""
    assert live.settings.ws_impl == "pushlab-sansio"  # the default is what this checks
    raw = await RawWS.connect(live.port, "/echo")
    assert raw.status == 101
    raw.send(OP_TEXT, b"frag", fin=False)
    raw.send(OP_CLOSE, close_payload(1000, "bye"))
    raw.send(OP_CONT, b"ment")
    assert await raw.close_code(5 * MS) == 1000
    assert raw.buffered == 0  # nothing came after the close frame
    assert await asyncio.wait_for(raw.reader.read(), 5 * MS) == b""  # then EOF, nothing else
    raw.abort()
