"""Settings from env and overrides; frozen; typos are errors."""

import dataclasses

import pytest

from feed.settings import Settings


def test_env_then_overrides():
    """PUSHLAB_* variables apply, explicit overrides win, None overrides are ignored."""
    s = Settings.from_env(
        {"PUSHLAB_HISTORY": "50", "PUSHLAB_ADMIN": "on", "HOME": "/x"}, history=None, port=9
    )
    assert (s.history, s.admin, s.port) == (50, True, 9)


def test_unknown_variable_is_an_error():
    """A misspelt setting fails loudly instead of silently keeping the default."""
    with pytest.raises(ValueError, match="PUSHLAB_HISTROY"):
        Settings.from_env({"PUSHLAB_HISTROY": "5"})


@pytest.mark.parametrize(
    "key,value",
    [
        ("PUSHLAB_HISTORY", "ten"),
        ("PUSHLAB_ADMIN", "maybe"),
        ("PUSHLAB_HISTORY", "0"),
        ("PUSHLAB_TICKER_RATE", "-1"),
    ],
)
def test_bad_values(key, value):
    """Unparseable or out-of-range values are refused with the variable named."""
    with pytest.raises(ValueError):
        Settings.from_env({key: value})


def test_frozen_and_serialisable():
    """Settings cannot be mutated in place and dump to a plain dict for metadata."""
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    assert s.as_dict()["history"] == 10_000
    assert s.replace(port=5).port == 5


def test_long_poll_timeout_within_cap():
    """The default long-poll timeout may not exceed its cap."""
    with pytest.raises(ValueError):
        Settings(long_poll_timeout_s=40, long_poll_max_timeout_s=30)


def test_sse_choices_from_env_and_flags(monkeypatch):
    """PUSHLAB_SSE_DIRECT / PUSHLAB_SSE_IMPL and `pushlab serve` flags reach Settings; an unknown
    implementation is refused."""
    import argparse

    from servers.cli import add_arguments, settings_from_args

    # No PUSHLAB_* of the environment leaks in: tests/conftest.py drops them all.
    s = Settings.from_env({"PUSHLAB_SSE_DIRECT": "off", "PUSHLAB_SSE_IMPL": "pushlab"})
    assert (s.sse_direct, s.sse_impl) == (False, "pushlab")
    assert (Settings().sse_direct, Settings().sse_impl) == (True, "sse-starlette")
    with pytest.raises(ValueError, match="sse_impl"):
        Settings.from_env({"PUSHLAB_SSE_IMPL": "sse"})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--no-sse-direct", "--sse-impl", "pushlab"])
    assert (settings_from_args(args).sse_direct, settings_from_args(args).sse_impl) == (
        False,
        "pushlab",
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--sse-impl", "other"])


def test_the_test_suites_variables_are_not_settings():
    """PUSHLAB_TEST_* (the suite's wait scale, long forms) is ignored; any other unknown
    PUSHLAB_* name is still refused as a typo."""
    s = Settings.from_env({"PUSHLAB_TEST_MS": "3", "PUSHLAB_TEST_FULL": "1"})
    assert s == Settings()
    with pytest.raises(ValueError, match="unknown setting PUSHLAB_TESTMS"):
        Settings.from_env({"PUSHLAB_TESTMS": "3"})
