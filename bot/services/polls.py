"""Polls on issues: creating, voting (one changeable vote per member), results (hidden until
close when the organizer asks), closing, and a member's votes (data rights).

Like discussions, every method runs inside the caller's transaction and returns the
messages a change causes, for the same transaction to write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.functions import Count

from bot.messages import Button
from bot.services.discussions import UPDATE_KIND, DiscussionService, IssueView
from bot.services.outbox import Outgoing
from bot.storage.models_discussions import Poll, PollOption, Vote

MIN_OPTIONS = 2
MAX_OPTIONS = 10
MAX_QUESTION = 200
MAX_OPTION = 80
# WhatsApp shows at most 3 reply buttons; more become a list, which reads worse than
# numbered text. So buttons only for polls with up to 3 options.
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20  # WhatsApp's reply-button title limit


@dataclass(frozen=True)
class PollView:
    """A poll with its options and the votes each has (whether they may be shown or not)."""

    id: int
    issue: IssueView
    question: str
    hidden: bool
    status: str
    options: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def results_visible(self) -> bool:
        return self.closed or not self.hidden

    def option_list(self) -> str:
        return "\n".join(f"{n}. {text}" for n, text in enumerate(self.options, 1))

    def results(self) -> str:
        """Each option with its votes, or a line saying they are hidden until close."""
        if not self.results_visible:
            return (f"{self.option_list()}\nResults are hidden until the poll closes "
                    f"({_votes(self.total)} so far).")
        lines = []
        for n, (text, count) in enumerate(zip(self.options, self.counts, strict=True), 1):
            share = f" ({round(100 * count / self.total)}%)" if self.total else ""
            lines.append(f"{n}. {text} — {_votes(count)}{share}")
        return "\n".join(lines)

    def outcome(self) -> str:
        """The winner in words: one option, a tie, or no votes at all."""
        if not self.total:
            return "No votes were cast."
        best = max(self.counts)
        top = [text for text, count in zip(self.options, self.counts, strict=True)
               if count == best]
        if len(top) == 1:
            return f"Most votes: {top[0]} ({_votes(best)} of {self.total})."
        return f"A tie between {' and '.join(top)} ({_votes(best)} each)."


@dataclass(frozen=True)
class VoteResult:
    poll: PollView
    chosen: int  # option number, from 1
    previous: int | None  # the option voted for before, if any

    @property
    def changed(self) -> bool:
        return self.previous != self.chosen


def parse_options(text: str) -> tuple[str, list[str]] | str:
    """'QUESTION | A | B' -> (question, options), or a one-line problem."""
    parts = [p.strip() for p in text.split("|")]
    question, options = parts[0], [p for p in parts[1:] if p]
    if not question:
        return "The poll needs a question before the first |."
    if len(question) > MAX_QUESTION:
        return f"Please keep the question under {MAX_QUESTION} characters."
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        return (f"A poll needs {MIN_OPTIONS} to {MAX_OPTIONS} options, separated by |. "
                f"You gave {len(options)}.")
    too_long = next((o for o in options if len(o) > MAX_OPTION), None)
    if too_long is not None:
        return f"Please keep each option under {MAX_OPTION} characters ('{too_long[:20]}…')."
    if len({o.casefold() for o in options}) != len(options):
        return "Two options are the same; each option must differ."
    return question, options


def pick_option(view: PollView, text: str) -> int | None:
    """An option by number ('2', '#2') or by its text (any case); None if neither."""
    wanted = text.strip()
    number = wanted.lstrip("#")
    if number.isdecimal() and len(number) < 4 and 1 <= int(number) <= len(view.options):
        return int(number)
    folded = wanted.casefold()
    for n, option in enumerate(view.options, 1):
        if option.casefold() == folded:
            return n
    return None


class PollService:
    def __init__(self, discussions: DiscussionService,
                 takes_buttons: Callable[[str], bool]) -> None:
        self.discussions = discussions
        # Whether a transport shows buttons. The composition root knows the transports,
        # handlers and services do not: they ask here and fall back to numbered text.
        self.takes_buttons = takes_buttons

    # --- reading -----------------------------------------------------------------------------

    async def get(self, poll_id: int) -> PollView | None:
        poll = await Poll.get_or_none(id=poll_id)
        if poll is None:
            return None
        issue = await self.discussions.get(poll.issue_id)
        assert issue is not None  # a poll goes with its issue (cascade)
        return (await self._views([poll], issue))[0]

    async def of_issue(self, issue: IssueView) -> list[PollView]:
        polls = await Poll.filter(issue_id=issue.id).order_by("id")
        return await self._views(polls, issue)

    async def vote_of(self, poll_id: int, member_id: int) -> int | None:
        """The option number the member voted for, or None."""
        return await (Vote.filter(poll_id=poll_id, member_id=member_id)
                      .first().values_list("option__position", flat=True))

    async def _views(self, polls: Sequence[Poll], issue: IssueView) -> list[PollView]:
        ids = [p.id for p in polls]
        if not ids:
            return []
        options = await (PollOption.filter(poll_id__in=ids).order_by("poll_id", "position")
                         .values_list("poll_id", "id", "text"))
        counts = dict(await (Vote.filter(poll_id__in=ids).annotate(n=Count("id"))
                             .group_by("option_id").values_list("option_id", "n")))
        texts: dict[int, list[str]] = {}
        tallies: dict[int, list[int]] = {}
        for poll_id, option_id, text in options:
            texts.setdefault(poll_id, []).append(text)
            tallies.setdefault(poll_id, []).append(counts.get(option_id, 0))
        return [PollView(p.id, issue, p.question, p.hidden, p.status, tuple(texts[p.id]),
                         tuple(tallies[p.id])) for p in polls]

    def buttons(self, view: PollView, transport: str, skip: int | None = None
                ) -> tuple[Button, ...]:
        """Vote buttons where the transport shows them and the options fit, else none
        (the numbered text says how to vote). `skip` leaves out the member's own choice."""
        if view.closed or len(view.options) > MAX_BUTTONS or not self.takes_buttons(transport):
            return ()
        return tuple(Button(f"/vote {view.id} {n}", _title(text))
                     for n, text in enumerate(view.options, 1) if n != skip)

    # --- changing ----------------------------------------------------------------------------

    async def create(self, issue: IssueView, question: str, options: list[str], hidden: bool,
                     creator_id: int, now: datetime) -> tuple[PollView, list[Outgoing]]:
        """Attach a poll to an open issue and invite the issue's followers to vote."""
        poll = await Poll.create(issue_id=issue.id, question=question[:MAX_QUESTION],
                                 hidden=hidden, created_at=now)
        await PollOption.bulk_create([PollOption(poll_id=poll.id, position=n, text=text)
                                      for n, text in enumerate(options, 1)])
        view = (await self._views([poll], issue))[0]
        how = ("Results stay hidden until it closes." if hidden
               else f"See the results with /results {view.id}.")
        text = (f"🗳 New poll on issue #{issue.id} ({issue.title}): {view.question}\n"
                f"{view.option_list()}\nVote: /vote {view.id} NUMBER. {how}\n"
                + issue.footer(f"the organizers of {issue.group_name}"))
        notices = await self._tell(view, text, creator_id, with_buttons=True)
        return view, notices

    async def vote(self, poll_id: int, member_id: int, option: int, now: datetime
                   ) -> VoteResult | None:
        """Record or change the member's vote. None if the poll closed meanwhile (the poll
        row is locked, so a vote and a close cannot cross)."""
        poll = await self._locked(poll_id)
        if poll.status != "open":
            return None
        chosen = await PollOption.get(poll_id=poll_id, position=option)
        vote = await Vote.get_or_none(poll_id=poll_id, member_id=member_id).select_related(
            "option")
        previous = vote.option.position if vote else None
        if vote is None:
            await Vote.create(poll_id=poll_id, option_id=chosen.id, member_id=member_id,
                              created_at=now, updated_at=now)
        elif previous != option:
            vote.option_id, vote.updated_at = chosen.id, now
            await vote.save(update_fields=["option_id", "updated_at"])
        view = await self.get(poll_id)
        assert view is not None
        return VoteResult(view, option, previous)

    async def close(self, poll_id: int, closer_id: int | None, now: datetime
                    ) -> tuple[PollView, list[Outgoing]] | None:
        """Close the poll and publish its outcome to the issue's followers. None if it was
        closed already."""
        poll = await self._locked(poll_id)
        if poll.status != "open":
            return None
        poll.status, poll.closed_at = "closed", now
        await poll.save(update_fields=["status", "closed_at"])
        view = await self.get(poll_id)
        assert view is not None
        issue = view.issue
        text = (f"🗳 Poll closed on issue #{issue.id} ({issue.title}): {view.question}\n"
                f"{view.results()}\n{view.outcome()}\n"
                + issue.footer(f"the organizers of {issue.group_name}"))
        return view, await self._tell(view, text, closer_id, with_buttons=False)

    async def close_all(self, issue: IssueView, now: datetime) -> list[PollView]:
        """Close the issue's open polls (the issue is closing): their results go out with
        the issue's outcome, not one by one."""
        ids = list(await Poll.filter(issue_id=issue.id, status="open").values_list(
            "id", flat=True))
        if not ids:
            return []
        await Poll.filter(id__in=ids).update(status="closed", closed_at=now)
        return await self._views(await Poll.filter(id__in=ids).order_by("id"), issue)

    async def _locked(self, poll_id: int) -> Poll:
        """The poll row, locked until the transaction ends (PostgreSQL)."""
        return await Poll.filter(id=poll_id).select_for_update().get()

    async def _tell(self, view: PollView, text: str, exclude_member_id: int | None, *,
                    with_buttons: bool) -> list[Outgoing]:
        return await self.discussions.tell_followers(
            view.issue, text, UPDATE_KIND, exclude_member_id=exclude_member_id,
            buttons=(lambda transport: self.buttons(view, transport)) if with_buttons else None,
            meta={"poll_id": view.id})

    # --- data rights -------------------------------------------------------------------------

    async def export_member(self, member_id: int) -> list[dict[str, Any]]:
        rows = await (Vote.filter(member_id=member_id).order_by("id")
                      .values_list("poll_id", "poll__question", "option__text", "updated_at"))
        return [{"poll": f"#{poll_id} {question}", "vote": choice,
                 "at": at.isoformat(timespec="minutes")}
                for poll_id, question, choice, at in rows]

    async def erase_member(self, member_id: int) -> None:
        """Votes go entirely, closed polls included: erasure outranks a past tally."""
        await Vote.filter(member_id=member_id).delete()


def _votes(n: int) -> str:
    return f"{n} vote{'s' if n != 1 else ''}"


def _title(text: str) -> str:
    return text if len(text) <= MAX_BUTTON_TITLE else text[:MAX_BUTTON_TITLE - 1] + "…"
