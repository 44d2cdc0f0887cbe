"""Consent: the notice, YES, STOP and START, and what each state may receive."""

from __future__ import annotations

import dataclasses

import pytest

from bot.policy.consent import is_opt_out
from bot.services.outbox import Outgoing
from bot.storage.models import InboxItem, Member, Suppression
from tests.conftest import Harness

NOTICE_START = "Hi! This is"


async def test_first_message_gets_exactly_the_notice(harness: Harness) -> None:
    replies = await harness.chat.say("ana", "hello")
    assert len(replies) == 1
    notice = replies[0].text
    assert notice.startswith(NOTICE_START)
    org = harness.config.organization
    for must in (org.name, org.contact, org.privacy_url, "YES", "STOP"):
        assert must in notice


async def test_pending_member_gets_the_notice_at_most_once_a_day(harness: Harness) -> None:
    await harness.chat.say("ana", "hello")
    assert await harness.chat.say("ana", "what is this?") == []
    harness.clock.advance(hours=25)
    again = await harness.chat.say("ana", "hello?")
    assert [r.text.startswith(NOTICE_START) for r in again] == [True]


async def test_yes_records_consent_in_the_ledger(harness: Harness) -> None:
    await harness.chat.say("ana", "hello")
    replies = await harness.chat.say("ana", "yes!")
    assert "You're in" in replies[0].text
    member = await harness.app.services.members.find("testchat", "ana")
    history = await harness.app.services.consent.history(member.id)
    assert [(c.action, c.channel, c.method) for c in history] == [
        ("granted", "testchat", "YES")]
    assert history[0].notice_version == harness.app.services.notice_version


async def test_yes_before_seeing_the_notice_shows_the_notice_instead(harness: Harness) -> None:
    replies = await harness.chat.say("ana", "YES")
    assert replies[0].text.startswith(NOTICE_START)
    member = await harness.app.services.members.find("testchat", "ana")
    assert member.status == "pending"


async def test_never_consented_member_receives_nothing_but_the_notice(harness: Harness) -> None:
    await harness.member("olga")
    await harness.member("ben", "riverside")
    for text in ("hello", "/groups", "/join riverside", "/events", "/mygroups", "random",
                 "/help", "HELP", "/why"):
        await harness.chat.say("ana", text)
    # Someone queues a group message straight at her: the gate must still refuse it.
    ana = await harness.app.services.members.find("testchat", "ana")
    group = await harness.app.services.groups.get("riverside")
    await harness.app.services.outbox.enqueue(
        [Outgoing(text="Big news", transport="testchat", member_id=ana.id,
                  kind="announcement", group_id=group.id)], harness.clock.now())
    await harness.chat.say("olga", "/groups")
    to_ana = harness.chat.to("ana")
    assert to_ana, "she should have had the notice"
    for sent in to_ana:
        assert sent.text.startswith(NOTICE_START) or "haven't joined" in sent.text
    assert not any("Big news" in s.text for s in to_ana)


async def test_stop_confirms_exactly_once_and_then_silence(harness: Harness) -> None:
    await harness.member("ana", "riverside")
    first = await harness.chat.say("ana", "STOP")
    assert len(first) == 1 and "unsubscribed" in first[0].text
    assert "left 1 group" in first[0].text
    assert await harness.chat.say("ana", "stop") == []
    assert await harness.chat.say("ana", "/groups") == []
    assert await harness.chat.say("ana", "/join riverside") == []
    help_reply = await harness.chat.say("ana", "HELP")
    assert "START" in help_reply[0].text


async def test_stop_works_when_one_of_the_members_addresses_is_suppressed_already(
        harness: Harness) -> None:
    """An address someone stopped from and then erased (/forgetme keeps its suppression)
    can come back linked to a new member, who may opt in and later STOP. The STOP must
    go through: on PostgreSQL the suppression that exists already failed its insert, and
    with it the whole transaction, so the STOP was never recorded."""
    await harness.member("ana", "riverside")
    app = harness.app
    await Suppression.create(address_hash=app.services.members.address_hash("testchat", "ana"),
                             created_at=harness.clock.now())
    replies = await harness.chat.say("ana", "STOP")
    assert len(replies) == 1 and "unsubscribed" in replies[0].text
    assert await Member.filter(status="stopped").count() == 1
    assert await Suppression.all().count() == 1
    assert await InboxItem.filter(status="done").count() == await InboxItem.all().count()


