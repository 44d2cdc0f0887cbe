"""Announcements and relays, held to consent, membership and the restraint rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.outbox import ROUNDS_IN_FLIGHT
from bot.services.outbox import Outgoing
from tests.conftest import Harness
from tests.seeding import seed_members


async def make_organizer(h: Harness, name: str, code: str) -> None:
    await h.member(name, code)
    member = await h.app.services.members.find("testchat", name)
    await h.chat.say(name, f"/name {name}-org")
    await h.member("olga")
    await h.chat.say("olga", f"/promote {name}-org organizer {code}")
    assert (await h.app.services.groups.role(member.id, (await h.app.services.groups.get(
        code)).id)) == "organizer"


async def test_announcement_reaches_exactly_the_consenting_members(harness: Harness) -> None:
    h = harness
    await make_organizer(h, "orla", "riverside")
    ids = await seed_members(h.app.vault, "riverside", 1000, h.clock.now())
    # Members who must not get it, each excluded a different way, through the chat.
    await h.chat.say("m1", "STOP")
    await h.chat.say("m2", "/leave riverside")
    await h.chat.say("m3", "/pause 7d")
    await h.chat.say("m4", "/mutegroup riverside")
    await h.chat.say("m5", "/digest daily")  # folded into the digest, not dropped
    await h.chat.say("pat", "hello")  # pending, never said YES
    await h.chat.say("pat", "/join riverside")
    await h.chat.say("hillcrest-only", "hi")
    before = len(h.chat.sent)
    confirm = await h.chat.say("orla", "/announce riverside Park clean-up Saturday 10:00!")
    # Direct answers go first: the organizer's confirmation leads the batch.
    # 1000 + orla, less m1 (stopped), m2 (left), m4 (muted): paused and digest rows wait.
    assert "queued for 998 members" in confirm[0].text
    got = {s.to for s in h.chat.sent[before:] if "Park clean-up" in s.text}
    expected = {f"m{i}" for i in range(len(ids))} - {"m1", "m2", "m3", "m4", "m5"} | {"orla"}
    assert got == expected
    sample = next(s for s in h.chat.sent if s.to == "m0" and "Park clean-up" in s.text)
    assert "Riverside Neighbours" in sample.text and "organizers" in sample.text
    assert "you joined Riverside Neighbours" in sample.text and "STOP" in sample.text


async def test_quiet_hours_hold_an_announcement_until_morning(harness: Harness) -> None:
    h = harness
    h.clock.set(datetime(2026, 3, 2, 21, 30, tzinfo=UTC))  # 21:30 in London: quiet
    await make_organizer(h, "orla", "riverside")
    await h.member("ana", "riverside")
    await h.chat.say("orla", "/announce riverside Vote tomorrow")
    assert not any("Vote tomorrow" in s.text for s in h.chat.to("ana"))
    h.clock.set(datetime(2026, 3, 3, 7, 59, tzinfo=UTC))
    await h.app.settle()
    assert not any("Vote tomorrow" in s.text for s in h.chat.to("ana"))
    h.clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    await h.app.settle()
    assert sum("Vote tomorrow" in s.text for s in h.chat.to("ana")) == 1


async def test_own_quiet_hours_in_own_time_zone(harness: Harness) -> None:
    h = harness
    await make_organizer(h, "orla", "riverside")
    await h.member("ana", "riverside")
    await h.chat.say("ana", "/tz America/New_York")
    await h.chat.say("ana", "/quiet 06:00-09:00")  # 12:00 UTC is 07:00 in New York
    await h.chat.say("orla", "/announce riverside Hello")
    assert not any("Hello" in s.text for s in h.chat.to("ana"))
    h.clock.advance(hours=2)  # 09:00 in New York
    await h.app.settle()
    assert any("Hello" in s.text for s in h.chat.to("ana"))


async def test_pause_holds_and_resume_releases(harness: Harness) -> None:
    h = harness
    await make_organizer(h, "orla", "riverside")
    await h.member("ana", "riverside")
    await h.chat.say("ana", "/pause 2d")
    await h.chat.say("orla", "/announce riverside Rally")
    assert not any("Rally" in s.text for s in h.chat.to("ana"))
    h.clock.advance(days=2, minutes=1)
    await h.app.settle()
    assert sum("Rally" in s.text for s in h.chat.to("ana")) == 1


async def test_daily_cap_folds_the_rest_into_the_digest(harness: Harness) -> None:
    h = harness
    h.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    await make_organizer(h, "orla", "riverside")
    await h.member("ana", "riverside")
    await h.chat.say("ana", "/cap 2")
    for n in range(5):
        await h.chat.say("orla", f"/announce riverside Update number {n}")
    direct = [s for s in h.chat.to("ana") if "Update number" in s.text]
    assert len(direct) == 2
    h.clock.set(datetime(2026, 3, 2, 18, 0, tzinfo=UTC))  # digest time in London
    await h.app.settle()
    digests = [s for s in h.chat.to("ana") if s.text.startswith("Your daily digest")]
    assert len(digests) == 1
    for n in (2, 3, 4):
        assert f"Update number {n}" in digests[0].text
    h.clock.advance(hours=1)
    await h.app.settle()
    assert len([s for s in h.chat.to("ana") if s.text.startswith("Your daily digest")]) == 1


async def test_digest_daily_members_get_one_summary(harness: Harness) -> None:
    h = harness
    await make_organizer(h, "orla", "riverside")
    await h.member("ana", "riverside")
    await h.chat.say("ana", "/digest daily")
    await h.chat.say("orla", "/announce riverside First")
    await h.chat.say("orla", "/announce riverside Second")
    assert not any("First" in s.text for s in h.chat.to("ana"))
    h.clock.set(datetime(2026, 3, 2, 18, 5, tzinfo=UTC))
    await h.app.settle()
    digest = [s for s in h.chat.to("ana") if s.text.startswith("Your daily digest")]
    assert len(digest) == 1 and "First" in digest[0].text and "Second" in digest[0].text


async def test_relay_goes_to_the_group_under_the_handle(harness: Harness) -> None:
    h = harness
    await h.member("ana", "riverside")
    await h.member("ben", "riverside")
    await h.member("cat", "hillcrest")
    await h.chat.say("ana", "/name ana-river")
    replies = await h.chat.say("ana", "/post riverside Anyone for litter picking?")
    assert "Posted to Riverside Neighbours" in replies[0].text
    to_ben = [s for s in h.chat.to("ben") if "litter picking" in s.text]
    assert len(to_ben) == 1 and "@ana-river" in to_ben[0].text
    assert not any("litter" in s.text for s in h.chat.to("cat"))
    assert not any("litter" in s.text for s in h.chat.to("ana") if s.text.startswith("💬"))
    await h.chat.say("ana", "/use riverside")
    await h.chat.say("ana", "Bring gloves")
    assert any("Bring gloves" in s.text for s in h.chat.to("ben"))


async def test_organizer_of_one_group_cannot_announce_in_another(harness: Harness) -> None:
    h = harness
    await make_organizer(h, "orla", "riverside")
    await h.member("ana", "hillcrest")
    replies = await h.chat.say("orla", "/announce hillcrest Not yours")
    assert [r.text for r in replies] == ["Only organizers of hillcrest can do that."]
    assert not any("Not yours" in s.text for s in h.chat.to("ana"))
    replies = await h.chat.say("ana", "/announce hillcrest Me neither")
    assert [r.text for r in replies] == ["Only organizers of hillcrest can do that."]


async def test_settings_show_every_choice(harness: Harness) -> None:
    h = harness
    await h.member("ana", "riverside")
    await h.chat.say("ana", "/quiet 22:30-07:15")
    await h.chat.say("ana", "/digest daily")
    text = (await h.chat.say("ana", "/settings"))[0].text
    assert "22:30-07:15" in text and "Digest: daily" in text and "riverside" in text


async def test_bad_settings_input_gets_a_specific_answer(harness: Harness) -> None:
    h = harness
    await h.member("ana")
    assert "22:00-07:00" in (await h.chat.say("ana", "/quiet late"))[0].text
    assert "/pause 7d" in (await h.chat.say("ana", "/pause forever"))[0].text
    assert "time zone" in (await h.chat.say("ana", "/tz Mars/Base"))[0].text
    member = await h.app.services.members.find("testchat", "ana")
    assert member.quiet_hours is None and member.paused_until is None


async def test_direct_answers_overtake_a_large_announcement(harness: Harness) -> None:
    """While 10,000 messages drain at the configured rate, /help is answered at once."""
    h = harness
    await make_organizer(h, "orla", "riverside")
    await h.member("ana")
    await seed_members(h.app.vault, "riverside", 10_000, h.clock.now())
    group = await h.app.services.groups.get("riverside")
    count = await h.app.services.announcements.fan_out(group, "Big day", "announcement",
                                                       h.clock.now())
    assert count >= 10_000
    app = h.app
    sent_before = len(h.chat.sent)
    stopping = asyncio.Event()
    worker = asyncio.create_task(app.delivery.run(stopping))
    try:
        async with asyncio.timeout(60):
            # Let the drain get going, then ask for help and wait for the answer.
            await h.chat.wait_until(lambda: len(h.chat.sent) >= sent_before + 500)
            asked_at = len(h.chat.sent)
            await app.services.inbox.accept([h.chat.message("ana", "/help")], h.clock.now())
            await app.processor.process_pending()
            app.delivery.wake()
            await h.chat.wait_until(
                lambda: any("what you can do" in s.text for s in h.chat.sent[asked_at:]))
            answered_at = len(h.chat.sent)
    finally:
        stopping.set()
        app.delivery.wake()
        await worker
    # Between the question and the answer went out at most the rounds of bulk rows in
    # flight and the one being claimed as the answer was queued.
    assert answered_at - asked_at <= (ROUNDS_IN_FLIGHT + 1) * app.delivery.batch_size
    assert answered_at < 10_000


async def test_announcement_rows_follow_consent_at_send_time(harness: Harness) -> None:
    h = harness
    await h.member("ana", "riverside")
    ana = await h.app.services.members.find("testchat", "ana")
    group = await h.app.services.groups.get("riverside")
    await h.app.services.outbox.enqueue([Outgoing(
        text="Later", transport="testchat", member_id=ana.id, kind="announcement",
        group_id=group.id, not_before=h.clock.advance(minutes=0))], h.clock.now())
    await h.chat.say("ana", "/leave riverside")
    await h.app.settle()
    assert not any(s.text == "Later" for s in h.chat.to("ana"))
