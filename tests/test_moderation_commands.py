"""Moderator commands, reports and appeals: who may do what, in which group, and what
each changes. Real database, the test chat, a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.storage.models import Membership
from bot.storage.models_moderation import CarriedBan, ModAction, ModBan, ModMute, ModWarning
from tests.conftest import Harness
from tests.test_moderation_enforcement import PHONE_POST, people, promote, setrule, told

MODERATOR_COMMANDS = [
    "/warn ben riverside be nice", "/mute ben riverside 1h", "/unmute ben riverside",
    "/remove ben riverside spam", "/ban ben spam 7d", "/unban ben", "/warnings ben",
    "/reports riverside", "/resolve 1 dismiss fine", "/appeals riverside",
    "/decide 1 overturn fine", "/setrule riverside flood.max_messages 1",
    "/modlog riverside",
]


async def snapshot() -> tuple[int, int, int, list[str]]:
    statuses = await Membership.all().order_by("id").values_list("status", flat=True)
    return (await ModAction.all().count(), await ModWarning.all().count(),
            await ModMute.all().count(), list(statuses))


async def test_a_plain_member_cannot_use_moderator_commands(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben")
    before = await snapshot()
    for command in MODERATOR_COMMANDS:
        replies = await h.chat.say("ana", command)
        assert len(replies) == 1 and replies[0].to == "ana", command
        assert replies[0].text.startswith("Only moderators"), (command, replies[0].text)
    assert await snapshot() == before
    assert not h.chat.to("ben")[-1].text.startswith("A moderator")


async def test_a_moderator_of_one_group_cannot_act_in_another(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe", groups=("riverside", "hillcrest"))
    await promote(h, "moe", "moderator", "riverside")
    before = await snapshot()
    for command in ("/warn ben hillcrest be nice", "/mute ben hillcrest 1h",
                    "/remove ben hillcrest spam", "/modlog hillcrest", "/reports hillcrest",
                    "/setrule hillcrest links.policy none"):
        replies = await h.chat.say("moe", command)
        assert [r.text for r in replies] == ["Only moderators of hillcrest can do that."]
    assert await snapshot() == before
    # In riverside moe may.
    assert "Warned @ben in riverside" in told(await h.chat.say("moe", "/warn ben riverside hi"),
                                              "moe")


async def test_a_moderator_cannot_act_on_an_organizer(harness: Harness) -> None:
    h = harness
    await people(h, "orla", "moe")
    await promote(h, "orla", "organizer")
    await promote(h, "moe", "moderator")
    replies = await h.chat.say("moe", "/mute orla riverside 1h")
    assert "as much say in riverside as you" in replies[0].text
    assert await ModMute.all().count() == 0


async def test_warn_tells_the_member_the_reason_and_how_to_appeal(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    replies = await h.chat.say("moe", "/warn ben riverside keep it friendly")
    assert told(replies, "moe").startswith("Warned @ben in riverside (action #")
    notice = told(replies, "ben")
    assert "warned you: keep it friendly" in notice and "/appeal" in notice
    listing = told(await h.chat.say("moe", "/warnings ben"), "moe")
    assert "@ben has 1 active warning" in listing
    assert "riverside: a moderator, Mon 2 Mar, 12:00 GMT, counts until Wed 1 Apr" in listing
    own = told(await h.chat.say("ben", "/warnings"), "ben")
    assert "You have 1 active warning" in own


async def test_mute_holds_posts_until_unmute(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    replies = await h.chat.say("moe", "/mute ben riverside 2h")
    assert "Muted @ben in riverside until Mon 2 Mar, 14:00 GMT" in told(replies, "moe")
    assert "muted you until Mon 2 Mar, 14:00 GMT" in told(replies, "ben")
    held = await h.chat.say("ben", "/post riverside hello all")
    assert [r.to for r in held] == ["ben"] and "You're muted in riverside" in held[0].text
    await h.chat.say("moe", "/unmute ben riverside")
    posted = await h.chat.say("ben", "/post riverside hello all")
    assert any(r.to == "ana" and "hello all" in r.text for r in posted)


async def test_remove_takes_a_member_out_and_they_cannot_rejoin(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    replies = await h.chat.say("moe", "/remove ben riverside repeated spam")
    assert "removed you from Riverside Neighbours: repeated spam" in told(replies, "ben")
    assert "Join riverside first" in (await h.chat.say("ben", "/post riverside hi"))[0].text
    assert "You were removed from riverside" in (await h.chat.say("ben", "/join riverside"))[
        0].text


async def test_bans_block_posts_and_joins_across_the_groups_sharing_the_list(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "moe", groups=("riverside", "hillcrest"))
    await people(h, "ben", groups=("riverside",))
    await promote(h, "moe", "moderator", "riverside")
    await promote(h, "moe", "moderator", "hillcrest")
    assert "a reason and how long" in (await h.chat.say("moe", "/ban ben 7d"))[0].text
    replies = await h.chat.say("moe", "/ban ben threats to members 7d")
    assert "Banned @ben from hillcrest, riverside until Mon 9 Mar" in told(replies, "moe")
    assert "banned from hillcrest, riverside" in told(replies, "ben")
    assert h.app.services.extra["moderation"].is_banned
    assert await h.app.services.extra["moderation"].is_banned(
        (await h.app.services.members.by_handle("ben")).id, h.clock.now())
    for code in ("riverside", "hillcrest"):
        assert "removed from" in (await h.chat.say("ben", f"/join {code}"))[0].text
    assert "Join riverside first" in (await h.chat.say("ben", "/post riverside hi"))[0].text
    # When the ban ends, ben is back where he was: in riverside, free to join hillcrest.
    h.clock.advance(days=7, minutes=1)
    await h.app.settle()
    assert "Your ban from hillcrest, riverside has ended." in told(h.chat.sent, "ben")
    posted = await h.chat.say("ben", "/post riverside back again")
    assert any(r.to == "ana" and "back again" in r.text for r in posted)
    assert "You joined" in (await h.chat.say("ben", "/join hillcrest"))[0].text


async def ban_then_erase(h: Harness, duration: str) -> datetime:
    """Ben is banned by moe for DURATION, then erases his data; returns the ban's end."""
    await people(h, "ana", "moe", "ben")
    await promote(h, "moe", "moderator")
    await h.chat.say("moe", f"/ban ben threats to members {duration}")
    ends = (await ModBan.get()).until
    await h.chat.say("ben", "/forgetme confirm")
    return ends


