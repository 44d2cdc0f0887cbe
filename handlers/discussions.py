"""Issue discussions: listing and reading issues, commenting, following; organizers open
and close issues and decide whether plain members may open them too.

Every organizer command checks the member's role in the group of THAT issue, and every
bad input gets a one-line answer before anything changes. Members appear by handle only.
"""

from __future__ import annotations

from typing import Any

from bot.routing import Context, Router
from bot.services.discussions import (
    FOLLOWING_ALREADY,
    FOLLOWING_NOW,
    MAX_COMMENT,
    MAX_OUTCOME,
    MAX_TITLE,
    CommentView,
    DiscussionService,
    IssueView,
)
from handlers.common import group_arg, numbered_arg, require_role

router = Router()
SECTION = "Discussions"
ORGANIZERS = "Organizers"
LATEST = 5  # comments shown by /issue
SHOWN_CHARS = 280  # of each comment in /issue: five long comments would not fit a message
ON_WORDS = {"on": True, "yes": True, "off": False, "no": False}


def discussions(ctx: Context) -> DiscussionService:
    return ctx.services.extra["discussions"]


async def issue_arg(ctx: Context, text: str, usage: str) -> IssueView | None:
    """The issue numbered by `text`, or a one-line answer saying what is wrong."""
    return await numbered_arg(ctx, text, usage, "issue", "/issues CODE lists a group's issues.",
                              discussions(ctx).get)


async def organizer_of(ctx: Context, group_id: int) -> bool:
    """Organizers of the issue's own group only (or an admin); a one-line refusal otherwise."""
    group = await ctx.services.groups.by_id(group_id)
    return group is not None and await require_role(ctx, group, "organizer")


async def member_of(ctx: Context, view: IssueView) -> bool:
    if await ctx.services.groups.role(ctx.member.id, view.group_id) is not None:
        return True
    ctx.reply(f"Issue #{view.id} is for members of {view.group_code}: /join {view.group_code} "
              "first.")
    return False


def split_first(args: str) -> tuple[str, str]:
    first, _, rest = args.strip().partition(" ")
    return first, rest.strip()


# --- members ---------------------------------------------------------------------------------


@router.command("issues", usage="/issues [CODE]", summary="open issues of a group",
                section=SECTION)
async def issues(ctx: Context) -> None:
    if ctx.args.strip():
        group = await group_arg(ctx, ctx.args.split()[0], "/issues CODE")
        if group is None:
            return
        groups, where = [group], group.name
    else:
        groups = [g for g, _ in await ctx.services.groups.of_member(ctx.member.id)]
        if not groups:
            ctx.reply("You're not in any group yet. /groups to find one, or /issues CODE.")
            return
        where = "your groups"
    found: list[IssueView] = []
    for group in groups:
        found += await discussions(ctx).open_issues(group.id)
    if not found:
        ctx.reply(f"No open issues in {where}.")
        return
    lines = [f"Open issues in {where}:"]
    for v in found:
        lines.append(f"#{v.id} {v.title} — {_comments(v.comments)}"
                     + ("" if len(groups) == 1 else f" [{v.group_code}]"))
    lines.append("Read one: /issue NUMBER · Comment: /comment NUMBER TEXT")
    ctx.reply("\n".join(lines))


@router.command("issue", usage="/issue NUMBER", summary="an issue and its latest comments",
                section=SECTION)
async def issue(ctx: Context) -> None:
    view = await issue_arg(ctx, ctx.args, "/issue NUMBER")
    if view is None:
        return
    opened = f"opened by @{view.creator_handle}" if view.creator_handle else "opened"
    lines = [f"Issue #{view.id}: {view.title} — {view.group_name} ({view.group_code})",
             f"{'Closed' if view.closed else 'Open'} · {opened} on {view.when(view.created_at)}"
             f" · {_comments(view.comments)}"]
    if view.closed and view.closed_at is not None:
        lines.append(f"Outcome ({view.when(view.closed_at)}): {view.outcome}")
    lines += await _poll_lines(ctx, view)
    shown = await discussions(ctx).latest_comments(view.id, LATEST)
    if shown:
        lines.append("Latest comments:" if view.comments > len(shown) else "Comments:")
        lines += [_comment_line(view, c) for c in shown]
    lines.append(await _next_steps(ctx, view))
    ctx.reply("\n".join(lines))


