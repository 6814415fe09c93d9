"""The history ring buffer: reads, caps, cursors and gap signals."""

import pytest

from feed.codec import encode_event
from feed.history import History


def filled(n: int, capacity: int) -> History:
    h = History("t", capacity)
    for seq in range(1, n + 1):
        h.append(encode_event("t", seq, seq, {"i": seq}))
    return h


def test_read_from_cursor():
    """since=N gives the events after N, in order."""
    batch = filled(10, 100).read(7, 100)
    assert [e.seq for e in batch.events] == [8, 9, 10]
    assert (batch.cursor, batch.more, batch.gap) == (10, False, None)


def test_limit_sets_more():
    """A read that hits its limit says more are waiting and where to continue."""
    batch = filled(10, 100).read(0, 4)
    assert [e.seq for e in batch.events] == [1, 2, 3, 4]
    assert (batch.cursor, batch.more) == (4, True)


def test_since_none_means_from_now():
    """No cursor: nothing old, and the cursor is the newest seq."""
    batch = filled(5, 100).read(None, 10)
    assert (batch.events, batch.cursor, batch.gap) == ([], 5, None)


def test_caught_up_is_empty_without_gap():
    """A cursor at the head is a valid, empty read."""
    batch = filled(5, 100).read(5, 10)
    assert (batch.events, batch.cursor, batch.gap) == ([], 5, None)


def test_ring_keeps_only_capacity():
    """Old events fall out; oldest_seq moves."""
    h = filled(25, 10)
    assert (len(h), h.oldest_seq, h.last_seq) == (10, 16, 25)


def test_expired_cursor_is_signalled():
    """A cursor older than the history yields an expired gap and the oldest retained events."""
    batch = filled(25, 10).read(3, 100)
    assert batch.gap is not None
    assert (batch.gap.reason, batch.gap.oldest_seq, batch.gap.resume_after) == ("expired", 16, 15)
    assert [e.seq for e in batch.events] == list(range(16, 26))


def test_cursor_just_before_oldest_is_not_a_gap():
    """since = oldest-1 loses nothing."""
    batch = filled(25, 10).read(15, 100)
    assert batch.gap is None and batch.events[0].seq == 16


def test_cursor_ahead_is_signalled():
    """A cursor newer than the newest event is reported as ahead."""
    batch = filled(5, 10).read(50, 100)
    assert batch.gap is not None and batch.gap.reason == "ahead"
    assert [e.seq for e in batch.events] == [1, 2, 3, 4, 5]


def test_cursor_ahead_on_empty_topic():
    """An empty topic with a cursor > 0 says ahead and resumes from 0."""
    batch = History("t", 10).read(3, 10)
    assert batch.gap is not None and (batch.gap.reason, batch.gap.resume_after) == ("ahead", 0)


def test_out_of_order_append_is_refused():
    """Seqs must be gapless: the history refuses a jump."""
    h = filled(3, 10)
    with pytest.raises(ValueError):
        h.append(encode_event("t", 5, 5, None))


def test_capacity_must_be_positive():
    """A zero-size history is a configuration error."""
    with pytest.raises(ValueError):
        History("t", 0)
