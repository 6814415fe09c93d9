"""In-process app for finite answers (httpx ASGITransport buffers whole bodies)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from feed.settings import Settings
from servers.app import create_app


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to a fresh app, lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client