async def _poll_lines(ctx: Context, view: IssueView) -> list[str]:
    polls = await ctx.services.extra["polls"].of_issue(view)
    return [f"Poll #{p.id}: {p.question} ({'closed' if p.closed else 'open'}, "
            f"{p.total} vote{'s' if p.total != 1 else ''}) — /poll {p.id}" for p in polls]


def _comment_line(view: IssueView, c: CommentView) -> str:
    if c.text is None:
        return f"(a comment its author erased, {view.when(c.created_at)})"
    text = c.text if len(c.text) <= SHOWN_CHARS else c.text[:SHOWN_CHARS - 1] + "…"
    return f"@{c.handle or 'member'} ({view.when(c.created_at)}): {text}"


async def _next_steps(ctx: Context, view: IssueView) -> str:
    following = await discussions(ctx).is_following(view.id, ctx.member.id)
    follow = (f"You follow it: /unfollow {view.id}" if following
              else f"Hear of new comments: /follow {view.id}")
    if view.closed:
        return "This issue is closed." + (f" {follow}" if following else "")
    return f"Comment: /comment {view.id} TEXT · {follow}"


@router.command("comment", usage="/comment NUMBER TEXT", summary="comment on an issue",
                section=SECTION)
async def comment(ctx: Context) -> None:
    first, text = split_first(ctx.args)
    view = await issue_arg(ctx, first, "/comment NUMBER TEXT")
    if view is None:
        return
    if view.closed:
        ctx.reply(f"Issue #{view.id} is closed, so it takes no more comments.")
        return
    if not await member_of(ctx, view):
        return
    if not text:
        ctx.reply(f"Your comment is empty. Usage: /comment {view.id} TEXT")
        return
    if len(text) > MAX_COMMENT:
        ctx.reply(f"That's {len(text)} characters; please keep comments under {MAX_COMMENT}.")
        return
    s = ctx.services
    verdict: object = True
    if s.post_gate is not None:
        verdict = await s.post_gate(ctx, await s.groups.by_id(view.group_id), text)
        if not verdict:
            return  # moderation held it and told the author why
    ref = verdict if isinstance(verdict, str) else None  # "#12": followers /report by it
    result = await discussions(ctx).comment(view.id, ctx.member.id, ctx.member.handle, text,
                                            ctx.now, post_ref=ref)
    if result is None:  # closed between reading it and locking it
        ctx.reply(f"Issue #{view.id} is closed, so it takes no more comments.")
        return
    for notice in result.notices:
        ctx.send(notice)
    ctx.reply(f"Comment added to issue #{view.id} ({view.title}). "
              + _follow_note(view.id, result.following))


def _follow_note(issue_id: int, following: str) -> str:
    if following == FOLLOWING_NOW:
        return (f"You now follow this issue and will hear of new comments; "
                f"/unfollow {issue_id} to stop.")
    if following == FOLLOWING_ALREADY:
        return f"You follow this issue; /unfollow {issue_id} to stop."
    return f"You unfollowed this issue, so you won't hear of replies; /follow {issue_id} to."


@router.command("follow", usage="/follow NUMBER", summary="hear of an issue's new comments",
                section=SECTION)
async def follow(ctx: Context) -> None:
    view = await issue_arg(ctx, ctx.args, "/follow NUMBER")
    if view is None or not await member_of(ctx, view):
        return
    if view.closed:
        ctx.reply(f"Issue #{view.id} is closed, so there's nothing more to hear. "
                  f"/issue {view.id} shows its outcome.")
        return
    if not await discussions(ctx).follow(view.id, ctx.member.id, ctx.now):
        ctx.reply(f"You already follow issue #{view.id}. /unfollow {view.id} to stop.")
        return
    ctx.reply(f"You now follow issue #{view.id} ({view.title}): new comments, polls and its "
              "outcome come to you, within your quiet hours and daily limit. "
              f"/unfollow {view.id} to stop.")


@router.command("unfollow", usage="/unfollow NUMBER", summary="stop hearing of an issue",
                section=SECTION)
async def unfollow(ctx: Context) -> None:
    view = await issue_arg(ctx, ctx.args, "/unfollow NUMBER")
    if view is None:
        return
    if await discussions(ctx).unfollow(view.id, ctx.member.id):
        ctx.reply(f"You no longer follow issue #{view.id} ({view.title}). "
                  f"/follow {view.id} to follow it again.")
    else:
        ctx.reply(f"You don't follow issue #{view.id}.")


