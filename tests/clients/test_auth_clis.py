"""The command-line clients with auth on: ``pushlab token`` and ``pushlab publish --token``."""

from __future__ import annotations

import os

import httpx
import pytest

from pushlab.cli import main
from servers.auth import issue, verify


@pytest.fixture
def auth_server(serve, settings):
    return serve(settings.replace(auth=True, admin=True))


def test_token_command_signs_an_admin_token(auth_server, capsys, monkeypatch):
    """``pushlab token root --admin`` prints a token the admin routes accept."""
    for name in [k for k in os.environ if k.startswith("PUSHLAB_")]:  # e.g. PUSHLAB_TEST_MS
        monkeypatch.delenv(name)
    monkeypatch.setenv("PUSHLAB_AUTH_SECRET", auth_server.settings.auth_secret)
    assert main(["token", "root", "--admin"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify(auth_server.settings, token).admin
    r = httpx.post(
        f"{auth_server.url}/admin/kick",
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    assert r.status_code == 200


def test_publish_command_sends_its_token(auth_server, capsys):
    """Without --token the server answers 401 (exit 1); with it the event is published."""
    args = ["publish", "--url", auth_server.url, "--topic", "t", '{"x": 1}']
    assert main(args) == 1
    assert '"unauthorized"' in capsys.readouterr().out
    token, _ = issue(auth_server.settings, "ann")
    assert main([*args, "--token", token]) == 0
    assert '"seq":1' in capsys.readouterr().out
