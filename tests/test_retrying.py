"""A worker loop's failures in a row: the first (and any new one) with its traceback,
repeats in one line, waits that grow to a cap, and a word when it works again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.retrying import MAX_WAIT, Failures


def test_an_outage_logs_one_traceback_then_one_line_per_try_waiting_longer(
        caplog: pytest.LogCaptureFixture) -> None:
    failures = Failures(logging.getLogger("groundwork.test"), "processing round")
    down = ConnectionRefusedError(111, "Connection refused")
    with caplog.at_level(logging.INFO, logger="groundwork.test"):
        waits = [failures.failed(down) for _ in range(7)]
        failures.succeeded()
    assert waits == [1, 2, 4, 8, MAX_WAIT, MAX_WAIT, MAX_WAIT]
    records = caplog.records
    assert [r.exc_info is not None for r in records[:7]] == [True] + [False] * 6
    assert records[0].getMessage() == "processing round failed; next try in 1 s"
    assert records[1].getMessage() == ("processing round failed again (2 in a row): "
                                       "ConnectionRefusedError: [Errno 111] Connection "
                                       "refused; next try in 2 s")
    assert records[7].getMessage() == "processing round works again after 7 failed tries"
    assert failures.in_a_row == 0


def test_a_different_failure_gets_its_own_traceback(caplog: pytest.LogCaptureFixture) -> None:
    failures = Failures(logging.getLogger("groundwork.test"), "delivery round")
    with caplog.at_level(logging.INFO, logger="groundwork.test"):
        failures.failed(ConnectionRefusedError(111, "Connection refused"))
        failures.failed(ValueError("a bug"))
    assert [r.exc_info is not None for r in caplog.records] == [True, True]


def test_success_without_failures_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    failures = Failures(logging.getLogger("groundwork.test"), "delivery round")
    with caplog.at_level(logging.INFO, logger="groundwork.test"):
        failures.succeeded()
    assert caplog.records == []


async def test_the_wait_after_a_failure_ends_when_the_loop_is_told_to_stop() -> None:
    failures = Failures(logging.getLogger("groundwork.test"), "processing round")
    for _ in range(5):
        failures.failed(RuntimeError("down"))  # the next wait is the longest
    stopping = asyncio.Event()
    stopping.set()
    async with asyncio.timeout(5):  # far less than MAX_WAIT: it did not wait it out
        await failures.wait_after(RuntimeError("down"), stopping)
