"""How a worker loop that must outlive its failures reports them and waits after them.

The processing and delivery loops catch whatever a round raises and try again: the
items stay claimed or queued, and a lease brings them back. A database outage makes
every round fail the same way, and the loops used to log a full traceback each second,
for as long as it lasted. Now the first failure in a row is logged with its traceback,
and so is any that differs from the one before it; a repeat is one line. The wait
between tries doubles from one second up to a cap, and the first round that goes
through again says so.
"""

from __future__ import annotations

import asyncio
import logging

FIRST_WAIT = 1.0
MAX_WAIT = 15.0  # at most this long between tries, so a recovery is noticed soon


class Failures:
    """One loop's failures in a row (see the module's docstring)."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what  # "processing round", "delivery round"
        self.in_a_row = 0
        self._last = ""

    def failed(self, exc: Exception) -> float:
        """Log this failure; returns how long to wait before the next try."""
        self.in_a_row += 1
        wait = min(MAX_WAIT, FIRST_WAIT * 2 ** (self.in_a_row - 1))
        said = f"{type(exc).__name__}: {exc}"
        if said != self._last:
            self.log.error("%s failed; next try in %.0f s", self.what, wait, exc_info=exc)
        else:
            self.log.warning("%s failed again (%d in a row): %s; next try in %.0f s",
                             self.what, self.in_a_row, said[:200], wait)
        self._last = said
        return wait

    def succeeded(self) -> None:
        if self.in_a_row:
            self.log.warning("%s works again after %d failed tries", self.what, self.in_a_row)
        self.in_a_row = 0
        self._last = ""

    async def wait_after(self, exc: Exception, stopping: asyncio.Event) -> None:
        """Log the failure, then wait before the next try, or until told to stop."""
        try:
            await asyncio.wait_for(stopping.wait(), timeout=self.failed(exc))
        except TimeoutError:
            pass
