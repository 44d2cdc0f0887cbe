"""The delivery worker: the only code that calls `transport.send`.

Each round it claims due outbox rows (direct answers first), asks the policy
gate about every one, paces what may go, sends concurrently, and records the
outcomes together. Rows are claimed with a lease, so a worker that dies releases them and
another delivers them (at least once; the outbox id is the idempotency key).

Two rounds are in flight at most: while one sends, the next is claimed and decided,
so the send slots never wait for the database (one round at a time left a gap per
round and reached about 600-800 of 1,000 msg/s). A process killed mid-send therefore
sends again at most the rows of those two rounds (`max_rows_in_flight`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock
from bot.logs import bind_request_id
from bot.messages import SendErrorKind, SendResult
from bot.metrics import Metrics
from bot.pacing import Pacer
from bot.policy.gate import DROP, FOLD, HOLD, SEND, PolicyGate
from bot.retrying import Failures
from bot.services.outbox import DIRECT_KINDS, Claim, OutboxService, Outcomes
from bot.transports.base import Transport

log = logging.getLogger("groundwork.delivery")

MAX_TRANSIENT_ATTEMPTS = 8
ROOM_ACTION = "room_action"  # an outbox row that is a moderation action, not a message
# A round claims about this many seconds of sends at the fastest transport's rate: long
# enough that claiming, deciding and recording cost little per message, short enough
# that a direct answer queued behind a broadcast waits at most two rounds.
ROUND_SECONDS = 0.25
MIN_BATCH, MAX_BATCH = 16, 1000
ROUNDS_IN_FLIGHT = 2
# Called when a platform says the user stopped this kind of message.
UserStoppedHook = Callable[[Claim, SendResult], Awaitable[None]]
# Carries out a room action a feature owns (WhatsApp team groups) and records its outcome.
RoomPerformer = Callable[[Claim, datetime], Awaitable[None]]


def batch_for_rate(rate_per_second: float) -> int:
    """Rows a round claims when the fastest transport sends `rate_per_second`."""
    return max(MIN_BATCH, min(MAX_BATCH, math.ceil(rate_per_second * ROUND_SECONDS)))


def max_rows_in_flight(rate_per_second: float) -> int:
    """Rows a worker may have sent but not yet recorded: what a crash can send twice."""
    return ROUNDS_IN_FLIGHT * batch_for_rate(rate_per_second)


# What a room action row asks of the transport: the capability it needs, and the call
# (the transport is Any: these methods exist only on transports with rooms).
RoomCall = Callable[[Any, str, Mapping[str, Any]], Awaitable[bool]]
ROOM_ACTIONS: dict[str, tuple[str, RoomCall]] = {
    "delete": ("delete_message", lambda t, room, a: t.delete_message(room, a["message_id"])),
    "restrict": ("restrict_member", lambda t, room, a: t.restrict_member(
        room, a["user"], datetime.fromisoformat(a["until"]))),
    "unrestrict": ("restrict_member", lambda t, room, a: t.unrestrict_member(room, a["user"])),
    "remove": ("remove_member", lambda t, room, a: t.remove_member(room, a["user"])),
    "unban": ("remove_member", lambda t, room, a: t.unban_member(room, a["user"])),
    "approve": ("approve_join", lambda t, room, a: t.approve_join(room, a["user"], True)),
    "decline": ("approve_join", lambda t, room, a: t.approve_join(room, a["user"], False)),
}


class DeliveryWorker:
    def __init__(self, outbox: OutboxService, gate: PolicyGate,
                 transports: Mapping[str, Transport], pacers: Mapping[str, Pacer],
                 clock: Clock, metrics: Metrics, on_user_stopped: UserStoppedHook,
                 batch_size: int | None = None, concurrency: int = 32) -> None:
        self.outbox = outbox
        self.gate = gate
        self.transports = transports
        self.pacers = pacers
        self.clock = clock
        self.metrics = metrics
        self.on_user_stopped = on_user_stopped
        self.room_performers: dict[str, RoomPerformer] = {}  # by action name
        self._batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    @property
    def batch_size(self) -> int:
        """Rows per round: as given, else scaled to the fastest transport's rate."""
        if self._batch_size is not None:
            return self._batch_size
        return batch_for_rate(max((p.rate for p in self.pacers.values()), default=0.0))

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until told to stop; sleeps until woken or until the next row is due.

        Claims the next round while the last one sends (at most ROUNDS_IN_FLIGHT), and
        lets the rounds in flight finish before it returns.
        """
        in_flight: deque[asyncio.Task[None]] = deque()
        failures = Failures(log, "delivery round")
        try:
            while not stopping.is_set():
                while in_flight and in_flight[0].done():
                    in_flight.popleft()
                try:
                    if len(in_flight) >= ROUNDS_IN_FLIGHT:
                        await in_flight.popleft()
                        continue
                    prepared = await self._prepare()
                    failures.succeeded()
                    if prepared is None:
                        await self._wait(stopping, in_flight[0] if in_flight else None)
                        continue
                    _, ready = prepared
                    if ready:
                        in_flight.append(asyncio.create_task(self._deliver_logged(ready)))
                except Exception as exc:  # keep delivering: a bad round must not stop it
                    await failures.wait_after(exc, stopping)
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _wait(self, stopping: asyncio.Event,
                    sending: asyncio.Task[None] | None = None) -> None:
        """Until woken, told to stop, the next row is due, or the round `sending` ends
        (its retries may be due, and it frees a place for the next round)."""
        self._wake.clear()
        due = await self.outbox.next_due()
        timeout = 5.0
        if due is not None:
            timeout = min(timeout, max(0.05, (due - self.clock.now()).total_seconds()))
        waiters = [asyncio.ensure_future(self._wake.wait()),
                   asyncio.ensure_future(stopping.wait())]
        _, pending = await asyncio.wait([*waiters, *([sending] if sending else [])],
                                        timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            if task is not sending:
                task.cancel()

    async def deliver_due(self) -> int:
        """One whole round (claim, decide, send, record); returns how many rows it claimed."""
        prepared = await self._prepare()
        if prepared is None:
            return 0
        claimed, ready = prepared
        await self._deliver(ready)
        return claimed

    async def _prepare(self) -> tuple[int, list[Claim]] | None:
        """Claim due rows and decide each; returns (claimed, the rows to send now), or
        None when nothing is due. What may not go now is recorded before this returns."""
        now = self.clock.now()
        claims = await self.outbox.claim_rows(now, self.batch_size)
        if not claims:
            return None
        # The gate needs no addresses: look them up meanwhile.
        decisions, _ = await asyncio.gather(self.gate.decide(claims, now),
                                            self.outbox.address(claims))
        outcomes = Outcomes()
        ready: list[Claim] = []
        spaced = await self._shared_spacing(
            [c for c in claims if decisions[c.id].action == SEND], now)
        for claim in claims:
            decision = decisions[claim.id]
            if decision.action == DROP:
                self.metrics.suppressed.labels(decision.reason).inc()
                outcomes.add_finish(claim.id, "suppressed", decision.reason)
            elif decision.action == FOLD:
                self.metrics.held.labels(decision.reason).inc()
                outcomes.add_finish(claim.id, "folded", decision.reason)
            elif decision.action == HOLD:
                self.metrics.held.labels(decision.reason).inc()
                outcomes.add_retry(claim.id, decision.until or now, decision.reason,
                                   count_attempt=False)
            elif self._sendable(claim, outcomes, spaced.get(claim.id, 0.0)):
                ready.append(claim)
        await self.outbox.record(outcomes)
        return len(claims), ready

    async def _shared_spacing(self, claims: list[Claim], now: datetime) -> dict[int, float]:
        """On PostgreSQL other workers send too: the spacing per person and the window
        per room count their sends (each worker's pacer knows only its own)."""
        if not self.outbox.postgres:
            return {}
        waits: dict[int, float] = {}
        spacing = {name: p.per_recipient for name, p in self.pacers.items()}
        if any(spacing.values()):
            waits = await self.outbox.spacing_waits(claims, spacing, now)
        per_room = {name: p.per_room_per_minute for name, p in self.pacers.items()}
        if any(per_room.values()):
            for claim_id, wait in (await self.outbox.room_waits(claims, per_room, now)).items():
                waits[claim_id] = max(wait, waits.get(claim_id, 0.0))
        return waits

    def _sendable(self, claim: Claim, outcomes: Outcomes, spaced: float = 0.0) -> bool:
        """Checks before a send; a row that cannot go now is finished or rescheduled."""
        transport = self.transports.get(claim.transport)
        if transport is None:
            outcomes.add_finish(claim.id, "failed", f"{claim.transport} is not enabled")
            self.metrics.failed.labels(claim.transport, "transport disabled").inc()
            return False
        if not claim.to:
            outcomes.add_finish(claim.id, "failed", "no address on this transport")
            self.metrics.failed.labels(claim.transport, "no address").inc()
            return False
        if claim.kind == ROOM_ACTION:
            return True
        pacer = self.pacers[claim.transport]
        wait = max(spaced, pacer.not_before(claim.to, claim.room is not None,
                                            claim.kind not in DIRECT_KINDS))
        if wait > 0:
            outcomes.add_retry(claim.id, self.clock.now() + timedelta(seconds=wait),
                               "pacing", count_attempt=False)
            return False
        pacer.record(claim.to, claim.room is not None)
        return True

    async def _deliver_logged(self, ready: list[Claim]) -> None:
        try:
            await self._deliver(ready)
        except Exception:  # the rows stay claimed; their lease brings them back
            log.exception("delivery round failed")

    async def _deliver(self, ready: list[Claim]) -> None:
        """Reserve rate slots per transport for the whole round, send concurrently, then
        record every outcome at once."""
        by_transport: dict[str, list[Claim]] = {}
        for claim in ready:
            by_transport.setdefault(claim.transport, []).append(claim)
        outcomes = Outcomes()
        jobs = []
        for name, group in by_transport.items():
            messages = [c for c in group if c.kind != ROOM_ACTION]
            waits = await self.pacers[name].slots(len(messages)) if messages else []
            start = time.monotonic()
            jobs += [self._send(c, start + w, outcomes)
                     for c, w in zip(messages, waits, strict=True)]
            jobs += [self._room_action(self.transports[name], c, outcomes) for c in group
                     if c.kind == ROOM_ACTION]
        # One failing job must not cost the others their record (they would be re-sent).
        for failure in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(failure, BaseException):
                log.error("delivery job failed", exc_info=failure)
        await self.outbox.record(outcomes)

    async def _send(self, claim: Claim, slot: float, outcomes: Outcomes) -> None:
        bind_request_id(f"outbox-{claim.id}")  # a task of its own (gather): ends with it
        transport = self.transports[claim.transport]
        pacer = self.pacers[claim.transport]
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing: wait for this message's reserved send slot
        async with self._limit:
            started = time.perf_counter()
            try:
                result = await transport.send(claim.outbound())
            except Exception as exc:  # a transport must not raise, but never lose the row
                log.exception("transport %s raised on send", claim.transport)
                result = SendResult.failed(SendErrorKind.TRANSIENT, title=type(exc).__name__)
            self.metrics.send_seconds.labels(claim.transport).observe(
                time.perf_counter() - started)
        await self._record(claim, result, pacer, outcomes)

    async def _room_action(self, transport: Transport, claim: Claim,
                           outcomes: Outcomes) -> None:
        """A moderation action in a real room (delete, restrict, remove, approve/decline).

        Queued like a message so it survives a crash, and done by the one worker that
        talks to transports. A transport that cannot do it leaves it failed with the
        reason, and the moderation feature has already told the moderators.
        """
        bind_request_id(f"outbox-{claim.id}")  # a task of its own (gather): ends with it
        spec = claim.extra or {}
        action = spec.get("action", "")
        perform = self.room_performers.get(action)
        if perform is not None:
            await perform(claim, self.clock.now())
            return
        known = ROOM_ACTIONS.get(action)
        if known is None or not getattr(transport.capabilities, known[0], False):
            outcomes.add_finish(claim.id, "failed", f"{claim.transport} cannot {action}")
            return
        try:
            done = await known[1](transport, claim.to, spec)
        except Exception:  # a transport must not raise; the row records the failure
            log.exception("room action %s failed", action)
            done = False
        if done:
            outcomes.add_sent(claim.id, "", self.clock.now())
        else:
            outcomes.add_finish(claim.id, "failed", f"{action} refused by {claim.transport}")

    async def _record(self, claim: Claim, result: SendResult, pacer: Pacer,
                      outcomes: Outcomes) -> None:
        now = self.clock.now()
        if result.ok:
            outcomes.add_sent(claim.id, result.provider_message_id, now,
                              forget_address=claim.member_id is None and claim.room is None)
            self.metrics.delivered.labels(claim.transport, claim.kind).inc()
            return
        kind = result.error_kind or SendErrorKind.PERMANENT
        reason = f"{kind.value} {result.error_code or ''} {result.error_title}".strip()
        if kind is SendErrorKind.RATE_LIMITED:
            delay = result.retry_after or min(60.0, 2.0 ** min(claim.attempts, 6))
            await pacer.penalize(delay)
            self.metrics.retried.labels(claim.transport, kind.value).inc()
            outcomes.add_retry(claim.id, now + timedelta(seconds=delay), reason)
        elif kind is SendErrorKind.TRANSIENT and claim.attempts + 1 < MAX_TRANSIENT_ATTEMPTS:
            delay = min(300.0, 2.0 ** claim.attempts)
            self.metrics.retried.labels(claim.transport, kind.value).inc()
            outcomes.add_retry(claim.id, now + timedelta(seconds=delay), reason)
        elif kind is SendErrorKind.OUTSIDE_WINDOW:
            # Held, not failed: the operator sees it and can configure a template.
            log.warning("outbox %s held: outside the 24-hour window and no template", claim.id)
            self.metrics.held.labels("outside 24h window").inc()
            outcomes.add_finish(claim.id, "held", reason)
        else:
            if kind is SendErrorKind.USER_STOPPED:
                await self.on_user_stopped(claim, result)
            self.metrics.failed.labels(claim.transport, kind.value).inc()
            outcomes.add_finish(claim.id, "failed", reason)
