"""The inbox processor: turns each accepted event into state changes and outbox rows.

Each inbound message is handled inside a database transaction: the member is
resolved, the router picks a handler, the handler changes state through
services, and its replies are written to the outbox together with the inbox
row being marked done. A crash anywhere loses neither the message nor a reply.

A claimed batch shares one transaction (one commit, one outbox insert, one inbox
update), each item inside a savepoint of its own, so an item that fails undoes
its own writes only. Should the batch's own writes fail, the batch is rolled
back whole and its items run again one transaction each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from tortoise.transactions import in_transaction

from bot.clock import Clock
from bot.logs import ref, request_context
from bot.messages import (
    DeliveryStatus,
    GroupUpdate,
    InboundEvent,
    InboundMessage,
    JoinRequest,
    PreferenceChange,
)
from bot.metrics import Metrics
from bot.policy.consent import is_opt_out
from bot.retrying import Failures
from bot.routing import Context, Router, parse_command
from bot.savepoints import LazySavepoint, SavepointFailed, lazy_savepoint
from bot.services import batch_reads
from bot.services.consent import MARKETING_RESTORED, MARKETING_WITHDRAWN
from bot.services.inbox import Claimed
from bot.services.outbox import Outgoing
from bot.services.registry import Services
from bot.storage.models import InboxItem

log = logging.getLogger("groundwork.processing")

SORRY = ("Sorry — something went wrong on our side and nothing was changed. "
         "Please try again in a moment.")
# Called for a message said in a group room that is not a command (moderation, relays).
RoomHook = Callable[[Context], Awaitable[None]]
JoinHook = Callable[[JoinRequest, Services], Awaitable[None]]
GroupHook = Callable[[GroupUpdate, Services], Awaitable[None]]
# How long one batch transaction may run, while webhooks wait to store what they carry,
# before it commits what it has done and goes on in a new one. While it is open nothing
# else writes (SQLite has one writer; tortoise serializes its connection), so this is
# how long a 200 may wait behind processing. Measured on SQLite in one process: at 5 ms
# it acknowledged about a fifth more webhooks a second under a burst, but at 2,000 msgs/s
# offered its p99 from receipt to outbox was 240-500 ms against 21 ms at 15 ms, because
# the commits it adds come out of processing time. With no webhook waiting, the whole
# batch goes in one transaction.
BATCH_SECONDS = 0.015


def without_nul(msg: InboundMessage) -> InboundMessage:
    """The message without NUL characters. No chat needs one, and PostgreSQL refuses them
    in any text value, so a member's "/announce \\x00" failed on its first query (a group
    lookup) instead of being answered; dropped here, before any handler uses the text."""
    name = msg.sender_name
    if "\x00" not in msg.text and not (name and "\x00" in name):
        return msg
    return dataclasses.replace(msg, text=msg.text.replace("\x00", ""),
                               sender_name=name.replace("\x00", "") if name else name)


def count_other(metrics: Metrics, counter: str, labels: tuple[str, ...]) -> None:
    """One more of another counter of ours (`held`, `failed`), by its attribute name."""
    getattr(metrics, counter).labels(*labels).inc()


def count_processed(metrics: Metrics, handled: int, failed: int, timings: list[float]) -> None:
    if handled:
        metrics.processed.labels("ok").inc(handled)
    if failed:
        metrics.processed.labels("error").inc(failed)
    for seconds in timings:
        metrics.process_seconds.observe(seconds)


class Processor:
    def __init__(self, services: Services, router: Router, clock: Clock, metrics: Metrics,
                 batch_size: int = 50) -> None:
        self.services = services
        self.router = router
        self.clock = clock
        self.metrics = metrics
        self.batch_size = batch_size
        self.room_hooks: list[RoomHook] = []
        self.join_hooks: list[JoinHook] = []
        self.group_hooks: list[GroupHook] = []
        self.after_commit: list[Callable[[], None]] = []
        # Told what each commit processed: (handled, failed, seconds per handled item).
        # A processing child reports it to `bot run`, whose /metrics shows it.
        self.on_processed: list[Callable[[int, int, list[float]], None]] = []
        # Told of each other counter it increments: (counter name, label values).
        self.on_counted: list[Callable[[str, tuple[str, ...]], None]] = []
        # Are inbound events waiting for the database? (set by the inbound sink)
        self.inbound_waiting: Callable[[], bool] = lambda: True
        # Awaited before each transaction. In a processing child, it lets the inbox write
        # of `bot run` go first (SQLite has one writer and no queue for it); in `bot run`
        # itself, it waits out a surge of webhooks (bot/inbox_batcher.py).
        self.give_way: Callable[[], Awaitable[None]] | None = None
        # Is it at work on the database now, and how many stints has it begun: the inbound
        # batcher tells the webhooks that waited behind processing from those that did not.
        self.working = False
        self.stints = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        failures = Failures(log, "processing round")
        while not stopping.is_set():
            try:
                processed = await self.process_pending()
                failures.succeeded()
                if processed:
                    continue
                self._wake.clear()
                waiters = [asyncio.ensure_future(self._wake.wait()),
                           asyncio.ensure_future(stopping.wait())]
                _, pending = await asyncio.wait(waiters, timeout=2.0,
                                                return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
            except Exception as exc:  # the loop must survive a bad round; items are retried
                await failures.wait_after(exc, stopping)

    async def process_pending(self) -> int:
        """Process one batch of claimed inbox items; returns how many."""
        await self._clear_to_work()
        try:
            claimed = await self.services.inbox.claim(self.clock.now(), self.batch_size)
            items = claimed
            while items:
                if items is not claimed:
                    await self._clear_to_work()
                try:
                    failed, items = await self._batch(items)
                except Exception:
                    # The batch's own writes or its commit failed, so none of it was kept.
                    # Each item again in its own transaction: whatever broke the batch
                    # cannot hold back the others.
                    log.exception("processing a batch of %d inbox items failed; one by one "
                                  "now", len(items))
                    await self._one_by_one(items)
                    items = []
                else:
                    for item, exc in failed:
                        with request_context(f"inbox-{item.id}"):
                            await self._failed(item, exc)
                for notify in self.after_commit:
                    notify()
        finally:
            self.working = False
        return len(claimed)

    async def _clear_to_work(self) -> None:
        """Before each transaction: give way if asked to, then count a stint of work."""
        self.working = False
        if self.give_way is not None:
            await self.give_way()
        self.working = True
        self.stints += 1

    async def _batch(self, items: list[Claimed]
                     ) -> tuple[list[tuple[Claimed, Exception]], list[Claimed]]:
        """The batch in one transaction, each item in a savepoint of its own; returns the
        items that failed and those left for the next transaction (BATCH_SECONDS).

        One commit, one outbox insert and one inbox update for the batch: per item,
        only what its handler does. An item that raises rolls back to its savepoint,
        undoing its own writes and nothing else; it is returned to be counted as a
        failed attempt once the others are committed. The savepoint is opened at the
        item's first write (bot/savepoints.py): most messages only read.
        """
        failed: list[tuple[Claimed, Exception]] = []
        outgoing: list[Outgoing] = []
        done: list[int] = []
        timings: list[float] = []
        left: list[Claimed] = []
        connection = InboxItem._meta.default_connection  # tortoise's name for the database
        deadline = time.perf_counter() + BATCH_SECONDS
        reads = batch_reads.BatchReads()
        async with in_transaction(connection):
            await self._read_for_batch(items, reads)
            with batch_reads.sharing(reads):
                for index, item in enumerate(items):
                    # SQLite statements run on this thread and do not yield: webhooks that
                    # arrived meanwhile are read here, so that inbound_waiting() sees them.
                    await asyncio.sleep(0)
                    if index and time.perf_counter() > deadline and self.inbound_waiting():
                        left = items[index:]  # still claimed by us: the next transaction's
                        break
                    with request_context(f"inbox-{item.id}"):  # every line about this item
                        started = time.perf_counter()
                        result = await self._item(item, connection, reads)
                    if isinstance(result, Exception):
                        failed.append((item, result))
                        continue
                    outgoing.extend(result)
                    done.append(item.id)
                    timings.append(time.perf_counter() - started)
            # Stamped when the replies are written: processed_at - received_at is the
            # time from receipt to the outbox, the batch's wait included.
            now = self.clock.now()
            await self.services.outbox.enqueue(outgoing, now)
            await self.services.inbox.done(done, now)
        self._count(len(done), 0, timings)
        return failed, left

    async def _item(self, item: Claimed, connection: str, reads: batch_reads.BatchReads
                    ) -> list[Outgoing] | Exception:
        """One item of a batch, in its savepoint: its replies, or what it failed with."""
        lazy: LazySavepoint | None = None
        try:
            async with lazy_savepoint(connection) as lazy:
                replies = await self._handle(item.event)
        except SavepointFailed:
            raise  # the transaction is broken: the batch goes one by one
        except Exception as exc:
            if self.services.inbox.postgres and not (lazy and lazy.wrote):
                # Failed with no savepoint to roll back to: on PostgreSQL a failed
                # statement leaves the whole transaction unusable.
                raise
            log.exception("processing inbox item %s failed", item.id)
            reads.forget()
            return exc
        if lazy.wrote:  # the next items read afresh what it may have changed
            reads.forget_written(None if lazy.nested else lazy.writes)
        return replies

    async def _read_for_batch(self, items: list[Claimed], reads: batch_reads.BatchReads
                              ) -> None:
        """The senders of the batch's messages and their groups, in two queries."""
        messages = [item.event for item in items if isinstance(item.event, InboundMessage)]
        if len(messages) < 2:
            return  # one message reads them itself, at no more cost
        found = await self.services.members.read_for_batch(messages, reads)
        await self.services.groups.read_for_batch(found, reads)

    async def _one_by_one(self, items: list[Claimed]) -> None:
        # Only the items still ours: should the commit have gone through after all (the
        # connection lost while it was acknowledged), they are done and stay done.
        pending = await self.services.inbox.still_pending([item.id for item in items])
        for item in items:
            if item.id in pending:
                with request_context(f"inbox-{item.id}"):
                    await self.process(item)

    async def process(self, item: Claimed) -> None:
        """One item in its own transaction."""
        started = time.perf_counter()
        try:
            async with in_transaction():
                outgoing = await self._handle(item.event)
                now = self.clock.now()
                await self.services.outbox.enqueue(outgoing, now)
                await self.services.inbox.done([item.id], now)
        except Exception as exc:
            log.exception("processing inbox item %s failed", item.id)
            await self._failed(item, exc)
            return
        self._count(1, 0, [time.perf_counter() - started])

    async def _handle(self, event: InboundEvent) -> list[Outgoing]:
        """Do what the event asks; returns the messages to queue with it."""
        if isinstance(event, InboundMessage):
            return await self._message(event)
        if isinstance(event, DeliveryStatus):
            await self._status(event)
        elif isinstance(event, PreferenceChange):
            await self._preference(event)
        elif isinstance(event, JoinRequest):
            for hook in self.join_hooks:
                await hook(event, self.services)
        elif isinstance(event, GroupUpdate):
            for hook in self.group_hooks:
                await hook(event, self.services)
        return []

    async def _failed(self, item: Claimed, exc: Exception) -> None:
        now = self.clock.now()
        gave_up = await self.services.inbox.failed_attempt(
            item.id, item.attempts, f"{type(exc).__name__}", now)
        event = item.event
        if gave_up and isinstance(event, InboundMessage):
            # The person still deserves an answer: a friendly one-liner, no traceback.
            member = await self.services.members.find(event.transport, event.sender)
            if member is not None and member.status == "active":
                await self.services.outbox.enqueue(
                    [Outgoing(text=SORRY, transport=event.transport, member_id=member.id)], now)
        self._count(0, 1, [])

    def _note(self, counter: str, *labels: str) -> None:
        count_other(self.metrics, counter, labels)
        for tell in self.on_counted:
            tell(counter, labels)

    def _count(self, handled: int, failed: int, timings: list[float]) -> None:
        count_processed(self.metrics, handled, failed, timings)
        for tell in self.on_processed:
            tell(handled, failed, timings)

    async def _message(self, msg: InboundMessage) -> list[Outgoing]:
        msg = without_nul(msg)
        s = self.services
        now = self.clock.now()
        resolved = await s.members.resolve(msg, s.notice_version, now)
        ctx = Context(msg=msg, member=resolved.member, services=s, now=now,
                      is_admin=s.is_admin(msg.transport, msg.sender),
                      first_contact=resolved.created, router=self.router)
        if msg.room is not None:
            ctx.room_group = await s.groups.group_of_room(msg.transport, msg.room)
        await self.dispatch(ctx)
        return ctx.outgoing

    async def dispatch(self, ctx: Context) -> None:
        text = ctx.msg.text
        member = ctx.member
        in_room = ctx.msg.room is not None
        if in_room and parse_command(text) is None:
            # Conversation in a group room: "yes" or "stop" said to others is not a
            # command to us. Moderation looks at every post, from anyone, consented or not:
            # acting on the room is not messaging the person.
            for hook in self.room_hooks:
                await hook(ctx)
            return
        if not in_room and is_opt_out(text):
            route, name, args = self.router.commands["stop"], "stop", ""
        else:
            route, name, args = self.router.match(text)
        ctx.command, ctx.args = name, args
        if route is not None and route.audience == "anyone":
            await route.handler(ctx)
            return
        if member.status == "pending":
            if ctx.msg.room is None:
                await self.router.flows["notice"](ctx)
            return
        if member.status != "active":
            return  # stopped: nothing but answers to the exempt commands above
        if route is None:
            await self._unrouted(ctx, name)
            return
        if route.audience == "admin" and not ctx.is_admin:
            ctx.reply(f"Only the bot's admins can use /{name}.")
            return
        await route.handler(ctx)

    async def _unrouted(self, ctx: Context, name: str) -> None:
        if name:
            ctx.reply(f"I don't know /{name}. Send HELP to see the commands you can use.")
        elif ctx.member.flow and ctx.member.flow.get("name") in self.router.flows:
            await self.router.flows[ctx.member.flow["name"]](ctx)
        elif self.router.fallback_handler is not None:
            await self.router.fallback_handler(ctx)

    async def _status(self, status: DeliveryStatus) -> None:
        """A delivery report. Failures that arrive this way (after the platform accepted
        the message) are handled as when the send itself had answered with them."""
        member_id = await self.services.outbox.on_status(
            status.provider_message_id, status.state.value,
            f"{status.error_code or ''} {status.error_title}".strip())
        if status.state.value != "failed" or status.error_code is None:
            return
        code = status.error_code
        if code == 131050:  # the user stopped marketing messages from us
            # By our row, else by address: a long text goes out as several platform
            # messages and only the last id is stored, so a report on an earlier part
            # matches no row.
            member = None
            if member_id is not None:
                member = await self.services.members.get(member_id)
            elif status.recipient:
                member = await self.services.members.find(status.transport, status.recipient)
            if member is not None:
                await self._marketing(member, False, status.transport, "platform:131050")
        elif code == 131047:
            # The 24-hour window had closed: only a template reaches them now. The
            # operator is told, as for a send refused outright; consent is untouched.
            log.warning("%s message %s not delivered: outside the 24-hour window (configure "
                        "a template to reach members who have not written lately)",
                        status.transport, ref(status.provider_message_id))
            self._note("held", "outside 24h window")
        elif code == 131026:
            # Undeliverable (no WhatsApp account, old app, terms not accepted): this
            # message failed for good, but it says nothing about the person's consent.
            log.warning("%s message %s undeliverable: %s", status.transport,
                        ref(status.provider_message_id), status.error_title or "no reason given")
            self._note("failed", status.transport, "undeliverable")

    async def _preference(self, pref: PreferenceChange) -> None:
        member = await self.services.members.find(pref.transport, pref.sender)
        if member is None:
            return  # we never spoke with them: nothing to record
        await self._marketing(member, pref.marketing_opt_in, pref.transport,
                              "platform:user_preferences")

    async def _marketing(self, member: object, ok: bool, channel: str, method: str) -> None:
        s = self.services
        now = self.clock.now()
        await s.prefs.set(member, marketing_ok=ok)  # type: ignore[arg-type]
        await s.consent.record(member, MARKETING_RESTORED if ok else MARKETING_WITHDRAWN,  # type: ignore[arg-type]
                               channel, method, member.notice_version, now)  # type: ignore[attr-defined]
