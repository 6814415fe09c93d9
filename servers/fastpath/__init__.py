"""Everything that reaches into private internals of the pinned uvicorn, h11, websockets,
wsproto, Starlette, FastAPI, sse-starlette, hypercorn and aioquic (and asyncio.Event's
waiters), in one place.

Each internal touched here is pinned by tests/servers/test_fastpath_pins.py (aioquic's by
tests/servers/test_quic_pins.py), which fails loudly
when an upgrade renames, removes or reshapes it; the rest of servers/ uses these modules and the
libraries' public APIs only.
"""
