"""The HTTP/3 server for WebTransport sessions, beside uvicorn in the same process and loop.

``pushlab serve --webtransport-port N`` (``PUSHLAB_WEBTRANSPORT_PORT``; 0: any free port, -1: off,
the default) starts it in the app's lifespan on ``settings.host``, UDP. It serves one thing:
``CONNECT :protocol=webtransport`` to ``/wt?topic=T[&since=N][&datagrams=1][&token=JWT]``, the
same feed from the same broker as the HTTP/1.1 transports (:mod:`servers.webtransport.session`).
It sends ``SETTINGS_ENABLE_WEBTRANSPORT`` (draft-02, what Chromium checks), ``H3_DATAGRAM`` and
``ENABLE_CONNECT_PROTOCOL`` (aioquic's ``enable_webtransport``).

Refusals are HTTP/3 answers on the CONNECT stream with the lab's JSON error body, decided by the
same code as the other transports: 401 bad or missing token and 403 origin
(:func:`servers.policy.check` on the CONNECT's headers and query), 400 bad query, 429 per-IP cap,
503 draining or topic limit; 404 another path; 501 another ``:protocol`` (RFC 9220 WebSocket over
HTTP/3 is not served) and 405 a plain request. Shutdown: the drain
(:func:`servers.runner.drain`) closes every subscription, so each session writes
``{"type": "end", "reason": "shutdown"}`` and ends; the lifespan then closes the QUIC connections.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, QuicEvent
from starlette.requests import HTTPConnection

from feed.codec import dumps, parse_cursor
from feed.events import check_topic
from feed.exceptions import BadInput, CapacityError, Refused
from feed.wire.contract import WEBTRANSPORT, WEBTRANSPORT_PATH
from servers import policy
from servers.admission import check_open
from servers.auth import Principal
from servers.fastpath.quic import listening_port, peer
from servers.logs import log_conn
from servers.state import AppState, error_body, status_for
from servers.webtransport.cert import Certificate, self_signed
from servers.webtransport.session import DatagramStats, Session

TRANSPORT = WEBTRANSPORT
# The policy entry of the CONNECT (servers/policy.py): a user route, Origin-checked.
RULE_KEY = ("CONNECT", WEBTRANSPORT_PATH)
# What Chromium's draft-02 client expects to see in the 200 (aioquic's example sends it too).
ACCEPT_HEADERS = [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")]
# A dead client (no CONNECTION_CLOSE: a killed process, a lost path) is noticed this long after
# its last packet; Chromium sends PINGs on an idle WebTransport connection well within it.
IDLE_TIMEOUT_S = 30.0

logger = logging.getLogger("pushlab.webtransport")


class BadRequest(BadInput):
    code = "bad_request"


@dataclass(frozen=True, slots=True)
class Request:
    """The pseudo-headers and headers of one HTTP/3 request."""

    method: str
    protocol: str | None
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]

    @classmethod
    def parse(cls, raw: list[tuple[bytes, bytes]]) -> Request:
        pseudo = {k: v for k, v in raw if k.startswith(b":")}
        target = pseudo.get(b":path", b"")
        path, _, query = target.partition(b"?")
        protocol = pseudo.get(b":protocol")
        return cls(
            method=pseudo.get(b":method", b"").decode("latin-1"),
            protocol=protocol.decode("latin-1") if protocol is not None else None,
            path=path.decode("latin-1"),
            query=query,
            headers=[(k, v) for k, v in raw if not k.startswith(b":")],
        )


@dataclass(frozen=True, slots=True)
class Admitted:
    topic: str
    since: int | None
    datagrams: bool
    principal: Principal | None
    client: tuple[str, int]


class Refusal(Exception):
    """An answer other than 200 to a request, with the lab's JSON error body."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code = status, code


