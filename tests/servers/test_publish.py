"""POST /publish: good bodies get a seq; bad ones a 4xx and publish nothing."""

import pytest


async def last_seq(client, topic="t"):
    r = await client.get("/poll", params={"topic": topic})
    return r.json()["last_seq"]


async def test_publish_assigns_gapless_seqs(app_client):
    """Each publish answers its topic and the next seq."""
    seqs = []
    for i in range(3):
        r = await app_client.post("/publish", params={"topic": "t"}, json={"i": i})
        assert r.status_code == 200
        seqs.append(r.json()["seq"])
    assert seqs == [1, 2, 3]


@pytest.mark.parametrize(
    "params,body,status,code",
    [
        ({"topic": "t"}, b"{bad", 400, "invalid_json"),
        ({"topic": "t"}, b"", 400, "invalid_json"),
        ({"topic": "bad topic"}, b"{}", 400, "bad_topic"),
        ({}, b"{}", 422, "invalid_parameter"),
    ],
)
async def test_bad_publish_is_refused(app_client, params, body, status, code):
    """Malformed JSON, bad topics and missing topics get a JSON error and publish nothing."""
    await app_client.post("/publish", params={"topic": "t"}, json=1)
    r = await app_client.post("/publish", params=params, content=body)
    assert (r.status_code, r.json()["error"]) == (status, code)
    assert await last_seq(app_client) == 1


async def test_oversized_body_refused_by_length(app_client, settings):
    """A Content-Length over the limit is refused with 413 before reading."""
    big = b'"' + b"x" * settings.max_publish_bytes + b'"'
    r = await app_client.post("/publish", params={"topic": "t"}, content=big)
    assert (r.status_code, r.json()["error"]) == (413, "payload_too_large")
    assert await last_seq(app_client) == 0


async def test_oversized_chunked_body_refused(app_client, settings):
    """A chunked body (no Content-Length) is cut off once it passes the limit."""

    async def chunks():
        for _ in range(settings.max_publish_bytes // 1024 + 2):
            yield b" " * 1024

    r = await app_client.post("/publish", params={"topic": "t"}, content=chunks())
    assert r.status_code == 413
    assert await last_seq(app_client) == 0


async def test_healthz(app_client):
    """Health answers with broker counters."""
    r = await app_client.get("/healthz")
    assert r.status_code == 200 and r.json()["broker"]["backend"] == "memory"


async def test_admin_kick_can_be_disabled(settings):
    """With admin off, /admin/kick answers 403."""
    import httpx

    from servers.app import create_app

    app = create_app(settings.replace(admin=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            r = await c.post("/admin/kick")
    assert (r.status_code, r.json()["error"]) == (403, "admin_disabled")
