"""feed.wire.contract: the constants are well-formed and are what the server and clients use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from feed.wire import contract
from feed.wire.http1 import parse_response_head, response_head
from feed.wire.ws import CLOSE, close_payload as ws_close_payload, decode_frame, encode_frame

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2


def test_transports_and_paths_agree() -> None:
    """Every transport has exactly one path, and paths are distinct."""
    assert set(contract.PATHS) == set(contract.TRANSPORTS)
    assert len(set(contract.PATHS.values())) == len(contract.PATHS)


def test_the_server_serves_every_contract_path() -> None:
    """The server's access policy (checked against its routes when the app is built) covers each
    transport's path and the publish path."""
    from servers.policy import POLICY

    paths = {path for _method, path in POLICY}
    assert {*contract.PATHS.values(), contract.PUBLISH_PATH} <= paths


def test_subprotocols_and_headers_are_tokens() -> None:
    """Subprotocol names and header field names are RFC 9110 tokens (else peers refuse them)."""
    for name in (*contract.SUBPROTOCOLS, contract.CURSOR_HEADER, contract.LAST_EVENT_ID):
        assert TOKEN.fullmatch(name), name
    assert contract.SUBPROTOCOL_JSON in contract.SUBPROTOCOLS
    assert contract.SUBPROTOCOL_MSGPACK in contract.SUBPROTOCOLS


def test_cursor_header_survives_a_head_round_trip() -> None:
    """Parsers key on the lower-cased name; the value comes back unchanged."""
    head = parse_response_head(response_head(204, "No Content", {contract.CURSOR_HEADER: "42"}))
    assert head.headers[contract.CURSOR_HEADER.lower()] == "42"


CODES = {k: v for k, v in vars(contract).items() if k.startswith("CLOSE_")}


@pytest.mark.parametrize("name", sorted(CODES))
def test_close_codes_may_be_sent_and_round_trip(name: str) -> None:
    """Each code is one an endpoint may send (RFC 6455 §7.4: not 1004-1006, 1015) and decodes
    from a close frame."""
    code = CODES[name]
    assert 1000 <= code <= 1014 or 4000 <= code <= 4999
    assert code not in (1004, 1005, 1006)
    frame, _ = decode_frame(encode_frame(CLOSE, ws_close_payload(code, name))) or (None, 0)
    assert frame is not None and (frame.close_code, frame.close_reason) == (code, name)


def test_clients_and_servers_use_the_contract_values() -> None:
    """No side keeps its own copy: the names the two sides import are the contract's objects."""
    import clients.long_poll
    import clients.websocket
    import servers.long_poll
    import servers.websocket.endpoint
    import servers.websocket.session

    assert clients.websocket.SUBPROTOCOL_JSON is contract.SUBPROTOCOL_JSON
    assert servers.websocket.endpoint.SUBPROTOCOL_MSGPACK is contract.SUBPROTOCOL_MSGPACK
    assert clients.long_poll.CURSOR_HEADER is servers.long_poll.CURSOR_HEADER
    assert servers.websocket.session.TOKEN_EXPIRED is contract.TOKEN_EXPIRED


def test_the_locustfiles_copy_of_the_cursor_header_agrees() -> None:
    """The gevent drivers keep feed (and its asyncio broker) out, so they spell the header again:
    read from source, since importing a locustfile would bring Locust into the test process."""

    source = (Path(__file__).parents[2] / "experiments/locustfiles/_polling.py").read_text()
    found = re.search(r'^CURSOR_HEADER = "([^"]+)"$', source, re.MULTILINE)
    assert found is not None and found.group(1) == contract.CURSOR_HEADER
    assert "from feed" not in source
