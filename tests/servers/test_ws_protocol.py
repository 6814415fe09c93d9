"""servers/ws_protocol.py: uvicorn's sansio protocol with lean per-socket state.

The protocol's behaviour is uvicorn's (the delivery, echo, chat and Autobahn suites run on it, it
is the default); these tests pin what the class changes: nothing uvicorn's ``__init__`` provides
is missing, the inbox and flag keep the asyncio semantics uvicorn relies on, and an idle socket
really holds less memory.
"""

from __future__ import annotations

import asyncio

import pytest
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from experiments.idle_memory import idle_growth, upgrade_request
from servers.ws_protocol import Flag, Inbox, LeanSansIOProtocol, uvicorn_ws
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
    assert uvicorn_ws("pushlab-sansio") == "servers.ws_protocol:LeanSansIOProtocol"
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