class FeedProtocol(QuicConnectionProtocol):
    """One QUIC connection: HTTP/3 on top, a task per accepted WebTransport session."""

    def __init__(self, *args: Any, server: WebTransportServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.h3: H3Connection | None = None
        self.sessions: dict[int, asyncio.Task[None]] = {}
        # Request streams already answered: a second HEADERS on one (trailers, or after the
        # session ended) is not a new request.
        self.answered: set[int] = set()
        server.connections.add(self)

    @property
    def quic(self) -> QuicConnection:
        """The QUIC state machine (aioquic's protocol subclasses reach it as ``_quic``)."""
        return self._quic

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic, enable_webtransport=True)
        elif isinstance(event, ConnectionTerminated):
            self.cancel_sessions()
            self.server.connections.discard(self)
        if self.h3 is not None:
            for h3_event in self.h3.handle_event(event):
                self._h3_event(h3_event)

    def cancel_sessions(self) -> None:
        for task in list(self.sessions.values()):
            task.cancel()

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived) and event.stream_id not in self.answered:
            self.answered.add(event.stream_id)
            self._request(event)
        elif isinstance(event, DataReceived) and event.stream_ended:
            # FIN on the CONNECT stream (after a CLOSE_WEBTRANSPORT_SESSION capsule, if any):
            # the client ended the session.
            task = self.sessions.get(event.stream_id)
            if task is not None:
                task.cancel()

    def _request(self, event: HeadersReceived) -> None:
        sid = event.stream_id
        client = peer(self._quic)
        try:
            admitted = self.server.admit(Request.parse(event.headers), client)
        except Refusal as refusal:
            self.answer(sid, refusal.status, refusal.code, str(refusal), client)
            return
        task = asyncio.ensure_future(self.server.serve(self, sid, admitted))
        self.sessions[sid] = task
        task.add_done_callback(partial(self._ended, sid))

    def _ended(self, sid: int, task: asyncio.Task[None]) -> None:
        self.sessions.pop(sid, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webtransport session failed", exc_info=task.exception())

    def accept(self, sid: int) -> None:
        assert self.h3 is not None
        self.h3.send_headers(sid, ACCEPT_HEADERS)
        self.transmit()

    def answer(
        self, sid: int, status: int, code: str, detail: str, client: tuple[str, int]
    ) -> None:
        """Refuse a request: status, JSON body, FIN; logged at INFO like every refusal."""
        assert self.h3 is not None
        self.server.st.metrics.rejected.labels(TRANSPORT, str(status)).inc()
        log_conn(
            "reject",
            logging.INFO,
            transport=TRANSPORT,
            remote=f"{client[0]}:{client[1]}",
            status=status,
            error=code,
            detail=detail,
        )
        headers = [(b":status", str(status).encode()), (b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        self.h3.send_headers(sid, headers)
        self.h3.send_data(sid, dumps(error_body(code, detail)), end_stream=True)
        self.transmit()


def refusal(exc: Exception) -> Refusal:
    return Refusal(status_for(exc), getattr(exc, "code", "unavailable"), str(exc))


class WebTransportServer:
    """The UDP listener, its certificate and its datagram counters."""

    def __init__(self, st: AppState, cert: Certificate | None = None) -> None:
        self.st = st
        self.cert = cert or self_signed(st.settings.host)
        self.stats = DatagramStats()
        self.port = -1
        self._quic: QuicServer | None = None
        # Live QUIC connections, each removed when it terminates (idle timeout included).
        self.connections: set[FeedProtocol] = set()

    async def start(self) -> WebTransportServer:
        config = QuicConfiguration(
            alpn_protocols=H3_ALPN,
            is_client=False,
            max_datagram_frame_size=65536,
            idle_timeout=IDLE_TIMEOUT_S,
        )
        config.certificate, config.private_key = self.cert.cert, self.cert.key
        settings = self.st.settings
        self._quic = await serve(
            settings.host,
            settings.webtransport_port,
            configuration=config,
            create_protocol=partial(FeedProtocol, server=self),
        )
        self.port = listening_port(self._quic)
        return self

    def close(self) -> None:
        """Cancel what sessions are left (the drain has ended the others), send
        CONNECTION_CLOSE to every client, then close the socket."""
        for connection in list(self.connections):
            connection.cancel_sessions()
        self.connections.clear()
        if self._quic is not None:
            self._quic.close()
            self._quic = None

    @property
    def url(self) -> str:
        host = self.st.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}{WEBTRANSPORT_PATH}"

    def info(self) -> dict[str, object]:
        """What ``GET /webtransport`` answers: where to connect and which certificate to pin."""
        return {
            "url": self.url,
            "port": self.port,
            "cert_sha256": self.cert.sha256.hex(),
            "datagrams": {
                "sent": self.stats.sent,
                "dropped_too_big": self.stats.too_big,
                "dropped_over_budget": self.stats.over_budget,
            },
        }

    def admit(self, req: Request, client: tuple[str, int]) -> Admitted:
        """Check a request the way every transport is checked; raises :class:`Refusal`."""
        if req.method != "CONNECT":
            raise Refusal(405, "method_not_allowed", "only CONNECT :protocol=webtransport")
        if req.protocol != "webtransport":
            raise Refusal(501, "not_implemented", f":protocol {req.protocol!r} is not served")
        if req.path != WEBTRANSPORT_PATH:
            raise Refusal(404, "not_found", f"no WebTransport endpoint at {req.path[:100]!r}")
        st = self.st
        scope = {
            "type": "http",
            "method": req.method,
            "path": req.path,
            "query_string": req.query,
            "headers": req.headers,
            "client": client,
        }
        conn = HTTPConnection(scope)
        try:
            check_open(st)
            principal = policy.check(conn, st, policy.POLICY[RULE_KEY])
            params = conn.query_params
            topic = check_topic(params.get("topic", ""))
            since = parse_cursor(params.get("since"))
            mode = params.get("datagrams", "0")
            if mode not in ("0", "1"):
                raise BadRequest("datagrams must be 0 or 1")
            st.conns.check_ip(client[0], TRANSPORT)
        except (BadInput, Refused, CapacityError) as exc:
            raise refusal(exc) from None
        return Admitted(topic, since, mode == "1", principal, client)

    async def serve(self, proto: FeedProtocol, sid: int, a: Admitted) -> None:
        """Subscribe, accept (a topic limit is still an answer), and run the session."""
        st = self.st
        try:
            with st.conns.open(TRANSPORT, a.client) as conn:
                conn.user = a.principal.user if a.principal else None
                try:
                    async with st.broker.subscribe(
                        a.topic, a.since, st.settings.subscriber_buffer
                    ) as sub:
                        proto.accept(sid)
                        assert proto.h3 is not None
                        session = Session(
                            proto.h3,
                            proto.quic,
                            sid,
                            conn,
                            a.datagrams,
                            self.stats,
                            proto.transmit,
                        )
                        await session.run(sub, a.principal)
                except asyncio.CancelledError:
                    conn.closing(None, "client_gone")
                    raise
        except (CapacityError, Refused) as exc:
            r = refusal(exc)
            proto.answer(sid, r.status, r.code, str(r), a.client)
