"""What header compression does to short polling: bytes per request on one connection.

An ``hpack`` cell polls ``/poll`` :data:`REQUESTS` times, one request after the other on one
connection, on a topic nobody publishes to (every answer is the same empty poll), and reads the
kernel's byte counters of that one client socket (:mod:`experiments.sockstats`) after each
answer. Request 1 carries the connection's setup (TLS handshake, HTTP/2 preface and SETTINGS);
over HTTP/2 it also fills HPACK's dynamic tables, so from request 2 on the same headers go as
one- or two-byte indexes (QPACK over HTTP/3 likewise; there the client counts its QUIC
connection's UDP payload, ACKs included). Over HTTP/1.1 every request repeats its headers in full.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import httpx

from clients.h3http import H3Transport
from experiments import sockstats
from experiments.cells import Target
from experiments.matrix import Cell

REQUESTS = 20
TOPIC = "hpack-probe"  # the ticker publishes elsewhere: every answer is the same


async def probe(
    target: Target, http2: bool, n: int = REQUESTS, http3: bool = False
) -> tuple[list[int], list[int]]:
    """Bytes written and read by the client socket for each of ``n`` polls, in order (HTTP/3:
    the QUIC connection's UDP payload, counted by the client, which includes its ACKs)."""
    ups: list[int] = []
    downs: list[int] = []
    last = (0, 0)
    local: int | None = None
    h3 = H3Transport(target.verify()) if http3 else None
    async with httpx.AsyncClient(
        verify=target.verify(), http2=http2, trust_env=False, timeout=10.0, transport=h3
    ) as http:
        for _ in range(n):
            r = await http.get(f"{target.url}/poll", params={"topic": TOPIC})
            r.raise_for_status()
            if h3 is not None:
                written, read = h3.bytes_sent, h3.bytes_received
            else:
                if local is None:
                    local = int(r.extensions["network_stream"].get_extra_info("client_addr")[1])
                snap = await asyncio.to_thread(sockstats.snapshot, target.port)
                if local not in snap:
                    raise RuntimeError("the probe's connection closed between polls")
                written, read, _ = snap[local]
            ups.append(written - last[0])
            downs.append(read - last[1])
            last = (written, read)
    return ups, downs


def hpack_cell(cell: Cell, target: Target, raw_dir: Path) -> dict[str, Any]:
    """The runner's entry for ``kind="hpack"`` cells."""
    opts = cell.client_options()
    ups, downs = asyncio.run(probe(target, bool(opts.get("http2")), http3=bool(opts.get("http3"))))
    total = [u + d for u, d in zip(ups, downs, strict=True)]
    return {
        "generator": "hpack",
        "request_up_bytes": ups,
        "request_down_bytes": downs,
        "first_request_bytes": total[0],
        "second_request_bytes": total[1],
        "steady_request_bytes": statistics.median(total[2:]),
        "steady_request_up_bytes": statistics.median(ups[2:]),
    }
