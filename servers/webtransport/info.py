"""``GET /webtransport``: where the WebTransport server listens and the certificate to pin.

A page cannot trust a self-signed certificate any other way than ``serverCertificateHashes``,
so it learns the hash from the server it was loaded from (as the Python client does). That makes
the pin as trustworthy as this HTTP answer: right for a lab on loopback, not for the Internet.
404 ``webtransport_off`` when the server runs without it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from feed.wire.contract import WEBTRANSPORT_INFO_PATH
from servers.state import JSON, error_body

router = APIRouter()


@router.get(WEBTRANSPORT_INFO_PATH)
async def webtransport_info(request: Request) -> JSON:
    """URL, port, certificate SHA-256 (hex) and the datagram counters."""
    server = getattr(request.app.state, "webtransport", None)
    if server is None:
        return JSON(error_body("webtransport_off", "started without --webtransport-port"), 404)
    return JSON(server.info(), headers={"Cache-Control": "no-store"})
