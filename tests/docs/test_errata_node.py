"""Errata in the seed's own Node.js code, run on baseline/node's `ws` (the seed's stack).

Each script is the seed's snippet with the smallest harness around it (a free port, a line of
JSON on stdout where the test needs to see something); the comments name what was changed.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from clients.explain.handshake import open_ws
from feed.wire.ws import TEXT, encode_frame, new_mask_key
from tests.docs.nodejs import NodeScript, node_script
from tests.support import wait_until

# The seed's `new WebSocket.Server(...)`, on a free loopback port that is printed first.
SERVER = """
const WebSocket = require('ws');
const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 },
  () => console.log(wss.address().port));
"""


def masked(opcode: int, payload: bytes) -> bytes:
    return encode_frame(opcode, payload, mask_key=new_mask_key())


def crashed(node: NodeScript) -> str:
    """Wait for the process to die; its stderr (the uncaught exception)."""
    wait_until(lambda: node.proc.poll() is not None, 10, "the Node process to exit")
    assert node.proc.returncode != 0
    assert node.proc.stderr is not None
    return node.proc.stderr.read()


def test_e17_every_ws_message_is_a_buffer_text_included():
    """E17 (Q27): in ws 8 a text message is a Buffer too; isBinary says which it was."""
    source = (
        SERVER
        + """
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {  // the seed's handler, with isBinary logged beside
    console.log(JSON.stringify({ isBuffer: Buffer.isBuffer(data), isBinary }));
  });
});
"""
    )
    with node_script(source) as node:
        with connect(node.url.replace("http", "ws")) as ws:
            ws.send("hello")  # a text frame
            ws.send(b"\x01\x02\x03")  # a binary frame
            wait_until(lambda: len(node.records()) == 2, 10, "two messages logged")
    assert node.records() == [
        {"isBuffer": True, "isBinary": False},
        {"isBuffer": True, "isBinary": True},
    ]


def test_e18_a_socket_without_an_error_listener_dies_on_one_bad_frame():
    """E18 (Q11, Q18): the seed's servers have no 'error' listener: one bad frame kills Node."""
    source = (
        SERVER
        + """
wss.on('connection', (socket) => {  // the seed's Q11 handler
  console.log(JSON.stringify({ connected: true }));
  socket.on('message', (msg) => console.log('Received:', msg));
});
"""
    )
    with node_script(source) as node:
        with connect(node.url.replace("http", "ws")) as bystander:
            wire, report = open_ws(node.url, "/")
            with wire:
                assert report["status"] == 101
                wire.send(encode_frame(TEXT, b"unmasked"))  # RFC 6455 §5.1: clients must mask
                stderr = crashed(node)
            with pytest.raises(ConnectionClosed):  # every other client went down with it
                bystander.recv(5)
    assert "Unhandled 'error' event" in stderr and "MASK must be set" in stderr


def test_e19_the_better_auth_pattern_crashes_on_a_non_json_message():
    """E19 (Q16): the seed's "better pattern" JSON.parse throws in the listener: Node exits."""
    source = (
        SERVER
        + """
const verifyToken = (token) => token === 'good';  // the seed leaves verifyToken to you
wss.on('connection', (ws) => {
  ws.on('error', () => {});  // not the seed's: only to show the crash is JSON.parse's
  ws.on('message', (msg) => {
    const { type, token } = JSON.parse(msg);
    if (type === 'auth') {
      const isValid = verifyToken(token);
      if (!isValid) {
        ws.close();
      }
    }
  });
});
"""
    )
    with node_script(source) as node:
        with connect(node.url.replace("http", "ws")) as ws:
            ws.send("hello")
            stderr = crashed(node)
    assert "SyntaxError" in stderr and "JSON" in stderr


def test_e21_the_ping_interval_never_drops_a_dead_peer_and_outlives_the_socket():
    """E21 (Q28): no pong timeout, and the interval keeps firing after the socket closed."""
    source = (
        SERVER
        + """
wss.on('connection', (ws) => {
  const id = wss.clients.size;
  ws.on('error', () => {});
  setInterval(() => {  // the seed's 30000 ms made 20 ms; the log line is ours
    ws.ping();
    console.log(JSON.stringify({ id, readyState: ws.readyState }));
  }, 20);
  ws.on('pong', () => {
    // client is alive
  });
});
"""
    )
    with node_script(source) as node:
        # A peer that never reads and never answers: its pongs never come.
        silent, report = open_ws(node.url, "/")
        with silent:
            assert report["status"] == 101
            wait_until(lambda: sum(r["id"] == 1 for r in node.records()) >= 25, 10, "25 pings")
            # 25 intervals (0.5 s) without a pong and the peer is still OPEN (1).
            assert {r["readyState"] for r in node.records() if r["id"] == 1} == {1}
            with connect(node.url.replace("http", "ws")) as ws:
                ws.send("hi")
            wait_until(
                lambda: any(r == {"id": 2, "readyState": 3} for r in node.records()),
                10,
                "a ping on the closed socket",
            )


def test_e22_the_ordering_recipe_does_not_serialise_async_handlers():
    """E22 (Q35): the seed's queue + await processes messages concurrently, out of order."""
    source = (
        SERVER
        + """
const queue = [];
// The seed calls processMessage without defining it: here message "1" takes longest.
async function processMessage(msg) {
  await new Promise((r) => setTimeout(r, { 1: 200, 2: 100, 3: 0 }[String(msg)]));
  console.log(JSON.stringify({ processed: String(msg) }));
}
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', async (msg) => {
    queue.push(msg);
    await processMessage(queue.shift());
  });
});
"""
    )
    with node_script(source) as node:
        wire, report = open_ws(node.url, "/")
        with wire:
            assert report["status"] == 101
            # One write: the three messages reach ws in one read, in order 1, 2, 3.
            wire.send(b"".join(masked(TEXT, s) for s in (b"1", b"2", b"3")))
            wait_until(lambda: len(node.records()) == 3, 10, "three messages processed")
    assert [r["processed"] for r in node.records()] == ["3", "2", "1"]


def test_e24_broadcast_buffers_without_bound_for_a_client_that_does_not_read():
    """E24 (Q14): readyState === OPEN stays true while ws buffers everything for a stalled peer."""
    source = (
        SERVER
        + """
const chunk = Buffer.alloc(256 * 1024, 120);
let sent = 0;
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  const timer = setInterval(() => {  // 200 broadcasts of 256 KiB: 50 MiB in all
    wss.clients.forEach((client) => {  // the seed's broadcast loop
      if (client.readyState === WebSocket.OPEN) {
        client.send(chunk);
      }
    });
    if (++sent === 200) {
      clearInterval(timer);
      console.log(JSON.stringify({ bufferedAmount: ws.bufferedAmount, open: ws.readyState === 1 }));
    }
  }, 2);
});
"""
    )
    with node_script(source) as node:
        stalled, report = open_ws(node.url, "/")  # reads nothing after the handshake
        with stalled:
            assert report["status"] == 101
            wait_until(lambda: bool(node.records()), 20, "200 broadcasts")
    record = node.records()[0]
    # The kernel's socket buffers hold a few MiB; everything else waits in the Node process.
    assert record["open"] and record["bufferedAmount"] > 30 * 2**20, record
