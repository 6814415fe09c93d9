"""experiments/tls.py: the cluster's local CA and server certificate."""

from __future__ import annotations

import socket
import ssl
import threading

from experiments.tls import make_tls


def test_the_chain_verifies_under_x509_strict(tmp_path):
    """A client with VERIFY_X509_STRICT (Python 3.13's default) accepts the server's chain: the
    certificates carry the key identifiers strict verification requires."""
    files = make_tls(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    client_ctx = ssl.create_default_context(cafile=str(files.ca))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve_one() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.recv(2) == b"ok"
    finally:
        thread.join(5)
        listener.close()
    assert not errors, errors
