"""The composition root: builds every part from the config and wires them together."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.access_log import request_ids
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.inbox_batcher import InboxBatcher
from bot.messages import InboundEvent, event_kind
from bot.metrics import Metrics
from bot.outbox import DeliveryWorker
from bot.pacing import Pacer
from bot.policy.gate import PolicyGate
from bot.processing import Processor, count_other, count_processed
from bot.processors import STORED, WRITING, ProcessorPool
from bot.services.consent import MARKETING_WITHDRAWN
from bot.services.crypto import Vault, load_master_key
from bot.services.outbox import Claim
from bot.services.pacing_slots import DatabaseSlots
from bot.services.registry import Services
from bot.storage import db
from bot.transports.base import Transport, TransportUnavailable
from handlers import build_router

log = logging.getLogger("groundwork.app")

JOB_INTERVAL_SECONDS = 20.0
SHUTDOWN_ROUNDS = 5  # delivery rounds after the workers stop, before closing the database


class StartFailed(Exception):
    """`bot run` could not start: a transport could not (its platform unreachable, or
    refusing our credentials), or the webhook server could not take its address. One
    line for the operator."""


Job = Callable[[datetime], Awaitable[int]]


def install_features(app: App) -> None:
    """Wire the feature services (events, moderation, ...) into the app.

    Each feature adds its service to `app.services.extra`, its jobs to `app.jobs`,
    and any export/erase sections to the data-rights service.
    """
    from bot.features import install

    install(app)


class App:
    def __init__(self, config: Config, *, clock: Clock | None = None,
                 environ: Mapping[str, str] | None = None,
                 transports: Sequence[Transport] | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.environ = os.environ if environ is None else environ
        self.metrics = Metrics()
        self.postgres = db.is_postgres(config.database.url)
        key = load_master_key(self.environ, config.security.key_env, config.security.key_file)
        self.vault = Vault(key)
        self.services = Services.build(config, self.vault, self.postgres)
        self.router = build_router()
        self.processor = Processor(self.services, self.router, self.clock, self.metrics)
        self.transports: dict[str, Transport] = {
            t.name: t for t in (transports if transports is not None else self._transports())}
        self.gate = PolicyGate(self.services.prefs, config.messaging, config.timezone)
        self.delivery = DeliveryWorker(
            self.services.outbox, self.gate, self.transports,
            {name: self._pacer(name) for name in self.transports},
            self.clock, self.metrics, self._user_stopped)
        self.processor.after_commit.append(self.delivery.wake)
        # Time-driven work (reminders, digests): each job takes `now`, does what is due,
        # and returns how many things it queued. Run by settle() and by the job loop.
        self.jobs: list[Job] = []
        install_features(self)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._settle_lock = asyncio.Lock()
        self.ready = False
        self.pool: ProcessorPool | None = None  # processing children (workers.processors)
        self.inbound: Inbound | None = None  # where the transports hand events, once started
        self._delivers = True  # False in a processing child: `bot run` delivers

    def add_transport(self, transport: Transport) -> None:
        """Register a transport made outside (the interactive test chat) before start()."""
        self.transports[transport.name] = transport
        self.delivery.pacers[transport.name] = self._pacer(transport.name)  # type: ignore[index]

    def _pacer(self, transport: str) -> Pacer:
        """PostgreSQL means possibly several workers: they share the rate through it."""
        shared = DatabaseSlots(transport) if self.postgres else None
        return Pacer(getattr(self.config.transports, transport).pacing, shared=shared)

    def _transports(self) -> list[Transport]:
        from bot.transports.testchat import TestChatTransport

        t = self.config.transports
        made: list[Transport] = []
        if t.testchat.enabled:
            made.append(TestChatTransport(self.clock.now))
        if t.whatsapp.enabled:
            from bot.transports.whatsapp import WhatsAppTransport

            wa = t.whatsapp
            made.append(WhatsAppTransport(
                phone_number_id=wa.phone_number_id, access_token=wa.access_token,
                app_secret=wa.app_secret, verify_token=wa.verify_token,
                api_base_url=wa.api_base_url, webhook_path=wa.webhook_path,
                max_body_bytes=self.config.server.max_body_bytes,
                template=(wa.template.name, wa.template.language) if wa.template else None))
        if t.telegram.enabled:
            from bot.transports.telegram import TelegramTransport

            tg = t.telegram
            made.append(TelegramTransport(
                token=tg.token, mode=tg.mode, webhook_path=tg.webhook_path,
                webhook_secret=tg.webhook_secret or None, api_base_url=tg.api_base_url,
                bot_username=tg.bot_username or None,
                max_body_bytes=self.config.server.max_body_bytes,
                webhook_url=tg.webhook_url or None))
        return made

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, *, background: bool = True, serve_http: bool = False) -> None:
        await db.migrate(self.config.database.url)
        await db.open_db(self.config.database.url)
        for warning in await db.server_warnings(self.config.database.url):
            log.warning(warning)
        await self.services.groups.seed(self.config.groups, self.clock.now())
        self.inbound = Inbound(self)
        try:
            await self._start_transports()
            if background:
                await self._start_workers(serve_http)
            if serve_http:
                await self._serve()
        except StartFailed:
            await self.stop()  # what had started ends with us: transports, loops, children
            raise
        self.ready = True

    async def _start_transports(self) -> None:
        for transport in self.transports.values():
            try:
                await transport.start(self.inbound)
            except TransportUnavailable as exc:
                raise StartFailed(f"{transport.name}: {exc}") from exc

    async def _start_workers(self, serve_http: bool) -> None:
        """Delivery and the jobs here; processing here, or in children when `bot run`."""
        self._tasks = [
            asyncio.create_task(self.delivery.run(self._stopping), name="delivery"),
            asyncio.create_task(self._run_jobs(), name="jobs"),
        ]
        processors = self.config.workers.processors if serve_http else 0
        if processors:
            path = self.config.path if self.config.path != "<defaults>" else None
            self.pool = ProcessorPool(processors, path, self._processed_elsewhere,
                                      self._counted_elsewhere)
            await self.pool.start()
        else:
            self._tasks.append(asyncio.create_task(self.processor.run(self._stopping),
                                                   name="processor"))

    async def start_processing(self) -> None:
        """A processing child of `bot run` (bot/processors.py): the inbox only. `bot run`
        migrated the database, receives and delivers."""
        await db.open_db(self.config.database.url)
        whatsapp = self.transports.get("whatsapp")
        if whatsapp is not None:
            # /teamlink asks the Groups API while it is processed: the transport's HTTP
            # session is needed, nothing else of it (this process serves no webhooks).
            await whatsapp.start(_NoInbound())
        self._delivers = False
        self._tasks = [asyncio.create_task(self.processor.run(self._stopping),
                                           name="processor")]
        self.ready = True

    def _processed_elsewhere(self, handled: int, failed: int, timings: list[float]) -> None:
        """A processing child committed: count it here, and send the replies it queued."""
        count_processed(self.metrics, handled, failed, timings)
        self.delivery.wake()

    def _counted_elsewhere(self, counter: str, labels: tuple[str, ...]) -> None:
        """A processing child counted a delivery report (held, failed): count it here."""
        try:
            count_other(self.metrics, counter, labels)
        except (AttributeError, ValueError):  # not ours, or the wrong labels: a bug there
            log.warning("a processing child counted unknown %s%s", counter, labels)

    async def store_inbound(self, events: Sequence[InboundEvent]) -> None:
        """The inbox write (one per group commit). Processing children hold back from
        the database meanwhile, then wake to process what it stored."""
        if self.pool is not None:
            self.pool.signal(WRITING)
        try:
            await self.services.inbox.accept(events, self.clock.now())
        finally:
            if self.pool is not None:
                self.pool.signal(STORED)

    async def stop(self) -> None:
        """Stop receiving, let in-flight work finish, then close the database."""
        self.ready = False
        if self._runner is not None:
            await self._runner.cleanup()  # no new webhooks; those being handled finish
        if self.pool is not None:
            await self.pool.stop()  # each child finishes its batch and the backlog's start
        self._stopping.set()
        self.processor.wake()
        self.delivery.wake()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._drain(rounds=SHUTDOWN_ROUNDS)
        # Only now: the delivery round above still sends through the transports' HTTP
        # sessions, and a send cut off mid-request is sent again after the restart.
        for transport in self.transports.values():
            await transport.stop()
        await db.close_db()

    async def _drain(self, rounds: int) -> None:
        """Finish what is in flight: the replies to webhooks already acknowledged, and the
        sends now due. Bounded, so a long queue does not stall a shutdown (it is kept)."""
        for _ in range(rounds):
            try:
                processed = await self.processor.process_pending()
                delivered = await self.delivery.deliver_due() if self._delivers else 0
            except Exception:  # shutting down: what is left stays queued for the next start
                log.exception("final delivery pass failed")
                return
            if not processed and not delivered:
                return

    async def settle(self) -> None:
        """Process the inbox, run due jobs and deliver what is due until nothing is left."""
        async with self._settle_lock:
            while True:
                processed = await self.processor.process_pending()
                queued = await self.run_jobs()
                delivered = await self.delivery.deliver_due()
                if not processed and not delivered and not queued:
                    return

    async def run_jobs(self) -> int:
        queued = 0
        for job in self.jobs:
            queued += await job(self.clock.now())
        return queued

    async def _run_jobs(self) -> None:
        while not self._stopping.is_set():
            try:
                if await self.run_jobs():
                    self.delivery.wake()
            except Exception:  # a failing job must not stop the others; it runs again
                log.exception("scheduled job failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=JOB_INTERVAL_SECONDS)
            except TimeoutError:
                pass

    # --- HTTP --------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.server.max_body_bytes,
                              middlewares=[request_ids])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        for transport in self.transports.values():
            app.router.add_routes(transport.routes())
        return app

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        host, port = self.config.server.host, self.config.server.port
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartFailed(f"cannot listen on {host}:{port}: {reason}. Is another copy "
                              "of the bot running? server.port in the config sets the "
                              "port.") from exc
        log.info("serving on http://%s:%s", host, port)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _: web.Request) -> web.Response:
        try:
            await self.services.inbox.pending_count()
        except Exception:  # any database failure means not ready
            return web.json_response({"status": "database unreachable"}, status=503)
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready", "transports": sorted(self.transports)})

    async def _metrics(self, _: web.Request) -> web.Response:
        self.metrics.queue_depth.set(await self.services.outbox.queue_depth())
        self.metrics.inbox_depth.set(await self.services.inbox.pending_count())
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4"})

    # --- hooks -------------------------------------------------------------------------------

    async def _user_stopped(self, claim: Claim, result: Any) -> None:
        """The platform says the user stopped: the ledger records it."""
        if claim.member_id is None:
            return
        member = await self.services.members.get(claim.member_id)
        if member is None:
            return
        await self.services.prefs.set(member, marketing_ok=False)
        await self.services.consent.record(
            member, MARKETING_WITHDRAWN, claim.transport,
            f"platform:{result.error_code or 'stopped'}", member.notice_version,
            self.clock.now())


class _NoInbound:
    """The sink of a processing child's transports, which receive nothing there."""

    async def accept(self, events: Sequence[InboundEvent]) -> None:
        raise RuntimeError("a processing child receives no inbound events")

    async def settle(self) -> None:
        return None


class Inbound:
    """The sink transports hand events to: durable first (group-committed), processed after."""

    def __init__(self, app: App) -> None:
        self.app = app
        processor = app.processor
        self.batcher = InboxBatcher(app.store_inbound,
                                    processing=lambda: (processor.working, processor.stints))
        app.processor.inbound_waiting = self.batcher.busy  # processing gives way to acks
        if not app.postgres:
            # ... and waits out a surge. On SQLite its statements run on the loop, so time
            # it takes is time acknowledging loses. On PostgreSQL they mostly wait on the
            # server, overlapping with acknowledging: held back, it lost that overlap
            # (one process processed 1,741 msgs/s under the bench's bursts, 2,317 free).
            app.processor.give_way = self.batcher.give_way

    async def accept(self, events: Sequence[InboundEvent]) -> None:
        await self.batcher.accept(events)
        for event in events:
            self.app.metrics.inbound.labels(event.transport, event_kind(event)).inc()
        self.app.processor.wake()

    async def settle(self) -> None:
        await self.app.settle()
