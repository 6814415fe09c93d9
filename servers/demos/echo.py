"""Echo: ``WS /echo`` returns every frame unchanged; ``POST /echo`` returns the request body.

The WebSocket endpoint is what Autobahn|Testsuite fuzzes (``conformance/``) and, with the HTTP
endpoint, what the round-trip experiment (``experiments/rtt.py``) measures. Text stays text and
binary stays binary; the frame size limit is the server's ``ws_max_size`` (uvicorn option, set from
``PUSHLAB_WS_MAX_MESSAGE_BYTES`` by ``pushlab serve``), above which the server closes with 1009.
``POST /echo`` has the same cap: a larger body is answered 413 ``payload_too_large`` without being
read (``Content-Length``) or as soon as the bytes read pass it (chunked).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from servers.state import read_limited, state

router = APIRouter()


@router.websocket("/echo")
async def ws_echo(websocket: WebSocket) -> None:
    """Send back each message as it came, until the client closes."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message.get("bytes") or b"")
    except WebSocketDisconnect:
        # The peer closed (or failed the connection) while its echo was on the way: normal here,
        # Autobahn does it on purpose, so it must not be logged as an application error.
        return


@router.post("/echo")
async def http_echo(request: Request) -> Response:
    """The body back with the request's content type (``application/octet-stream`` if none)."""
    body = await read_limited(request, state(request).settings.ws_max_message_bytes)
    media = request.headers.get("content-type", "application/octet-stream")
    return Response(body, media_type=media)