async def test_a_ban_survives_the_banned_members_own_erasure(harness: Harness) -> None:
    h = harness
    ends = await ban_then_erase(h, "7d")
    assert await CarriedBan.all().count() == 1  # a keyed hash, the groups and the end
    h.clock.advance(days=1)
    await h.chat.say("ben", "hello again")
    await h.chat.say("ben", "YES")
    refused = await h.chat.say("ben", "/join riverside")
    assert "removed from" in refused[0].text
    assert (await ModBan.get(lifted_at=None)).until == ends
    assert (await ModAction.filter(action="ban", source="auto").count()) == 1
    assert await CarriedBan.all().count() == 0  # put back once, then forgotten
    # The rest of the original ban, not a new one: it ends when the first would have.
    h.clock.advance(days=6, minutes=1)
    await h.app.settle()
    assert "You joined" in (await h.chat.say("ben", "/join riverside"))[0].text


async def test_an_ended_ban_is_not_carried_past_erasure(harness: Harness) -> None:
    h = harness
    await ban_then_erase(h, "1d")
    h.clock.advance(days=2)
    await h.app.settle()
    assert await CarriedBan.all().count() == 0
    await h.chat.say("ben", "hello again")
    await h.chat.say("ben", "YES")
    assert "You joined" in (await h.chat.say("ben", "/join riverside"))[0].text


