"""GET /poll: batches, cursors, caps and bad cursors."""

import pytest


async def fill(client, n, topic="t"):
    for i in range(n):
        await client.post("/publish", params={"topic": topic}, json=i)


async def test_poll_batch_and_cursor(app_client):
    """Events after since, the next cursor, and no gap."""
    await fill(app_client, 5)
    body = (await app_client.get("/poll", params={"topic": "t", "since": 2})).json()
    assert [e["seq"] for e in body["events"]] == [3, 4, 5]
    assert (body["cursor"], body["more"], body["recovered"], body["gap"]) == (5, False, True, None)


async def test_limit_and_server_cap(app_client, settings):
    """limit bounds the batch and sets more; the server cap bounds limit."""
    await fill(app_client, 5)
    body = (await app_client.get("/poll", params={"topic": "t", "since": 0, "limit": 2})).json()
    assert ([e["seq"] for e in body["events"]], body["more"], body["cursor"]) == ([1, 2], True, 2)


async def test_omitted_since_starts_now(app_client):
    """No since: nothing old, and the cursor to continue from."""
    await fill(app_client, 3)
    body = (await app_client.get("/poll", params={"topic": "t"})).json()
    assert (body["events"], body["cursor"]) == ([], 3)


async def test_unknown_topic_is_empty(app_client):
    """Polling a topic nobody published to answers empty, not 404."""
    body = (await app_client.get("/poll", params={"topic": "never", "since": 0})).json()
    assert (body["events"], body["cursor"], body["last_seq"]) == ([], 0, 0)


async def test_expired_cursor_reports_gap(serve, settings):
    """Polling from before the history answers recovered=false with the oldest seq."""
    import httpx

    server = serve(settings.replace(history=3))
    async with httpx.AsyncClient(base_url=server.url) as c:
        for i in range(6):
            await c.post("/publish", params={"topic": "t"}, json=i)
        body = (await c.get("/poll", params={"topic": "t", "since": 1})).json()
    assert body["recovered"] is False
    assert body["gap"]["oldest_seq"] == 4 and body["gap"]["reason"] == "expired"
    assert [e["seq"] for e in body["events"]] == [4, 5, 6]


@pytest.mark.parametrize("since", ["-1", "abc", "1.5", "", "99999999999999999999"])
async def test_bad_cursor_is_400(app_client, since):
    """Cursors that are not non-negative integers get 400 bad_cursor."""
    r = await app_client.get("/poll", params={"topic": "t", "since": since})
    assert (r.status_code, r.json()["error"]) == (400, "bad_cursor")


@pytest.mark.parametrize("params", [{"topic": "t", "limit": "0"}, {"topic": "t", "limit": "x"}, {}])
async def test_bad_parameters_are_422(app_client, params):
    """Wrongly typed or missing parameters get 422 with the field named."""
    r = await app_client.get("/poll", params=params)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_parameter")


@pytest.mark.parametrize("path", ["/poll", "/long-poll"])
async def test_only_get_and_head(app_client, path):
    """The bare poll endpoints answer like a GET route: 405 with Allow, HEAD without a body."""
    r = await app_client.post(path, params={"topic": "t"})
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
    r = await app_client.head("/poll", params={"topic": "t"})
    assert r.status_code == 200 and r.content == b""
