"""asyncpg connections that return to tortoise's pool without a reset round trip.

tortoise takes a pooled connection for each statement outside a transaction and for
each transaction, and asyncpg resets a connection as it goes back: one more round trip,
four statements (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`),
each time. Logged on PostgreSQL during a processing bench, that reset was one in seven
of the statements the bot sent: two per processed batch (its claim, its transaction) and
one per group commit of webhooks.

It clears session state, and we keep none: no advisory locks, no cursors outside a
transaction, no LISTEN, no SET outside one (the statements are tortoise's and
bot/services/sql.py's). What does matter, a transaction left open, asyncpg still ends
on release whatever this says: it rolls back before it asks for the reset query.
"""

from __future__ import annotations

import asyncpg


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        """Nothing to send: the bot keeps no session state (see the module's docstring)."""
        return ""