async def test_a_newcomer_whose_other_address_said_stop_before_stays_stopped(
        harness: Harness) -> None:
    """WhatsApp sends a business-scoped id and, beside it, the phone number. Someone who
    stopped and erased their data (the number stays suppressed) and writes again under a
    new business-scoped id is a new member: stopped, as the number said, not pending."""
    app, chat = harness.app, harness.chat
    await Suppression.create(address_hash=app.services.members.address_hash("testchat", "ana"),
                             created_at=harness.clock.now())
    again = dataclasses.replace(chat.message("ana-new-id", "hi"), sender_alt="ana")
    await chat.deliver([again])
    assert await Member.filter(status="stopped").count() == 1
    assert await Member.filter(status="pending").count() == 0


@pytest.mark.parametrize("word", ["STOP", "stop", "Stop!", "STOPALL", "unsubscribe",
                                  "CANCEL", "end", "QUIT.", "optout", "REVOKE",
                                  "please stop messaging me", "Stop texting me please"])
def test_opt_out_words_and_clear_sentences(word: str) -> None:
    assert is_opt_out(word)


@pytest.mark.parametrize("text", ["help stop this bill", "stop the pipeline!",
                                  "we should end this", "don't stop", "STOP 12", "start"])
def test_opt_out_needs_the_whole_message(text: str) -> None:
    assert not is_opt_out(text)


async def test_sentence_opt_out_withdraws_consent(harness: Harness) -> None:
    await harness.member("ana")
    replies = await harness.chat.say("ana", "Please stop messaging me.")
    assert "unsubscribed" in replies[0].text
    member = await harness.app.services.members.find("testchat", "ana")
    assert member.status == "stopped"


async def test_help_stop_this_bill_is_not_an_opt_out(harness: Harness) -> None:
    await harness.member("ana")
    await harness.chat.say("ana", "help stop this bill")
    member = await harness.app.services.members.find("testchat", "ana")
    assert member.status == "active"


async def test_start_after_stop_records_consent_anew(harness: Harness) -> None:
    await harness.member("ana", "riverside")
    await harness.chat.say("ana", "STOP")
    harness.clock.advance(minutes=5)
    replies = await harness.chat.say("ana", "START")
    assert "Welcome back" in replies[0].text
    member = await harness.app.services.members.find("testchat", "ana")
    actions = [c.action for c in await harness.app.services.consent.history(member.id)]
    assert actions == ["granted", "withdrawn", "granted"]
    assert member.status == "active"


async def test_messages_queued_before_stop_are_not_sent_after(harness: Harness) -> None:
    await harness.member("ana", "riverside")
    ana = await harness.app.services.members.find("testchat", "ana")
    group = await harness.app.services.groups.get("riverside")
    # Held until later (quiet hours would do this): still queued when she says STOP.
    await harness.app.services.outbox.enqueue(
        [Outgoing(text="Tomorrow's meeting", transport="testchat", member_id=ana.id,
                  kind="announcement", group_id=group.id,
                  not_before=harness.clock.advance(minutes=0).replace(hour=23))],
        harness.clock.now())
    await harness.chat.say("ana", "STOP")
    harness.clock.advance(hours=12)
    await harness.app.settle()
    assert not any("Tomorrow's meeting" in s.text for s in harness.chat.to("ana"))


async def test_pending_member_may_stop_and_is_told_once(harness: Harness) -> None:
    await harness.chat.say("ana", "hello")
    replies = await harness.chat.say("ana", "STOP")
    assert len(replies) == 1 and "unsubscribed" in replies[0].text
    assert await harness.chat.say("ana", "hello again") == []
