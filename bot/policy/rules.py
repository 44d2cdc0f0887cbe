"""Moderation rule kinds and the engine that runs one group's rules on a post.

Pure and synchronous: no I/O, no clock reads, no storage. The moderation gate
calls `ModerationEngine.evaluate(text, member_key, now)` and decides what to
do with the violations (see `ladder` for escalation); rules are built from a
group's config by `ruleconfig.build_rules`.

A `Violation` never carries the post's text, only a short machine `detail`
("word#3:spaced", "phone", "1204>1000"), because violations end up in audit
logs and those must not hold what members wrote.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from bot.policy import doxxing, links, textnorm
from bot.policy.blocklist import BlocklistMatcher
from bot.policy.flood import FloodTracker
from bot.policy.ladder import DEFAULT_LADDER

__all__ = [
    "SCAN_LIMIT",
    "BlocklistRule",
    "DoxxingRule",
    "FloodRule",
    "LinkRule",
    "MaxLengthRule",
    "ModerationEngine",
    "Post",
    "Rule",
    "Violation",
]

log = logging.getLogger(__name__)

# Longest text the content rules read. WhatsApp and Telegram cap a message at
# 4,096 characters; anything far longer is held unread rather than letting
# one post cost the event loop seconds.
SCAN_LIMIT = 16_384


@dataclass(frozen=True, slots=True)
class Violation:
    rule_id: str
    description: str  # the rule in plain words, as members see it in /rules
    ladder: tuple[str, ...]
    shadow: bool  # True: log it, act on nothing
    detail: str  # short and machine-readable; never any of the post's text


class Post:
    """One post under evaluation; normalized views are computed once, on demand."""

    # Slots and hand-written caching: this object is made for every post, and
    # functools.cached_property costs more than the lookups it saves here.
    __slots__ = ("_folded", "_tokens", "member_key", "now", "recent", "text")

    def __init__(self, text: str, member_key: str, now: float, recent: int | None = None
                 ) -> None:
        self.text = text
        self.member_key = member_key
        self.now = now
        # The member's posts in the flood window, this one included, as counted by the
        # caller where every worker's posts are (bot/services/moderation.py); None: the
        # flood rule counts in this engine's memory.
        self.recent = recent
        self._folded: str | None = None
        self._tokens: list[str] | None = None

    @property
    def folded(self) -> str:
        if self._folded is None:
            self._folded = textnorm.fold(self.text)
        return self._folded

    @property
    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = textnorm.tokenize(self.folded)
        return self._tokens


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Common part of every rule kind."""

    id: str
    description: str
    ladder: tuple[str, ...] = DEFAULT_LADDER
    shadow: bool = False

    # Whether the rule reads the text (and so is skipped for unreadably long posts).
    reads_content: ClassVar[bool] = True

    def check(self, post: Post) -> Violation | None:
        raise NotImplementedError

    def violation(self, detail: str) -> Violation:
        return Violation(self.id, self.description, self.ladder, self.shadow, detail)


@dataclass(frozen=True, kw_only=True)
class BlocklistRule(Rule):
    id: str = "blocklist"
    description: str = "No insults, slurs or hateful words"
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    pattern_timeout: float = 0.05  # seconds, for all patterns together, per post
    _matcher: BlocklistMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once per rule set, never per post.
        matcher = BlocklistMatcher(self.words, self.patterns, self.pattern_timeout)
        object.__setattr__(self, "_matcher", matcher)

    def check(self, post: Post) -> Violation | None:
        hit = self._matcher.find(post.folded, post.tokens)
        return None if hit is None else self.violation(hit.detail)


@dataclass(frozen=True, kw_only=True)
class LinkRule(Rule):
    id: str = "links"
    description: str = "No links"
    policy: str = "none"  # "none" or "listed" ("all" builds no rule at all)
    allowed_domains: tuple[str, ...] = ()
    _allowed_ascii: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.policy not in ("none", "listed"):
            raise ValueError(f"link policy must be 'none' or 'listed', not {self.policy!r}")
        ascii_forms = (links.ascii_host(d) for d in self.allowed_domains)
        object.__setattr__(self, "_allowed_ascii", tuple(d for d in ascii_forms if d))

    def check(self, post: Post) -> Violation | None:
        hosts = list(links.find_hosts(post.text))
        if not hosts:
            return None
        if self.policy == "none":
            return self.violation(f"links:{len(hosts)}")
        refused = sum(not links.host_allowed(h, self._allowed_ascii) for h in hosts)
        return self.violation(f"unlisted_links:{refused}") if refused else None


