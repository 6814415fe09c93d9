"""The one name rule: topics, users, rooms and boards are 1..N of ``A-Z a-z 0-9 _ . : -``.

Matched with ``fullmatch``: a ``^...$`` pattern with ``re.match`` also accepts a final newline
(``$`` matches before a trailing ``\\n``), which is how ``abc\\n`` used to pass as a topic.
"""

from __future__ import annotations

import re

ALPHABET = "A-Z a-z 0-9 _ . : -"
TOPIC_MAX_LEN = 128
NAME_MAX_LEN = 64

_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def is_name(value: object, max_len: int = NAME_MAX_LEN) -> bool:
    """True when ``value`` is a string of 1..``max_len`` characters of :data:`ALPHABET`."""
    return (
        isinstance(value, str) and 0 < len(value) <= max_len and _NAME.fullmatch(value) is not None
    )


def rule(max_len: int = NAME_MAX_LEN) -> str:
    """The rule in words, for error details."""
    return f"1-{max_len} characters of {ALPHABET}"
