"""The command-line clients with auth on: ``pushlab token`` and ``pushlab publish --token``."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from pushlab.cli import main
from servers.auth import issue, verify
from servers.launch import child_env


@pytest.fixture
def auth_server(serve, settings):
    return serve(settings.replace(auth=True, admin=True))


def test_token_command_signs_an_admin_token(auth_server, capsys, monkeypatch):
    """``pushlab token root --admin`` prints a token the admin routes accept."""
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


def test_chat_command_logs_in_as_its_token_user(auth_server):
    """``pushlab chat --token`` is welcomed as the token's user; without a token it is refused."""
    chat = [sys.executable, "-m", "pushlab", "chat", "--url", auth_server.url]
    env = child_env()  # the lab's one policy (the suite runs with no PUSHLAB_* of its own)
    token, _ = issue(auth_server.settings, "ann")
    done = subprocess.run(
        [*chat, "--token", token],
        input="/join r\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert "# welcome ann" in done.stdout, done.stderr
    refused = subprocess.run(
        [*chat, "--user", "ann"], input="", capture_output=True, text=True, env=env, timeout=30
    )
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
