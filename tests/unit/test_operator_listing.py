"""keepvip.operator.listing: the webhook's reviews share listings, each one fetched after they arrived."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from keepvip.operator.listing import SharedListing


class Fetches:
    """A fetch that counts, and that the test can hold in flight."""

    def __init__(self) -> None:
        self.count = 0
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def __call__(self) -> int:
        self.count += 1
        self.started.set()
        self.hold.wait(10)
        return self.count


def test_calls_one_after_another_each_get_their_own_fresh_fetch() -> None:
    fetches = Fetches()
    listing = SharedListing(fetches)
    assert [listing.get(), listing.get(), listing.get()] == [1, 2, 3]
    assert listing.fetches == 3


def test_calls_arriving_during_a_fetch_share_the_next_one_never_the_running_one() -> None:
    """The running fetch began before they arrived: it may miss what they must see."""
    fetches = Fetches()
    listing = SharedListing(fetches)
    fetches.hold.clear()
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(listing.get)
        assert fetches.started.wait(10)
        late = [pool.submit(listing.get) for _ in range(10)]
        while listing.calls < 11:  # all ten have asked while the first fetch is held
            time.sleep(0.01)
        assert listing.fetches == 1
        fetches.hold.set()
        assert first.result(10) == 1
        assert [f.result(10) for f in late] == [2] * 10
    assert listing.fetches == 2


def test_a_failed_fetch_fails_every_call_that_waited_for_it_and_the_next_call_fetches_again() -> None:
    calls = []

    def fetch() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("API server unreachable")
        return len(calls)

    listing = SharedListing(fetch)
    with pytest.raises(ConnectionError):
        listing.get()
    assert listing.get() == 2


def test_a_review_whose_listing_timed_out_joins_the_next_one_until_its_deadline() -> None:
    answers: list[int | Exception] = [TimeoutError("read timed out"), TimeoutError("read timed out"), 3]

    def fetch() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert SharedListing(fetch).get_retrying(30.0, (TimeoutError,)) == 3
    answers[:] = [TimeoutError("read timed out")] * 3
    with pytest.raises(TimeoutError):
        SharedListing(fetch).get_retrying(0.0, (TimeoutError,))
    assert len(answers) == 2  # a deadline already passed: one try, no more
    with pytest.raises(TimeoutError):
        SharedListing(fetch).get_retrying(30.0, (ConnectionError,))  # not an error to retry on
