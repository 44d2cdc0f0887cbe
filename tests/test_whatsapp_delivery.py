"""WhatsApp delivery when the platform pushes back: throughput limits, users who stop
marketing, a closed 24-hour window, and delivery reports. The App runs on the real
WhatsApp transport; webhooks are signed POSTs to its routes, sends land at the stand-in."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.pacing import Pacer
from bot.storage.models import OutboxItem
from tests.drivers import Driver, WhatsAppDriver, member, open_driver, organizer
from tests.fakes.graph_api import status_webhook, user_preferences_webhook

HELD_METRIC = 'groundwork_held_total{reason="outside 24h window"}'


@pytest.fixture
async def wa(db_url: str, tmp_path: Path) -> AsyncIterator[WhatsAppDriver]:
    async with open_driver("whatsapp", db_url, tmp_path) as d:
        assert isinstance(d, WhatsAppDriver)
        yield d


async def metric(d: WhatsAppDriver, line: str) -> float:
    """One sample from the App's /metrics, as Prometheus would scrape it."""
    async with d.client.get("/metrics") as resp:
        assert resp.status == 200
        body = await resp.text()
    for sample in body.splitlines():
        if sample.startswith(line + " "):
            return float(sample.rsplit(" ", 1)[1])
    return 0.0


async def member_id(d: Driver, name: str) -> int:
    found = await d.app.services.members.find(d.name, d.address(name))
    assert found is not None
    return found.id


async def last_sent_to(d: Driver, name: str) -> OutboxItem:
    row = await OutboxItem.filter(member_id=await member_id(d, name),
                                  provider_message_id__isnull=False).order_by("-id").first()
    assert row is not None
    return row


async def consent_actions(d: Driver, name: str) -> list[tuple[str, str]]:
    history = await d.app.services.consent.history(await member_id(d, name))
    return [(c.action, c.method) for c in history]


# -- throughput ------------------------------------------------------------------------------


