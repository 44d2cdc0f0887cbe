"""Issue discussions: opening, reading, commenting, following, closing; who may do what;
followers hear of comments within their own quiet hours, caps and digests; answers to bad
input; data rights."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.routing import Context
from bot.storage.models import OutboxItem
from bot.storage.models_discussions import Comment, Follow, Issue
from bot.transports.testchat import Sent
from tests.conftest import Harness

# Riverside is in Europe/London (GMT in March), hillcrest in America/New_York.
# The FakeClock starts on Monday 2026-03-02 12:00 UTC; default quiet hours are 21:00-08:00.
PHONE = "15557654321"


async def person(h: Harness, name: str, *groups: str) -> None:
    """A consenting member whose handle is their name (or 'p-NAME' for a phone number)."""
    await h.member(name, *groups)
    await h.chat.say(name, f"/name {handle_of(name)}")


def handle_of(name: str) -> str:
    return f"p-{name[-4:]}" if name.isdigit() else name


async def organizer(h: Harness, name: str, code: str = "riverside") -> None:
    """Made the way an operator does it: the admin (olga) promotes a member."""
    if not await h.app.services.members.find("testchat", "olga"):
        await h.member("olga")
    await person(h, name, code)
    replies = await h.chat.say("olga", f"/promote {name} organizer {code}")
    assert "is now organizer" in replies[0].text


async def new_issue(h: Harness, by: str = "orla", code: str = "riverside",
                    title: str = "Fix the footbridge") -> int:
    text = await answer(h, by, f"/newissue {code} {title}")
    assert text.startswith("Opened issue #"), text
    return int(text.split("#")[1].split(":")[0])


def only(replies: list[Sent]) -> str:
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0].text


async def answer(h: Harness, name: str, text: str) -> str:
    """The one direct answer `name` gets (others may be told something at the same time)."""
    return only([r for r in await h.chat.say(name, text) if r.to == name])


def mentioning(h: Harness, name: str, words: str) -> list[Sent]:
    return [s for s in h.chat.to(name) if words in s.text]


async def riverside_with_issue(h: Harness) -> int:
    """orla organizes riverside and opened an issue; ana and ben are members."""
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    await person(h, "ben", "riverside")
    return await new_issue(h)


# --- the happy paths ----------------------------------------------------------------------


async def test_organizer_opens_an_issue_that_members_find_with_comment_counts(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    second = await new_issue(h, title="Library opening hours")
    await h.chat.say("ana", f"/comment {issue_id} The handrail is loose")
    await h.chat.say("ben", f"/comment {issue_id} And the lights are out")

    listing = await answer(h, "ben", "/issues riverside")
    assert "Open issues in Riverside Neighbours:" in listing
    assert f"#{issue_id} Fix the footbridge — 2 comments" in listing
    assert f"#{second} Library opening hours — 0 comments" in listing
    assert f"#{issue_id} Fix the footbridge" in await answer(h, "ana", "/issues")


async def test_issue_shows_its_summary_and_latest_comments_by_handle_never_by_number(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await person(h, PHONE, "riverside")
    for n in range(7):
        await h.chat.say(PHONE if n % 2 else "ana", f"/comment {issue_id} Point number {n}")

    text = await answer(h, "ben", f"/issue {issue_id}")
    assert text.startswith(f"Issue #{issue_id}: Fix the footbridge — Riverside Neighbours")
    assert "Open · opened by @orla on 2 Mar 12:00 · 7 comments" in text
    assert "Latest comments:" in text
    assert "Point number 1" not in text and "Point number 2" in text  # the latest five
    assert f"@{handle_of(PHONE)} (2 Mar 12:00): Point number 5" in text
    assert "@ana (2 Mar 12:00): Point number 6" in text
    assert PHONE not in text
    assert f"/comment {issue_id} TEXT" in text and f"/follow {issue_id}" in text
    assert PHONE not in "".join(s.text for s in h.chat.sent if s.to != PHONE)


async def test_followers_get_each_comment_with_the_footer_but_not_the_commenter(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    assert "You now follow issue" in await answer(h, "ben", f"/follow {issue_id}")
    await person(h, "cyd", "riverside")  # a member who does not follow

    replies = await h.chat.say("ana", f"/comment {issue_id} The handrail is loose")
    assert {r.to for r in replies} == {"ana", "ben", "orla"}  # the creator follows too
    to_ben = next(r.text for r in replies if r.to == "ben")
    assert to_ben.startswith(f"💬 @ana on issue #{issue_id} (Fix the footbridge):\n"
                             "The handrail is loose")
    assert "— Riverside Neighbours · sent by a member (@ana)" in to_ben
    assert f"you follow issue #{issue_id}" in to_ben and f"/unfollow {issue_id}" in to_ben
    assert "/leave riverside" in to_ben and "STOP" in to_ben
    assert not mentioning(h, "cyd", "handrail")
    assert len(mentioning(h, "ana", "handrail")) == 0  # only her confirmation, which says so
    row = await OutboxItem.filter(member__handle="ben", kind="comment").first()
    assert row is not None and row.group_id is not None


async def test_commenter_follows_automatically_and_is_told_how_to_stop(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    first = await answer(h, "ana", f"/comment {issue_id} First thought")
    assert f"Comment added to issue #{issue_id}" in first
    assert "You now follow this issue" in first and f"/unfollow {issue_id}" in first
    again = await answer(h, "ana", f"/comment {issue_id} Second thought")
    assert "You follow this issue" in again

    replies = await h.chat.say("ben", f"/comment {issue_id} I agree")
    assert any(r.to == "ana" and "I agree" in r.text for r in replies)


async def test_unfollow_stops_comments_and_commenting_again_does_not_follow_again(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ana", f"/comment {issue_id} First thought")
    assert "no longer follow" in await answer(h, "ana", f"/unfollow {issue_id}")
    assert "don't follow" in await answer(h, "ana", f"/unfollow {issue_id}")

    await h.chat.say("ben", f"/comment {issue_id} Reply to ana")
    assert not mentioning(h, "ana", "Reply to ana")
    note = await answer(h, "ana", f"/comment {issue_id} One more")
    assert "You unfollowed this issue" in note and f"/follow {issue_id}" in note
    await h.chat.say("ben", f"/comment {issue_id} Another reply")
    assert not mentioning(h, "ana", "Another reply")

    await h.chat.say("ana", f"/follow {issue_id}")
    await h.chat.say("ben", f"/comment {issue_id} Welcome back")
    assert len(mentioning(h, "ana", "Welcome back")) == 1


async def test_a_follower_in_quiet_hours_gets_the_comment_when_they_end(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ben", f"/follow {issue_id}")
    h.clock.set(datetime(2026, 3, 2, 22, 0, tzinfo=UTC))  # 22:00 in London: quiet
    await h.chat.say("ana", f"/comment {issue_id} Late-night thought")
    assert not mentioning(h, "ben", "Late-night thought")

    h.clock.set(datetime(2026, 3, 3, 7, 59, tzinfo=UTC))
    await h.app.settle()
    assert not mentioning(h, "ben", "Late-night thought")
    h.clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    await h.app.settle()
    assert len(mentioning(h, "ben", "Late-night thought")) == 1


async def test_a_digest_follower_gets_the_comment_in_the_digest(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ben", f"/follow {issue_id}")
    await h.chat.say("ben", "/digest daily")
    await h.chat.say("ana", f"/comment {issue_id} Digest me")
    assert not mentioning(h, "ben", "Digest me")

    h.clock.set(datetime(2026, 3, 2, 18, 0, tzinfo=UTC))  # digest time in London
    await h.app.settle()
    digests = [s for s in h.chat.to("ben") if s.text.startswith("Your daily digest")]
    assert len(digests) == 1
    assert f"@ana on issue #{issue_id}" in digests[0].text and "Digest me" in digests[0].text


async def test_followers_who_left_the_group_or_muted_it_hear_nothing(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await person(h, "cyd", "riverside")
    for name in ("ben", "cyd"):
        await h.chat.say(name, f"/follow {issue_id}")
    await h.chat.say("ben", "/leave riverside")
    await h.chat.say("cyd", "/mutegroup riverside")
    replies = await h.chat.say("ana", f"/comment {issue_id} Anyone?")
    assert {r.to for r in replies} == {"ana", "orla"}


async def test_moderation_reviews_a_comment_before_it_is_stored(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ben", f"/follow {issue_id}")
    seen: list[str] = []

    async def gate(ctx: Context, group: object, text: str) -> bool | str:
        seen.append(text)
        if "rude" in text:
            ctx.reply("Your comment breaks riverside's rules, so it was not posted.")
            return False
        return "#77"  # the number moderation gave the post, to report it by

    h.app.services.post_gate = gate
    refused = await answer(h, "ana", f"/comment {issue_id} something rude")
    assert refused == "Your comment breaks riverside's rules, so it was not posted."
    assert await Comment.filter(issue_id=issue_id).count() == 0
    assert not mentioning(h, "ben", "rude")
    await h.chat.say("ana", f"/comment {issue_id} something kind")
    assert seen == ["something rude", "something kind"]
    kind = mentioning(h, "ben", "something kind")
    assert len(kind) == 1 and "Report it: /report #77" in kind[0].text


async def test_closing_tells_followers_the_outcome_and_ends_the_comments(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ana", f"/comment {issue_id} Please fix it")
    await person(h, "cyd", "riverside")

    replies = await h.chat.say("orla", f"/closeissue {issue_id} The council repairs it in May")
    mine = [r.text for r in replies if r.to == "orla"]
    assert mine == [f"Closed issue #{issue_id}: Fix the footbridge. 1 follower will hear the "
                    "outcome."]
    to_ana = [r.text for r in replies if r.to == "ana"]
    assert len(to_ana) == 1
    assert f"Issue #{issue_id} closed: Fix the footbridge" in to_ana[0]
    assert "Outcome: The council repairs it in May" in to_ana[0]
    assert "sent by the organizers of Riverside Neighbours" in to_ana[0]
    assert not mentioning(h, "cyd", "council")
    assert await OutboxItem.filter(kind="issue_update").count() == 1

    closed = await answer(h, "ben", f"/comment {issue_id} Too late?")
    assert closed == f"Issue #{issue_id} is closed, so it takes no more comments."
    assert await Comment.filter(issue_id=issue_id).count() == 1
    shown = await answer(h, "ben", f"/issue {issue_id}")
    assert "Closed" in shown and "Outcome (2 Mar 12:00): The council repairs it in May" in shown
    assert "already closed" in await answer(h, "orla", f"/closeissue {issue_id} Again")
    assert "is closed, so there's nothing more to hear" in await answer(
        h, "ben", f"/follow {issue_id}")
    assert f"#{issue_id}" not in await answer(h, "ben", "/issues riverside")


async def test_members_open_issues_only_where_the_group_allows_it(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    await person(h, "hal", "hillcrest")
    refused = await answer(h, "ana", "/newissue riverside Bins")
    assert refused == "Only organizers of riverside can do that."

    on = await answer(h, "orla", "/issuesopen riverside on")
    assert "Members of riverside can now open issues" in on
    issue_id = await new_issue(h, by="ana", title="Bins")
    assert (await Issue.get(id=issue_id).values_list("created_by__handle", flat=True)) == "ana"
    outsider = await answer(h, "hal", "/newissue riverside Not mine")
    assert outsider == "Join riverside first: /join riverside"

    assert "Only organizers" in await answer(h, "orla", "/issuesopen riverside off")
    assert "Only organizers" in await answer(h, "ana", "/newissue riverside Again")
    assert await Issue.all().count() == 1


# --- who may do what ----------------------------------------------------------------------


async def test_organizers_of_another_group_and_plain_members_are_refused(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await organizer(h, "hugo", "hillcrest")
    refusal = "Only organizers of riverside can do that."
    for name in ("hugo", "ana"):
        assert await answer(h, name, "/newissue riverside Take over") == refusal
        assert await answer(h, name, f"/closeissue {issue_id} Done") == refusal
        assert await answer(h, name, "/issuesopen riverside on") == refusal
    issue = await Issue.get(id=issue_id).prefetch_related("group")
    assert issue.status == "open" and issue.outcome is None
    assert await Issue.all().count() == 1
    assert not issue.group.settings.get("members_open_issues")


async def test_only_members_of_the_group_comment_or_follow(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await person(h, "hal", "hillcrest")
    expected = f"Issue #{issue_id} is for members of riverside: /join riverside first."
    assert await answer(h, "hal", f"/comment {issue_id} Hello") == expected
    assert await answer(h, "hal", f"/follow {issue_id}") == expected
    assert await Comment.all().count() == 0
    assert not await Follow.filter(member__handle="hal").exists()
    assert "Fix the footbridge" in await answer(h, "hal", f"/issue {issue_id}")


async def test_help_lists_the_discussion_commands_by_role(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    member_help = await answer(h, "ana", "HELP")
    assert "/comment NUMBER TEXT" in member_help and "/vote POLL OPTION" in member_help
    assert "/closeissue" not in member_help and "/newissue" not in member_help
    organizer_help = await answer(h, "orla", "HELP")
    assert "/newissue CODE TITLE" in organizer_help and "/closepoll POLL" in organizer_help


# --- bad input ------------------------------------------------------------------------------


async def test_bad_input_gets_a_specific_one_liner_and_changes_nothing(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    answers = {
        "/issue": "Which issue? Usage: /issue NUMBER",
        "/issue 99": "There's no issue 99. /issues CODE lists a group's issues.",
        "/issue bridge": "'bridge' isn't an issue number. /issues CODE lists a group's issues.",
        "/issues nowhere": "There's no group 'nowhere'. /groups lists them.",
        "/comment 99 Hi": "There's no issue 99. /issues CODE lists a group's issues.",
        f"/comment {issue_id}": f"Your comment is empty. Usage: /comment {issue_id} TEXT",
        f"/comment {issue_id} " + "x" * 2001:
            "That's 2001 characters; please keep comments under 2000.",
        "/follow 99": "There's no issue 99. /issues CODE lists a group's issues.",
        f"/unfollow {issue_id}": f"You don't follow issue #{issue_id}.",
        "/newissue riverside": "The issue needs a title: /newissue riverside TITLE",
        "/newissue": "Which group? Usage: /newissue CODE TITLE",
        "/newissue riverside " + "t" * 121: "Please keep the title under 120 characters.",
        f"/closeissue {issue_id}": f"What was decided? /closeissue {issue_id} OUTCOME",
        "/issuesopen riverside maybe": "Say on or off, e.g. /issuesopen riverside on",
    }
    for command, expected in answers.items():
        said = "ana" if command.startswith(("/comment", "/follow", "/unfollow")) else "orla"
        assert await answer(h, said, command) == expected, command
    assert await Comment.all().count() == 0
    assert await Issue.filter(status="open").count() == 1


async def test_the_thread_reads_oldest_first(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ben", f"/comment {issue_id} Who do we call?")
    await h.chat.say("ana", f"/comment {issue_id} The council, 0800 number on their site")
    view = await answer(h, "orla", f"/issue {issue_id}")
    assert view.index("@ben") < view.index("@ana")
    assert "Comments:" in view and "You follow it" in view


# --- data rights -----------------------------------------------------------------------------


async def test_mydata_shows_comments_and_issues_and_forgetme_erases_them(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    await person(h, "ben", "riverside")
    await h.chat.say("orla", "/issuesopen riverside on")
    issue_id = await new_issue(h, by="ana", title="Crossing on Mill Lane")
    await h.chat.say("ana", f"/comment {issue_id} Cars are too fast here")
    await h.chat.say("ben", f"/follow {issue_id}")

    data = await answer(h, "ana", "/mydata")
    assert f"Comments: issue #{issue_id} Crossing on Mill Lane, group riverside" in data
    assert "text Cars are too fast here" in data
    assert f"Issues: issue #{issue_id} Crossing on Mill Lane, you opened it, follow it" in data

    # A comment still waiting for ben's quiet hours to end is withdrawn with her data.
    h.clock.set(datetime(2026, 3, 2, 22, 0, tzinfo=UTC))
    await h.chat.say("ana", f"/comment {issue_id} Said late at night")
    await h.chat.say("ana", "/forgetme confirm")
    h.clock.set(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    await h.app.settle()
    assert not mentioning(h, "ben", "Said late at night")

    issue = await Issue.get(id=issue_id)
    assert issue.created_by_id is None and issue.title == "Crossing on Mill Lane"
    assert await Comment.filter(text__isnull=False).count() == 0
    assert await Comment.filter(author_id__isnull=False).count() == 0
    shown = await answer(h, "ben", f"/issue {issue_id}")
    assert "Cars are too fast" not in shown and "(a comment its author erased" in shown
    assert "opened by @" not in shown
    assert not await Follow.filter(member__handle="ana").exists()
