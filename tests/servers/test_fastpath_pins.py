"""Pins of every private library internal servers/fastpath/ touches: one test each.

servers/fastpath/ reaches into the pinned uvicorn, h11, httptools, websockets, wsproto,
Starlette, FastAPI, sse-starlette and hypercorn. Each test names one internal and checks it
exists with the shape the code uses (names, signatures, the attributes it reads, and for code we
replicate or override, the library's source itself), so an upgrade that changes one fails here,
loudly and by name, instead of silently taking a slow path or breaking under load. On a failure:
re-read the fastpath module named in the message against the new library, then update the pin.
(The uvicorn methods servers/fastpath/ws_protocol.py compensates for are pinned by source in
tests/servers/test_ws_protocol.py.)
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import pytest


def _source(obj: Any) -> str:
    return inspect.getsource(obj)


def _digest(obj: Any) -> str:
    return hashlib.sha256(_source(obj).encode()).hexdigest()[:16]


def _params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


def _assigns(cls: type, *attrs: str) -> None:
    """Every ``attr`` is set as ``self.<attr>`` somewhere in the class's own source."""
    source = _source(cls)
    missing = [a for a in attrs if f"self.{a} =" not in source and f"self.{a}:" not in source]
    assert not missing, f"{cls.__module__}.{cls.__qualname__} no longer sets {missing}"


# -- uvicorn's HTTP/1.1 protocol (servers/fastpath/http_protocol.py) ---------------------------


def test_httptools_protocol_hooks_the_guard_overrides():
    """GuardedHttpToolsProtocol overrides these and calls each through super()."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for name, params in {
        "connection_made": ["self", "transport"],
        "connection_lost": ["self", "exc"],
        "data_received": ["self", "data"],
        "on_url": ["self", "url"],
        "on_header": ["self", "name", "value"],
        "on_headers_complete": ["self"],
        "on_message_complete": ["self"],
        "send_400_response": ["self", "msg"],
    }.items():
        assert _params(getattr(HttpToolsProtocol, name)) == params, name


def test_httptools_data_received_is_the_one_replicated():
    """GuardedHttpToolsProtocol.data_received is a copy of uvicorn's with the guard added."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert _digest(HttpToolsProtocol.data_received) == "010a7ae59a5d3b1a", (
        "uvicorn's HttpToolsProtocol.data_received changed: re-read "
        "servers/fastpath/http_protocol.py"
    )


def test_httptools_private_helpers_the_guard_calls():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for name in ("_unset_keepalive_if_required", "_should_upgrade", "_unsupported_upgrade_warning"):
        assert _params(getattr(HttpToolsProtocol, name)) == ["self"], name
    assert callable(HttpToolsProtocol.handle_websocket_upgrade)


def test_httptools_protocol_attributes_the_guard_reads():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    _assigns(
        HttpToolsProtocol,
        "parser",
        "url",
        "connections",
        "loop",
        "transport",
        "client",
        "cycle",
        "server_state",
    )


def test_httptools_status_line_table():
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE

    assert STATUS_LINE[431] == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    assert all(STATUS_LINE[s].startswith(b"HTTP/1.1 %d " % s) for s in (400, 408, 414, 503))


def test_server_state_default_headers():
    from uvicorn.server import ServerState

    assert ServerState().default_headers == []


def test_httptools_parser_exceptions():
    import httptools

    assert issubclass(httptools.HttpParserUpgrade, Exception)
    assert issubclass(httptools.HttpParserError, Exception)


# -- uvicorn's HTTP/1.1 cycle and h11 (servers/fastpath/sse_direct.py, pushlab's SSE) ----------


def test_request_response_cycles_hand_the_app_their_bound_send():
    """uvicorn_cycle() recognises a cycle by the bound ``send`` run_asgi hands the app."""
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for module in (h11_impl, httptools_impl):
        run_asgi = _source(module.RequestResponseCycle.run_asgi)
        assert "self.scope, self.receive, self.send" in run_asgi, module.__name__
        assert _params(module.RequestResponseCycle.send) == ["self", "message"]


def test_request_response_cycle_attributes_direct_delivery_reads():
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for module in (h11_impl, httptools_impl):
        _assigns(
            module.RequestResponseCycle,
            "transport",
            "flow",
            "disconnected",
            "response_started",
            "response_complete",
            "message_event",
        )
    _assigns(httptools_impl.RequestResponseCycle, "chunked_encoding")
    _assigns(h11_impl.RequestResponseCycle, "conn")


# -- uvicorn's cycle and asyncio.Event for a parked long poll (servers/fastpath/disconnect.py) --


