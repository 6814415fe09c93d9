"""The one table of the hot routes: the feed transports, served bare by PushlabApp.

Each entry is registered once, by :func:`install`: as a Starlette route (what an app with added
middleware, the access policy check and the route listing see) and in PushlabApp's bare dispatch,
which is derived from this table and nothing else (:class:`servers.fastpath.bare.PushlabApp`).
The other routes (publish, auth, metrics, the demos) are ordinary FastAPI routers.
"""

from __future__ import annotations

from servers import long_poll, short_poll
from servers.fastpath.bare import Bare, PushlabApp
from servers.sse import endpoint as sse
from servers.stream import endpoint as stream
from servers.websocket import endpoint as websocket

BARE = (
    Bare("/poll", short_poll.endpoint),
    Bare("/long-poll", long_poll.endpoint),
    Bare("/sse", sse.endpoint),
    Bare(websocket.PATH, websocket.endpoint, websocket=True),
    Bare("/stream", stream.endpoint),
)


def install(app: PushlabApp) -> None:
    """Route and serve bare every entry of :data:`BARE`."""
    app.serve_bare(BARE)
