"""The browser side: the dashboard (``GET /``), the whiteboard page and the JS client modules.

Pages and modules are static files in ``clients/web/`` (ES modules, no build step), served under
``/web``. ``POST /admin/ticker`` lets the dashboard change the running ticker's rate and payload
size; like ``/admin/kick`` it is an admin route (:mod:`servers.policy`: off unless ``admin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

from servers.state import JSON, error_body, state

WEB_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"
MAX_TICKER_RATE = 10_000.0

router = APIRouter()


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    """Four live panels, one per transport."""
    return FileResponse(WEB_DIR / "dashboard.html")


@router.get("/whiteboard", include_in_schema=False)
async def whiteboard_page() -> FileResponse:
    """The collaborative whiteboard (``?board=B&user=U&transport=ws|sse``)."""
    return FileResponse(WEB_DIR / "whiteboard.html")


@router.get("/admin/ticker")
async def get_ticker(request: Request) -> JSON:
    """The running ticker's topic, rate and payload size."""
    st = state(request)
    if st.ticker is None:
        return JSON(error_body("no_ticker", "the server runs without a ticker"), status_code=404)
    return JSON({"topic": st.settings.ticker_topic, "rate": st.ticker.rate, "size": st.ticker.size})


@router.post("/admin/ticker")
async def set_ticker(
    request: Request,
    rate: Annotated[float | None, Query(ge=0, le=MAX_TICKER_RATE)] = None,
    size: Annotated[int | None, Query(ge=0)] = None,
) -> JSON:
    """Change the ticker live (rate 0 pauses it). Admin only (servers/policy.py)."""
    st = state(request)
    if st.ticker is None:
        return JSON(error_body("no_ticker", "the server runs without a ticker"), status_code=404)
    if size is not None and size > st.settings.max_publish_bytes:
        detail = f"size must be <= max_publish_bytes ({st.settings.max_publish_bytes})"
        return JSON(error_body("payload_too_large", detail), status_code=413)
    st.ticker.update(rate=rate, size=size)
    return JSON({"topic": st.settings.ticker_topic, "rate": st.ticker.rate, "size": st.ticker.size})


def install(app: FastAPI) -> None:
    """Add the pages, the ticker control and the static JS modules to ``app``."""
    app.include_router(router)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