# --- organizers (and members, where the group lets them open issues) ---------------------


@router.command("newissue", usage="/newissue CODE TITLE", summary="open an issue to discuss",
                audience="organizer", section=ORGANIZERS)
async def newissue(ctx: Context) -> None:
    code, title = split_first(ctx.args)
    group = await group_arg(ctx, code, "/newissue CODE TITLE")
    if group is None or not await _may_open(ctx, group):
        return
    if not title:
        ctx.reply(f"The issue needs a title: /newissue {group.code} TITLE")
        return
    if len(title) > MAX_TITLE:
        ctx.reply(f"Please keep the title under {MAX_TITLE} characters.")
        return
    s = ctx.services
    role = await s.groups.role(ctx.member.id, group.id)
    # A plain member's title is their words shown to the group: moderation sees it first,
    # as it sees their posts. Organizers speak for the group, as in announcements.
    if role != "organizer" and not ctx.is_admin and s.post_gate is not None \
            and not await s.post_gate(ctx, group, title):
        return
    view = await discussions(ctx).create(group, ctx.member.id, title, ctx.now)
    ctx.reply(f"Opened issue #{view.id}: {view.title} ({group.code}).\n"
              f"Members comment with /comment {view.id} TEXT and see it with /issue {view.id}. "
              f"You follow it and will hear of new comments; /unfollow {view.id} to stop.")


async def _may_open(ctx: Context, group: Any) -> bool:
    """Organizers may open issues; plain members too where the group allows it."""
    s = ctx.services
    if discussions(ctx).members_may_open(group) and not ctx.is_admin:
        if await s.groups.role(ctx.member.id, group.id) is not None:
            return True
        ctx.reply(f"Join {group.code} first: /join {group.code}")
        return False
    return await require_role(ctx, group, "organizer")


@router.command("issuesopen", usage="/issuesopen CODE on|off",
                summary="let members open issues (or not)", audience="organizer",
                section=ORGANIZERS)
async def issuesopen(ctx: Context) -> None:
    code, word = split_first(ctx.args)
    group = await group_arg(ctx, code, "/issuesopen CODE on|off")
    if group is None or not await require_role(ctx, group, "organizer"):
        return
    allowed = ON_WORDS.get(word.lower())
    if allowed is None:
        ctx.reply(f"Say on or off, e.g. /issuesopen {group.code} on")
        return
    await discussions(ctx).set_members_open(group.id, allowed)
    ctx.reply(f"Members of {group.code} can now open issues with /newissue {group.code} TITLE."
              if allowed else f"Only organizers of {group.code} can open issues now.")


@router.command("closeissue", usage="/closeissue NUMBER OUTCOME",
                summary="close an issue; followers hear the outcome", audience="organizer",
                section=ORGANIZERS)
async def closeissue(ctx: Context) -> None:
    first, outcome = split_first(ctx.args)
    view = await issue_arg(ctx, first, "/closeissue NUMBER OUTCOME")
    if view is None or not await organizer_of(ctx, view.group_id):
        return
    if view.closed:
        ctx.reply(f"Issue #{view.id} is already closed.")
        return
    if not outcome:
        ctx.reply(f"What was decided? /closeissue {view.id} OUTCOME")
        return
    if len(outcome) > MAX_OUTCOME:
        ctx.reply(f"Please keep the outcome under {MAX_OUTCOME} characters.")
        return
    closed = await discussions(ctx).close(view.id, outcome, ctx.now)
    if closed is None:
        ctx.reply(f"Issue #{view.id} is already closed.")
        return
    polls = await ctx.services.extra["polls"].close_all(closed, ctx.now)
    results = [f"Poll #{p.id} ({p.question}): {p.outcome()}" for p in polls]
    notices = await discussions(ctx).tell_outcome(closed, results, ctx.member.id)
    for notice in notices:
        ctx.send(notice)
    closed_polls = f" Its open polls closed too ({len(polls)})." if polls else ""
    ctx.reply(f"Closed issue #{closed.id}: {closed.title}.{closed_polls} "
              f"{_followers(len(notices))} will hear the outcome.")


def _comments(n: int) -> str:
    return f"{n} comment{'s' if n != 1 else ''}"


def _followers(n: int) -> str:
    return f"{n} follower{'s' if n != 1 else ''}"
