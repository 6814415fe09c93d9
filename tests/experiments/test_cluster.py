"""A real cluster: 3 instances on the Redis broker behind nginx with TLS, and its faults."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from experiments.cluster import Cluster
from experiments.failover import with_fault
from experiments.fleet import Fleet, publish_paced
from experiments.metrics import summarize
from experiments.proxy_buffering import sse_latency
from experiments.results import ResultsDir
from feed.wire.contract import TRANSPORTS
from tests.redis_support import OwnRedis, require_redis, unique_prefix
from tests.support import FULL, MS, require

pytestmark = [pytest.mark.nginx, pytest.mark.redis, pytest.mark.timeout(600 if FULL else 180)]

PER_TRANSPORT = 5 if FULL else 2
EVENTS = 1000 if FULL else 240
RATE = 100.0 if FULL else 120.0
RESULTS_ROOT = Path("results/tmp-tests")


def start_cluster(tmp_path: Path, **options: Any) -> Cluster:
    nginx = require("nginx", "the cluster tests")
    broker = options.pop("broker", None) or require_redis()
    return Cluster(
        tmp_path / "cluster", nginx=nginx, broker=broker, prefix=unique_prefix("cl"), **options
    ).start()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three instances sharing the Redis broker, nginx in front; all stopped and keys deleted."""
    c = start_cluster(tmp_path)
    yield c
    c.stop()


def ctx(c: Cluster) -> ssl.SSLContext:
    assert c.tls is not None
    return c.tls.client_context()


def save(name: str, params: dict[str, Any], run: dict[str, Any]) -> Path:
    out = ResultsDir.create(name, RESULTS_ROOT)
    out.write_meta(params, publisher=run.get("publisher"), caught_up=run.get("caught_up"))
    for transport, cell in run["cells"].items():
        out.add_cell({"transport": transport, **cell})
    return out.path


async def test_every_transport_through_nginx_with_tls(cluster):
    """Poll, long-poll, SSE and WS all deliver through nginx over https/wss, CA-verified."""
    fleet = await Fleet.start([cluster.url], "tls", TRANSPORTS, 1, ctx(cluster))
    log = await publish_paced(cluster.url, "tls", 30, 200.0, ctx(cluster))
    ok = await fleet.until(lambda m: len(m.seqs) >= 30, 15 * MS, "delivery")
    await fleet.stop()
    assert ok, {m.transport: len(m.seqs) for m in fleet.members}
    for m in fleet.members:
        assert m.seqs == list(range(1, 31)), m.transport
    assert log.errors == 0


async def test_tls_is_verified_and_http_redirects(cluster):
    """Without the local CA the handshake fails; plain HTTP answers 301 to https."""
    async with httpx.AsyncClient(trust_env=False) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(f"{cluster.url}/healthz")
        r = await http.get(f"http://127.0.0.1:{cluster.http_port}/healthz?x=1")
    assert r.status_code == 301
    assert r.headers["location"] == f"{cluster.url}/healthz?x=1"
    async with httpx.AsyncClient(trust_env=False, verify=ctx(cluster), http2=False) as http:
        health = (await http.get(f"{cluster.url}/healthz")).json()
    assert health["broker"]["backend"] == "redis"