async def test_unban_lifts_the_ban_at_once(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    await h.chat.say("moe", "/ban ben spam 30d")
    replies = await h.chat.say("moe", "/unban ben")
    assert "Lifted the ban on @ben (riverside" in told(replies, "moe")
    assert "You're already in" in (await h.chat.say("ben", "/join riverside"))[0].text


async def test_reports_reach_moderators_without_the_reporter_and_resolve_acts(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    await h.chat.say("ben", "/post riverside Buy cheap watches")
    replies = await h.chat.say("ana", "/report #1 this is spam")
    assert "Thank you — your report #1 went to the moderators" in told(replies, "ana")
    alert = told(replies, "moe")
    assert "New report #1 in riverside about post #1 by @ben: this is spam" in alert
    assert "ana" not in alert and not told(replies, "ben")
    queue = told(await h.chat.say("moe", "/reports riverside"), "moe")
    assert "#1 · Mon 2 Mar, 12:00 GMT · @ben (post #1) · this is spam" in queue
    done = await h.chat.say("moe", "/resolve 1 mute 24h selling")
    assert "Report #1 resolved: mute. Muted @ben" in told(done, "moe")
    assert "muted you until" in told(done, "ben") and "ana" not in told(done, "ben")
    assert "was reviewed: action was taken" in told(done, "ana")
    assert "No open reports" in (await h.chat.say("moe", "/reports riverside"))[0].text
    held = await h.chat.say("ben", "/post riverside more watches")
    assert [r.to for r in held] == ["ben"]
    # Moderators who are themselves reported never see it.
    await promote(h, "ben", "moderator")
    await h.chat.say("ana", "/report #1 still spam")
    assert "New report #2" not in told(h.chat.sent, "ben")


async def test_a_report_without_a_post_names_its_group(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "moe")
    await promote(h, "moe", "moderator")
    replies = await h.chat.say("ana", "/report someone keeps shouting at meetings")
    assert "New report #1 in riverside: someone keeps shouting" in told(replies, "moe")
    refused = await h.chat.say("moe", "/resolve 1 warn no")
    assert "names no post" in refused[0].text


async def test_an_appeal_cannot_be_decided_by_the_moderator_who_acted(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe", "may")
    await promote(h, "moe", "moderator")
    await promote(h, "may", "moderator")
    replies = await h.chat.say("moe", "/mute ben riverside 7d")
    action = int(told(replies, "moe").split("action #")[1].split(")")[0])
    appealed = await h.chat.say("ben", f"/appeal {action} I was quoting someone else")
    assert "Your appeal #1 went to the moderators" in told(appealed, "ben")
    assert "Appeal #1 against action" in told(appealed, "may")
    assert not told(appealed, "moe")  # the one who acted is not asked
    refused = await h.chat.say("moe", "/decide 1 overturn fine")
    assert "another moderator must decide" in refused[0].text
    assert "open appeals in riverside" in (await h.chat.say("may", "/appeals riverside"))[
        0].text.lower()
    decided = await h.chat.say("may", "/decide 1 overturn context matters")
    assert "Appeal #1 overturned" in told(decided, "may")
    assert "was overturned. It no longer stands. The moderator's note: context matters" in \
        told(decided, "ben")
    posted = await h.chat.say("ben", "/post riverside thanks")
    assert any(r.to == "ana" and "thanks" in r.text for r in posted)
    assert "(overturned)" in (await h.chat.say("may", "/modlog riverside"))[0].text


async def test_an_automatic_removal_overturned_on_appeal_restores_the_membership(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    await setrule(h, "riverside doxxing.ladder remove")
    replies = await h.chat.say("ben", f"/post riverside {PHONE_POST}")
    assert "you were removed from riverside" in told(replies, "ben")
    assert "the bot removed @ben" in told(replies, "moe")
    action = (await ModAction.get(rule_id="doxxing", source="auto")).id
    await h.chat.say("ben", f"/appeal {action} it was the library's public number")
    await h.chat.say("moe", "/decide 1 overturn fair enough")
    assert "You're already in" in (await h.chat.say("ben", "/join riverside"))[0].text


async def test_only_the_affected_member_may_appeal(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    await h.chat.say("moe", "/warn ben riverside calm down")
    refused = await h.chat.say("ana", "/appeal 1 unfair to ben")
    assert "There's no action #1 against you" in refused[0].text


async def test_setrule_changes_one_rule_and_answers_bad_values_in_one_line(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "moe")
    await promote(h, "moe", "moderator")
    bad = await h.chat.say("moe", "/setrule riverside flood.max_messages lots")
    assert [r.text for r in bad] == [
        "flood.max_messages must be a whole number, like 5 (got 'lots')"]
    ok = told(await h.chat.say("moe", "/setrule riverside links.policy none"), "moe")
    assert ok.startswith("Done: links.policy changed for riverside") and "No links" in ok
    rules = told(await h.chat.say("ana", "/rules riverside"), "ana")
    assert "No links" in rules and "/appeal" in rules
    assert "No links" not in told(await h.chat.say("ana", "/rules hillcrest"), "ana")
    row = await ModAction.get(action="setrule")
    assert row.reason == "links.policy = none" and row.actor_handle == "moe"


async def test_blocked_words_stay_out_of_the_audit_log_and_the_rules(harness: Harness) -> None:
    h = harness
    await people(h, "ana")
    await setrule(h, "riverside blocklist.add idiot, dunce")
    row = await ModAction.get(action="setrule")
    assert row.reason == "blocklist.add (2 entries)"
    assert "idiot" not in told(await h.chat.say("ana", "/rules riverside"), "ana")


async def test_modlog_lists_the_latest_actions(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    await h.chat.say("ben", f"/post riverside {PHONE_POST}")
    await h.chat.say("moe", "/warn ben riverside again")
    log = told(await h.chat.say("moe", "/modlog riverside"), "moe").split("\n")
    assert log[0] == "Latest moderation in riverside:"
    assert log[1].startswith("#2 ") and "@moe · warn → @ben · rule moderator · again" in log[1]
    assert "the bot · hold → @ben · rule doxxing" in log[2]
    for _ in range(25):
        await h.chat.say("moe", "/warn ben riverside x")
    assert len(told(await h.chat.say("moe", "/modlog riverside"), "moe").split("\n")) == 21


async def test_mod_alerts_reach_moderators_in_their_quiet_hours(harness: Harness) -> None:
    h = harness
    h.clock.set(datetime(2026, 3, 2, 23, 0, tzinfo=UTC))  # quiet hours in London
    await people(h, "ana", "moe")
    await promote(h, "moe", "moderator")
    replies = await h.chat.say("ana", "/report someone posted a threat")
    assert "New report #1" in told(replies, "moe")


async def test_help_shows_moderator_commands_only_to_moderators(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "moe")
    await promote(h, "moe", "moderator")
    assert "/warn HANDLE" not in told(await h.chat.say("ana", "HELP"), "ana")
    assert "/report" in told(await h.chat.say("ana", "HELP"), "ana")
    assert "/warn HANDLE CODE REASON" in told(await h.chat.say("moe", "HELP"), "moe")



async def test_a_ban_removes_the_member_from_linked_rooms_and_deletes_what_they_say(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "orla")
    await promote(h, "orla", "organizer")
    await h.chat.say("orla", "/linkroom riverside", room="park")
    await h.chat.say("ben", "hello park", room="park", message_id="b-1")
    await h.chat.say("orla", "/ban ben harassment 7d")
    assert ("remove", "park", "ben") in h.chat.actions
    replies = await h.chat.say("ben", "still here", room="park", message_id="b-2")
    assert ("delete", "park", "b-2") in h.chat.actions
    assert "You're banned from riverside until" in told(replies, "ben")


async def test_lifting_a_ban_or_a_mute_lets_the_member_back_into_linked_rooms(
        harness: Harness) -> None:
    h = harness
    await people(h, "ana", "ben", "orla")
    await promote(h, "orla", "organizer")
    await h.chat.say("orla", "/linkroom riverside", room="park")
    await h.chat.say("ben", "hello park", room="park", message_id="b-1")
    await h.chat.say("orla", "/ban ben harassment 7d")
    await h.chat.say("orla", "/unban ben")
    assert ("unban", "park", "ben") in h.chat.actions
    await h.chat.say("orla", "/mute ben riverside 1h")
    await h.chat.say("orla", "/unmute ben riverside")
    assert ("unrestrict", "park", "ben") in h.chat.actions
    # A ban that runs out lets them back in too.
    await h.chat.say("orla", "/ban ben harassment 1d")
    h.chat.actions.clear()
    h.clock.advance(days=1, minutes=1)
    await h.app.settle()
    assert h.chat.actions == [("unban", "park", "ben")]


async def test_odd_input_gets_a_one_line_answer(harness: Harness) -> None:
    h = harness
    await people(h, "ana", "moe")
    await promote(h, "moe", "moderator")
    for command, expected in [
        (f"/warn {'x' * 60} riverside hi", "There's no member"),
        (f"/unban {'x' * 60}", "There's no member"),
        ("/mute ana riverside forever", "is not a duration"),
        ("/resolve ² dismiss", "Usage: /resolve"),
        ("/appeal ² why", "Usage: /appeal"),
        ("/decide 9 maybe", "Usage: /decide"),
        ("/report", "Usage: /report"),
    ]:
        replies = await h.chat.say("moe", command)
        assert len(replies) == 1 and expected in replies[0].text, (command, replies)