def test_connection_lost_marks_the_cycle_and_sets_its_event():
    """Both protocols tell a parked cycle its client left the way DisconnectWatch listens for."""
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for module in (h11_impl, httptools_impl):
        lost = _source(module.HttpToolsProtocol if module is httptools_impl else module.H11Protocol)
        assert "self.cycle.disconnected = True" in lost, module.__name__
        assert "self.cycle.message_event.set()" in lost, module.__name__
        _assigns(module.RequestResponseCycle, "more_body", "body")
        receive = _source(module.RequestResponseCycle.receive)
        # What DisconnectWatch does in receive()'s place: resume reading, then wait on the event.
        assert "self.flow.resume_reading()" in receive, module.__name__
        assert "await self.message_event.wait()" in receive, module.__name__


async def test_event_set_resolves_futures_among_its_waiters():
    """asyncio.Event keeps its waiters in ``_waiters`` and set() resolves each future there."""
    import asyncio

    event = asyncio.Event()
    waiter = asyncio.get_running_loop().create_future()
    event._waiters.append(waiter)
    event.set()
    assert waiter.done()
    event._waiters.remove(waiter)


def test_flow_control_write_paused():
    from uvicorn.protocols.http.flow_control import FlowControl

    _assigns(FlowControl, "write_paused")


def test_h11_chunked_writer_is_private_and_named():
    """sse_direct.chunked() recognises h11's chunked framing by its writer's class name."""
    import h11
    from h11._writers import ChunkedWriter

    assert ChunkedWriter.__name__ == "ChunkedWriter"
    _assigns(h11.Connection, "_writer")


# -- uvicorn's WebSocket protocols (servers/fastpath/ws_direct.py, ws_protocol.py) -------------


def test_websocket_protocols_hand_the_app_their_bound_send():
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

    for cls in (WebSocketsSansIOProtocol, WSProtocol):
        assert "self.scope, self.receive, self.send" in _source(cls.run_asgi), cls.__name__


def test_websocket_protocol_attributes_the_direct_sink_reads():
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

    common = ("transport", "writable", "close_sent", "handshake_complete", "conn")
    _assigns(WebSocketsSansIOProtocol, *common)
    _assigns(WSProtocol, *common, "config")
    assert "disconnected" in _source(WebSocketsSansIOProtocol)
    assert "disconnected" in _source(WSProtocol)


def test_websocket_open_states():
    from websockets.protocol import Protocol, State
    from wsproto.connection import ConnectionState

    assert State.OPEN.name == "OPEN" and ConnectionState.OPEN.name == "OPEN"
    assert "extensions" in _source(Protocol.__init__)


def test_uvicorn_protocol_utils_the_lean_protocol_imports():
    from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

    assert _params(get_client_addr) == ["scope"]
    assert _params(get_path_with_query_string) == ["scope"]


# -- sse-starlette (servers/fastpath/eventsource.py) --------------------------------------------


def test_event_source_response_call_is_the_one_replicated():
    """WatchedEventSourceResponse.__call__ is sse-starlette's minus the shutdown watcher."""
    from sse_starlette import EventSourceResponse

    assert _digest(EventSourceResponse.__call__) == "a73c8fa57f069591", (
        "sse-starlette's EventSourceResponse.__call__ changed: re-read "
        "servers/fastpath/eventsource.py"
    )


def test_event_source_response_private_hooks():
    from sse_starlette import EventSourceResponse

    assert _params(EventSourceResponse._send_with_timeout) == ["self", "send", "message"]
    assert _params(EventSourceResponse._stream_response) == ["self", "send"]
    assert _params(EventSourceResponse._ping) == ["self", "send"]
    assert _params(EventSourceResponse._listen_for_disconnect) == ["self", "receive"]
    _assigns(EventSourceResponse, "ping_interval")
    assert "SendTimeoutError" in _source(EventSourceResponse._send_with_timeout)


def test_sse_starlette_collapse_excgroups():
    from sse_starlette._utils import collapse_excgroups
    from sse_starlette.sse import SendTimeoutError

    assert _params(collapse_excgroups) == []
    assert issubclass(SendTimeoutError, Exception)


# -- Starlette and FastAPI (servers/fastpath/routing.py, bare.py) ------------------------------


def test_starlette_get_route_path():
    from starlette._utils import get_route_path

    scope = {"type": "http", "path": "/api/sse", "root_path": "/api"}
    assert get_route_path(scope) == "/sse"  # type: ignore[arg-type]


def test_fastapi_route_contexts():
    from fastapi import APIRouter, FastAPI
    from fastapi.routing import RouteContext, iter_route_contexts

    router = APIRouter()

    @router.get("/x")
    async def x() -> None:
        """A route inside an included router."""

    app = FastAPI()
    app.include_router(router)
    contexts = [c for c in iter_route_contexts(app.routes) if c.path == "/x"]
    assert len(contexts) == 1 and isinstance(contexts[0], RouteContext)
    assert contexts[0].methods == {"GET"} and contexts[0].route is not None


def test_starlette_middleware_stack_hooks():
    """PushlabApp wraps build_middleware_stack and reads user_middleware and
    exception_handlers to decide and answer its bare dispatch."""
    from starlette.applications import Starlette

    assert _params(Starlette.build_middleware_stack) == ["self"]
    _assigns(Starlette, "user_middleware", "exception_handlers")