def test_sse_over_http2(cluster):
    """nginx serves the SSE stream over HTTP/2 (ALPN h2), verified against the local CA."""
    curl = require("curl", "the HTTP/2 check")
    assert cluster.tls is not None
    out = subprocess.run(
        [
            curl,
            "-sS",
            "-N",
            "-i",
            "--http2",
            "--max-time",
            "1",
            "--cacert",
            str(cluster.tls.ca),
            f"{cluster.url}/sse?topic=h2",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout.startswith("HTTP/2 200"), out.stdout[:200] + out.stderr
    assert "event: ready" in out.stdout
    assert "text/event-stream" in out.stdout


async def test_every_websocket_route_upgrades_through_nginx(cluster):
    """Feed, echo, chat and whiteboard WebSockets all upgrade over wss:// and answer."""
    wss = cluster.url.replace("https", "wss")
    firsts = {}
    for path in (
        "/ws?topic=routes",
        "/chat?user=ann&room=lobby",
        "/whiteboard/ws?board=demo&user=ann",
    ):
        async with connect(wss + path, ssl=ctx(cluster), open_timeout=10 * MS) as ws:
            firsts[path.split("?")[0]] = orjson.loads(await ws.recv())["type"]
    assert firsts == {"/ws": "ready", "/chat": "welcome", "/whiteboard/ws": "snapshot"}
    async with connect(wss + "/echo", ssl=ctx(cluster), open_timeout=10 * MS) as ws:
        await ws.send("through nginx")
        assert await ws.recv() == "through nginx"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"


async def test_the_per_ip_cap_sees_the_client_not_nginx(tmp_path):
    """Clients from 127.0.0.2 and 127.0.0.3 are capped apart behind nginx; the app logs them."""
    # Refusals are logged at INFO (a refusal is not a server problem): read the log at that level.
    env = {"PUSHLAB_MAX_CONNS_PER_IP": "1", "PUSHLAB_LOG_LEVEL": "info"}
    c = start_cluster(tmp_path, instances=1, env=env)
    url = c.url.replace("https", "wss") + "/ws?topic=cap"
    try:
        a = await connect(url, ssl=ctx(c), local_addr=("127.0.0.2", 0))
        b = await connect(url, ssl=ctx(c), local_addr=("127.0.0.3", 0))
        try:
            assert orjson.loads(await b.recv())["type"] == "ready"
            with pytest.raises(InvalidStatus) as info:
                await connect(url, ssl=ctx(c), local_addr=("127.0.0.2", 0))
            assert info.value.response.status_code == 429
            # The client's own X-Forwarded-For is not believed: nginx appends the real peer.
            with pytest.raises(InvalidStatus) as info:
                await connect(
                    url,
                    ssl=ctx(c),
                    local_addr=("127.0.0.3", 0),
                    additional_headers={"X-Forwarded-For": "203.0.113.9"},
                )
            assert info.value.response.status_code == 429
            async with httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2", verify=ctx(c)),
                trust_env=False,
            ) as http:
                r = await http.get(f"{c.url}/sse?topic=cap")
            assert r.status_code == 429
        finally:
            await a.close()
            await b.close()
        rejects = [
            orjson.loads(line)
            for line in (c.root / "logs" / "app-0.log").read_text().splitlines()
            if line.startswith("{") and '"reject"' in line
        ]
        # Each refusal is logged by the cap and by the endpoint: host, or host:port.
        assert {r["remote"].rsplit(":", 1)[0] for r in rejects} == {"127.0.0.2", "127.0.0.3"}
    finally:
        c.stop()


async def test_event_published_on_one_instance_reaches_all(cluster):
    """Subscribers directly on each instance all get what one instance published."""
    urls = cluster.instance_urls
    fleet = await Fleet.start(urls, "x", ["sse", "ws"], len(urls))
    assert {m.client.url for m in fleet.members} == set(urls)
    await publish_paced(urls[0], "x", 50, 100.0)
    ok = await fleet.until(lambda m: len(m.seqs) >= 50, 15 * MS, "delivery")
    await fleet.stop()
    assert ok
    for m in fleet.members:
        assert m.seqs == list(range(1, 51))
    out = ResultsDir.create("cluster-cross-instance", RESULTS_ROOT)
    out.write_meta({"events": 50, "rate": 100.0, "publish_on": 0, "transports": ["sse", "ws"]})
    for i, u in enumerate(urls):
        lat = [x for m in fleet.members if m.client.url == u for x in m.latency_ms]
        out.add_cell({"instance": i, "published_here": i == 0, **summarize(lat, "latency_ms_")})


async def test_sigkill_one_instance_loses_nothing(cluster):
    """One of three instances is SIGKILLed mid-stream; every client resumes, nothing lost."""
    run = await with_fault(
        cluster.url,
        cluster.kill_busiest,
        topic="kill",
        verify=ctx(cluster),
        per_transport=PER_TRANSPORT,
        events=EVENTS,
        rate=RATE,
    )
    save("cluster-sigkill", {"events": EVENTS, "rate": RATE, "per": PER_TRANSPORT}, run)
    assert run["caught_up"], run
    for transport, cell in run["cells"].items():
        assert cell["lost"] == 0, (transport, cell)
        assert cell["duplicates_delivered"] == 0, (transport, cell)
        assert cell["duplicates_dropped"] == 0, (transport, cell)
        assert cell["silent_gaps"] == 0, (transport, cell)
        assert cell["gaps_announced"] == 0, (transport, cell)
    assert sum(c["reconnected_clients"] for c in run["cells"].values()) > 0


async def test_rolling_restart_keeps_clients_subscribed(cluster):
    """Instances restart one by one (SIGTERM, start, healthy) under a live stream: no loss."""
    run = await with_fault(
        cluster.url,
        cluster.rolling_restart,
        topic="roll",
        verify=ctx(cluster),
        per_transport=PER_TRANSPORT,
        events=EVENTS * 2,
        rate=RATE,
        fault_at=10,
    )
    save("cluster-rolling", {"events": EVENTS * 2, "rate": RATE}, run)
    assert run["caught_up"], run
    for transport, cell in run["cells"].items():
        assert (cell["lost"], cell["duplicates_delivered"], cell["silent_gaps"]) == (0, 0, 0), (
            transport,
            cell,
        )


async def test_redis_restart_recovers_or_reports(tmp_path, own_redis: OwnRedis):
    """Redis restarts empty mid-stream: clients catch up, every loss is announced, none silent."""
    c = start_cluster(tmp_path, broker=own_redis.url, instances=2)
    try:
        run = await with_fault(
            c.url,
            own_redis.restart,
            topic="redis",
            verify=ctx(c),
            per_transport=PER_TRANSPORT,
            events=EVENTS,
            rate=RATE,
        )
    finally:
        c.stop()
    save("cluster-redis-restart", {"events": EVENTS, "rate": RATE}, run)
    assert run["caught_up"], run
    assert run["publisher"]["seq_resets"] == 1, run["publisher"]
    for transport, cell in run["cells"].items():
        assert cell["silent_gaps"] == 0, (transport, cell)
        assert cell["lost"] == 0, (transport, cell)  # every event after the reset arrives
        assert cell["duplicates_dropped"] == 0, (transport, cell)  # the server never resends
        assert cell["unannounced_loss_clients"] == 0, (transport, cell)


async def test_sse_buffering_pitfall_is_measurable(tmp_path):
    """With proxy_buffering on (X-Accel-Buffering ignored) SSE events are held; shipped: not."""
    out = ResultsDir.create("sse-proxy-buffering", RESULTS_ROOT)
    out.write_meta({"events": 40, "rate": 40.0, "wait_s": 2})
    cells = {}
    for buffering in (False, True):
        c = start_cluster(tmp_path / str(buffering), instances=1, sse_buffering=buffering)
        try:
            cells[buffering] = await sse_latency(c.url, ctx(c))
        finally:
            c.stop()
        out.add_cell({"proxy_buffering": buffering, **cells[buffering]})
    shipped, buffered = cells[False], cells[True]
    assert shipped["delivered_in_time"] == 40 and shipped["latency_ms_p50"] < 100 * MS
    held = buffered["delivered_in_time"] < 40
    assert held or buffered["latency_ms_p50"] > 5 * shipped["latency_ms_p50"], cells