@dataclass(frozen=True, kw_only=True)
class FloodRule(Rule):
    id: str = "flood"
    description: str = "Don't flood the group with messages"
    ladder: tuple[str, ...] = ("hold", "mute:24h")
    max_messages: int = 5
    per_seconds: float = 30.0
    # Mutable state inside a frozen rule: the rule's limits never change, its
    # counts do. `ModerationEngine.replace_rules` carries it over to new rules.
    tracker: FloodTracker | None = field(default=None, repr=False, compare=False)

    reads_content: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.tracker is None:
            object.__setattr__(self, "tracker", FloodTracker(self.max_messages, self.per_seconds))

    def check(self, post: Post) -> Violation | None:
        assert self.tracker is not None
        if post.recent is not None:
            over = post.recent > self.max_messages
        else:
            over = self.tracker.hit(post.member_key, post.now)
        if over:
            return self.violation(f"over:{self.max_messages}/{self.per_seconds:g}s")
        return None


@dataclass(frozen=True, kw_only=True)
class MaxLengthRule(Rule):
    id: str = "max_length"
    description: str = "Keep messages short"
    ladder: tuple[str, ...] = ("hold",)
    max_chars: int = 1000

    reads_content: ClassVar[bool] = False

    def check(self, post: Post) -> Violation | None:
        length = len(post.text)
        return self.violation(f"{length}>{self.max_chars}") if length > self.max_chars else None


@dataclass(frozen=True, kw_only=True)
class DoxxingRule(Rule):
    id: str = "doxxing"
    description: str = "No phone numbers or home addresses: protect people's privacy"
    ladder: tuple[str, ...] = ("hold", "warn", "remove")
    region: str | None = None  # ISO region for numbers written without "+"
    phones: bool = True
    addresses: bool = True

    def check(self, post: Post) -> Violation | None:
        if self.phones and doxxing.contains_phone(post.folded, self.region):
            return self.violation("phone")
        if self.addresses and doxxing.contains_address(post.folded, post.tokens):
            return self.violation("address")
        return None


class ModerationEngine:
    """The rules of one group, evaluated together on each post."""

    def __init__(self, rules: Iterable[Rule], scan_limit: int = SCAN_LIMIT) -> None:
        self._rules: tuple[Rule, ...] = tuple(rules)
        self.scan_limit = scan_limit

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def replace_rules(self, rules: Iterable[Rule]) -> None:
        """Swap in new rules (after /setrule), keeping flood counts if limits match."""
        old = {r.id: r for r in self._rules if isinstance(r, FloodRule)}
        fresh = []
        for rule in rules:
            prev = old.get(rule.id)
            if (
                isinstance(rule, FloodRule)
                and isinstance(prev, FloodRule)
                and (prev.max_messages, prev.per_seconds) == (rule.max_messages, rule.per_seconds)
            ):
                rule = dataclasses.replace(rule, tracker=prev.tracker)
            fresh.append(rule)
        self._rules = tuple(fresh)

    @property
    def flood(self) -> FloodRule | None:
        """The flood rule, whose window a caller counting posts itself needs."""
        return next((r for r in self._rules if isinstance(r, FloodRule)), None)

    def evaluate(self, text: str, member_key: str, now: float, recent: int | None = None
                 ) -> list[Violation]:
        """Every rule this post breaks (shadow rules included, flagged as such).
        `recent`: the member's posts in the flood window, this one included, if the
        caller counts them (see Post)."""
        post = Post(text, member_key, now, recent)
        too_long = len(text) > self.scan_limit
        found: list[Violation] = []
        for rule in self._rules:
            if too_long and rule.reads_content:
                continue
            violation = self._check(rule, post)
            if violation is not None:
                found.append(violation)
        if too_long and not any(v.rule_id == MaxLengthRule.id for v in found):
            found.append(self._unread(len(text)))
        return found

    @staticmethod
    def _check(rule: Rule, post: Post) -> Violation | None:
        try:
            return rule.check(post)
        except Exception as exc:
            # A bug in one rule must neither crash the gate nor wave the post
            # through: hold it for a person, and log without the text.
            log.exception("moderation rule %s failed on a post; holding it", rule.id)
            detail = f"error:{type(exc).__name__}"
            return Violation(rule.id, rule.description, ("hold",), rule.shadow, detail)

    def _unread(self, length: int) -> Violation:
        return Violation(
            MaxLengthRule.id,
            "Messages must be short enough to be checked",
            ("hold",),
            False,
            f"unscanned:{length}>{self.scan_limit}",
        )