def test_starlette_routes_take_an_asgi_app():
    """A class instance endpoint is routed as a bare ASGI app, not wrapped per request."""
    from starlette.routing import Route, WebSocketRoute

    class App:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            """Nothing."""

    app = App()
    assert Route("/a", app).app is app
    assert WebSocketRoute("/b", app).app is app


# -- uvicorn's Server (servers/runner.py, kept beside the launchers) ---------------------------


def test_uvicorn_server_shutdown_hook():
    """PushlabServer overrides shutdown() and reads servers, force_exit and the config's
    timeout_graceful_shutdown."""
    import uvicorn

    assert _params(uvicorn.Server.shutdown) == ["self", "sockets"]
    _assigns(uvicorn.Server, "servers", "force_exit")
    _assigns(uvicorn.Config, "timeout_graceful_shutdown")


@pytest.mark.parametrize(
    "module",
    [
        "servers.fastpath.http_protocol",
        "servers.fastpath.ws_protocol",
        "servers.fastpath.ws_direct",
        "servers.fastpath.sse_direct",
        "servers.fastpath.eventsource",
        "servers.fastpath.routing",
        "servers.fastpath.bare",
        "servers.fastpath.rawsend",
        "servers.fastpath.hypercorn_h3",
    ],
)
def test_fastpath_modules_import(module):
    """Each fastpath module imports against the installed libraries."""
    __import__(module)


def test_flow_control_writable_event_is_only_set_cleared_and_awaited():
    # GuardedHttpToolsProtocol swaps the Event for ws_protocol.Flag, which has only these.
    import re

    from uvicorn.protocols.http.flow_control import FlowControl

    _assigns(FlowControl, "_is_writable_event")
    uses = set(re.findall(r"_is_writable_event\.(\w+)", _source(FlowControl)))
    assert uses <= {"set", "clear", "wait", "is_set"}, uses


def test_httptools_pipeline_is_only_appended_left_popped_and_tested():
    # GuardedHttpToolsProtocol swaps the deque for http_protocol.Pipeline (a list).
    import re

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from servers.fastpath.http_protocol import Pipeline

    uses = set(re.findall(r"self\.pipeline\.(\w+)", _source(HttpToolsProtocol)))
    assert uses <= {"appendleft", "pop"}, uses
    pipeline = Pipeline()
    for item in (1, 2, 3):
        pipeline.appendleft(item)
    assert [pipeline.pop() for _ in range(3)] == [1, 2, 3] and not pipeline


def test_hypercorn_looks_up_h3_protocol_and_udp_server_by_module_name():
    """servers/fastpath/hypercorn_h3.py swaps both names; hypercorn must look them up there, at
    call time."""
    from hypercorn.asyncio import run
    from hypercorn.protocol import quic

    assert "H3Protocol(" in _source(quic.QuicProtocol._handle_events)
    assert "UDPServer(app, loop, config, context, lifespan_state)" in _source(run.worker_serve)
    assert hasattr(quic, "H3Protocol") and hasattr(run, "UDPServer")


def test_hypercorn_h3_protocol_keeps_streams_and_sends_through_stream_send():
    """H3Streams pops from ``streams`` and wraps ``handle``/``stream_send``; the events it sends
    each carry a ``stream_id`` and headers, as frozen dataclasses."""
    from hypercorn.protocol.events import Response
    from hypercorn.protocol.h3 import H3Protocol

    _assigns(H3Protocol, "streams", "connection", "send")
    assert _params(H3Protocol.handle) == ["self", "quic_event"]
    assert _params(H3Protocol.stream_send) == ["self", "event"]
    # H3Streams replicates the Body/Data branch, minus the flush after each write.
    body = _source(H3Protocol.stream_send)
    assert "self.connection.send_data(event.stream_id, event.data, False)\n" in body
    assert body.count("await self.send()") == 4
    assert {"stream_id", "headers"} <= set(Response.__dataclass_fields__)


def test_hypercorn_udp_server_queue_loop_and_quic_connections():
    """ClosingUDPServer reads ``context``, ``protocol``, ``protocol_queue``, ``transport`` and
    ``loop``; it wakes the run loop, which re-checks ``terminated`` and ``idle`` only after an
    event; it closes each QuicProtocol connection (``connections``: cid -> one with ``cids``
    and ``quic``) and flushes it with ``send_all``."""
    from hypercorn.asyncio.udp_server import UDPServer
    from hypercorn.protocol.quic import QuicProtocol, _Connection

    _assigns(UDPServer, "context", "protocol", "protocol_queue", "transport", "loop")
    assert "while not self.context.terminated.is_set() or not self.protocol.idle" in _source(
        UDPServer.run
    )
    _assigns(QuicProtocol, "connections")
    assert _params(QuicProtocol.send_all) == ["self", "connection"]
    assert {"cids", "quic"} <= set(_Connection.__dataclass_fields__)