async def test_throughput_limit_slows_the_worker_and_each_member_gets_it_once(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()

    def monotonic() -> float:
        return clock.now().timestamp()

    async with open_driver("whatsapp", db_url, tmp_path, clock=clock,
                           monotonic=monotonic) as wa:
        assert isinstance(wa, WhatsAppDriver)
        # The pacer measures its penalty on a monotonic clock: give it the test's time.
        pacer = Pacer(wa.app.config.transports.whatsapp.pacing, monotonic)
        wa.app.delivery.pacers["whatsapp"] = pacer  # type: ignore[index]
        names = [f"m{i}" for i in range(6)]
        await organizer(wa, "orla", "riverside")
        for name in names:
            await member(wa, name, "riverside")
        wa.graph.limit_rate(2)  # two messages a second from our number, then 130429
        first = await wa.say("orla", "/announce riverside Rally on Saturday")
        assert len(first) == 2  # the confirmation and one announcement got through
        # Six sends were told to slow down: the worker pauses and retries each later.
        assert pacer.slot() == pytest.approx(1.0, abs=0.01)
        waiting = await OutboxItem.filter(status="queued", kind="announcement")
        assert len(waiting) == 6
        for row in waiting:
            assert row.error.startswith("rate_limited 130429")
            assert row.not_before == clock.now() + timedelta(seconds=1)  # 2 ** 0 s
        assert await metric(wa, 'groundwork_retried_total{error="rate_limited",'
                                'transport="whatsapp"}') == 6
        clock.advance(seconds=1)
        await wa.app.settle()
        again = await OutboxItem.filter(status="queued", kind="announcement", attempts=2)
        assert again and all(r.not_before == clock.now() + timedelta(seconds=2) for r in again)
        for _ in range(30):  # bounded: the back-off doubles, the bucket refills each second
            if not await OutboxItem.filter(status="queued").exists():
                break
            clock.advance(seconds=1)
            await wa.app.settle()
        rally = Counter(body.get("to") for body in wa.graph.sent
                        if "Rally on Saturday" in body.get("text", {}).get("body", ""))
        assert rally == Counter({wa.address(n): 1 for n in [*names, "orla"]})
        assert await OutboxItem.filter(status="queued").count() == 0


# -- users who stop marketing ----------------------------------------------------------------


async def stops_group_messages_but_not_answers(wa: WhatsAppDriver, name: str) -> None:
    """After the platform said NAME stopped marketing: no announcement, /help still works."""
    replies = await wa.say("orla", "/announce riverside Rally on Saturday")
    assert "queued for 1 member" in replies[0].text  # orla herself, not NAME
    assert not any(r.to == name for r in replies)
    help_ = await wa.say(name, "/help")
    assert [r.to for r in help_] == [name] and "what you can do" in help_[0].text


async def test_user_preferences_stop_is_recorded_and_holds_back_group_messages(
        wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "riverside")
    await member(wa, "ana", "riverside")
    assert await wa.webhook(user_preferences_webhook("stop", wa_id=wa.address("ana"))) == []
    assert await consent_actions(wa, "ana") == [
        ("granted", "YES"), ("marketing_withdrawn", "platform:user_preferences")]
    await stops_group_messages_but_not_answers(wa, "ana")
    await wa.webhook(user_preferences_webhook("resume", wa_id=wa.address("ana"),
                                              timestamp=1750030099))
    assert (await consent_actions(wa, "ana"))[-1] == (
        "marketing_restored", "platform:user_preferences")
    replies = await wa.say("orla", "/announce riverside Back again")
    assert any(r.to == "ana" and "Back again" in r.text for r in replies)


async def test_failed_status_131050_is_recorded_and_holds_back_group_messages(
        wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "riverside")
    await member(wa, "ana", "riverside")
    row = await last_sent_to(wa, "ana")
    await wa.webhook(status_webhook(row.provider_message_id or "", "failed",
                                    recipient_id=wa.address("ana"), error_code=131050,
                                    error_title="User's number is part of an experiment"))
    assert (await consent_actions(wa, "ana"))[-1] == ("marketing_withdrawn",
                                                      "platform:131050")
    await row.refresh_from_db()
    assert row.status == "failed" and row.error.startswith("131050")
    await stops_group_messages_but_not_answers(wa, "ana")


async def test_131050_for_an_unrecorded_part_of_a_split_message_still_counts(
        wa: WhatsAppDriver) -> None:
    """A long text goes as several Graph messages; only the last id is stored."""
    await organizer(wa, "orla", "riverside")
    await member(wa, "ana", "riverside")
    await wa.webhook(status_webhook("wamid.FIRST-PART", "failed",
                                    recipient_id=wa.address("ana"), error_code=131050))
    assert (await consent_actions(wa, "ana"))[-1] == ("marketing_withdrawn",
                                                      "platform:131050")
    await stops_group_messages_but_not_answers(wa, "ana")


# -- the 24-hour window --------------------------------------------------------------------


async def test_outside_the_window_without_a_template_is_held_and_the_operator_told(
        wa: WhatsAppDriver, caplog: pytest.LogCaptureFixture) -> None:
    await member(wa, "ana")
    wa.graph.fail_next(131047)
    with caplog.at_level(logging.WARNING, logger="groundwork.delivery"):
        assert await wa.say("ana", "/help") == []
    row = await OutboxItem.filter(member_id=await member_id(wa, "ana")).order_by("-id").first()
    assert row is not None and row.status == "held" and "131047" in row.error
    assert any(r.levelno == logging.WARNING and "outside the 24-hour window" in r.getMessage()
               for r in caplog.records)
    assert await metric(wa, HELD_METRIC) == 1
    assert not any(body.get("type") == "template" for body in wa.graph.sent)


async def test_131047_as_a_failed_status_tells_the_operator_and_keeps_consent(
        wa: WhatsAppDriver, caplog: pytest.LogCaptureFixture) -> None:
    await member(wa, "ana")
    row = await last_sent_to(wa, "ana")
    with caplog.at_level(logging.WARNING, logger="groundwork.processing"):
        await wa.webhook(status_webhook(row.provider_message_id or "", "failed",
                                        recipient_id=wa.address("ana"), error_code=131047,
                                        error_title="Re-engagement message"))
    assert any(r.levelno == logging.WARNING and "24-hour window" in r.getMessage()
               for r in caplog.records)
    assert await metric(wa, HELD_METRIC) == 1
    await row.refresh_from_db()
    assert row.status == "failed" and row.error.startswith("131047")
    assert await consent_actions(wa, "ana") == [("granted", "YES")]


async def test_131026_undeliverable_fails_the_message_and_keeps_consent(
        wa: WhatsAppDriver) -> None:
    await member(wa, "ana")
    row = await last_sent_to(wa, "ana")
    await wa.webhook(status_webhook(row.provider_message_id or "", "failed",
                                    recipient_id=wa.address("ana"), error_code=131026,
                                    error_title="Message undeliverable"))
    await row.refresh_from_db()
    assert row.status == "failed" and row.error.startswith("131026")
    assert await metric(wa, 'groundwork_failed_total{reason="undeliverable",'
                            'transport="whatsapp"}') == 1
    assert await consent_actions(wa, "ana") == [("granted", "YES")]


# -- delivery reports ------------------------------------------------------------------------


async def test_delivered_and_read_statuses_update_the_outbox_row(wa: WhatsAppDriver) -> None:
    await member(wa, "ana")
    row = await last_sent_to(wa, "ana")
    assert row.status == "sent"
    wamid = row.provider_message_id or ""
    for state, expected in (("delivered", "delivered"), ("read", "read"),
                            ("delivered", "read")):  # a late report never goes back
        await wa.webhook(status_webhook(wamid, state, recipient_id=wa.address("ana")))
        await row.refresh_from_db()
        assert row.status == expected, state
