"""Blocklist matching: one precompiled index for all words and phrases.

Entries and posts go through the same normalization (`textnorm`), then every
entry is keyed by its squeezed token sequence ("idiot", "go die"). A post is
checked by set lookups of its tokens and token n-grams, so cost depends on
the length of the post and the number of distinct phrase lengths, not on the
number of entries: 1,000 entries cost the same as 10.

Matching is on whole tokens only, which is what keeps "class", "passage" and
"assessment" clear of "ass". Evasions are separate, narrower passes:

* repeated letters: a token matches when its squeezed key equals the entry's
  and every run is at least as long ("idiooot" hits "idiot", "as" misses "ass");
* leetspeak: both readings of ambiguous characters ("he11" -> "heii"/"hell");
* spacing: runs of single characters glued back ("i d i o t", "i.d.i.o.t");
* a single character split off a short fragment ("a ss");
* masking: an interior "*" standing for one letter ("f*ck", "a**hole").

Regular expressions are optional and run under a time budget per post. Python's
`re` cannot be interrupted, so the `regex` package (with `timeout=`) is used
when installed; without it, patterns that can backtrack catastrophically are
refused when compiled and the rest run on a capped slice of the text.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.policy import textnorm

log = logging.getLogger(__name__)

try:  # pragma: no cover - which branch runs depends on the environment
    import regex as _regex_mod

    HAS_REGEX_TIMEOUT = True
except ImportError:  # pragma: no cover
    _regex_mod = None
    HAS_REGEX_TIMEOUT = False

# Scripts written without spaces between words: there a token is a whole
# clause, so entries in these scripts are matched as substrings instead.
_SCRIPTIO_CONTINUA_RE = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
# Without `regex`, moderator patterns only see this much of a post (the longest
# message WhatsApp or Telegram carries), because even a merely quadratic
# pattern on a megabyte of text would stall the event loop.
_RE_FALLBACK_SCAN_LIMIT = 4096
# A masked token like "f*ck" must still be mostly letters to be considered.
_MIN_MASK_LETTERS = 2
# Triggers, searched in the space-joined tokens of a post:
# "1" or "|" next to a letter has a second reading ("he11" -> "hell");
_AMBIGUOUS_HINT_RE = re.compile(r"\||[^\W\d_]1|1[^\W\d_]")
# two single characters in a row may be a spaced-out word ("i d i o t");
_TWO_SINGLES_RE = re.compile(r"(?<!\S)\S \S(?!\S)")
# A lone character next to a fragment of 2-3 characters may be a split word
# ("a ss"). Longer fragments are real words ("a hole"): never glued.
_MAX_GLUE_FRAGMENT = 3


@dataclass(frozen=True, slots=True)
class BlockHit:
    """What matched, described without any of the post's text."""

    kind: str  # "word", "phrase", "pattern" or "text" (substring scripts)
    via: str  # how it was found: "plain", "spaced", "glued" or "masked"
    entry: int  # index into the words or patterns list it came from

    @property
    def detail(self) -> str:
        return f"{self.kind}#{self.entry}" + ("" if self.via == "plain" else f":{self.via}")


@dataclass(frozen=True, slots=True)
class _Entry:
    index: int
    runs: tuple[int, ...]  # run lengths of the unsqueezed entry, all tokens concatenated


def entry_tokens(word: str) -> list[str]:
    """Normalized tokens of a blocklist entry (same pipeline as posts)."""
    return [textnorm.deleet(t) for t in textnorm.tokenize(textnorm.fold(word))]


class BlocklistMatcher:
    """All words, phrases and patterns of one group's blocklist, compiled once."""

    def __init__(
        self,
        words: Iterable[str] = (),
        patterns: Iterable[str] = (),
        pattern_timeout: float = 0.05,
    ) -> None:
        # n-gram key ("go die") -> entries sharing it; keyed per n for lookups
        self._by_len: dict[int, dict[str, list[_Entry]]] = {}
        self._substrings: list[tuple[str, int]] = []
        self._masked: dict[int, list[tuple[str, int]]] = {}  # raw length -> (word, index)
        for index, word in enumerate(words):
            self._add_word(index, word)
        self._singles = self._by_len.get(1, {})
        self._lengths = sorted(self._by_len)
        # first token key of each n-gram length, a cheap set pre-check
        self._heads: dict[int, frozenset[str]] = {
            n: frozenset(key.split(" ", 1)[0] for key in index) for n, index in self._by_len.items()
        }
        self._patterns = compile_patterns(patterns)
        self.pattern_timeout = pattern_timeout

    def _add_word(self, index: int, word: str) -> None:
        folded = textnorm.fold(word)
        if _SCRIPTIO_CONTINUA_RE.search(folded):
            self._substrings.append((textnorm.squeeze(folded.strip()), index))
            return
        tokens = entry_tokens(word)
        if not tokens:
            return
        key = " ".join(textnorm.squeeze(t) for t in tokens)
        runs = tuple(r for t in tokens for r in textnorm.run_lengths(t))
        self._by_len.setdefault(len(tokens), {}).setdefault(key, []).append(_Entry(index, runs))
        if len(tokens) == 1:
            self._masked.setdefault(len(tokens[0]), []).append((tokens[0], index))

    # -- matching --------------------------------------------------------

    def find(self, folded: str, tokens: Sequence[str] | None = None) -> BlockHit | None:
        """First hit in already folded text (`textnorm.fold`), or None.

        `tokens` are `textnorm.tokenize(folded)`, if the caller has them already.
        """
        if tokens is None:
            tokens = textnorm.tokenize(folded)
        # Tokens joined by single spaces: each evasion pass first asks one
        # C-speed regex whether its trigger is present at all, and only then
        # loops in Python. Most posts trigger none of them.
        joined = " ".join(tokens)
        return (
            self._find_tokens(tokens, joined)
            or self._find_variants(tokens, joined)
            or self._find_spaced(folded, tokens, joined)
            or self._find_glued(tokens)
            or self._find_masked(tokens, joined)
            or self._find_substring(folded)
            or self._find_pattern(folded)
        )

    def _find_tokens(self, tokens: Sequence[str], joined: str) -> BlockHit | None:
        """Whole-token (and n-gram) lookup, primary leet reading."""
        if not self._by_len or not tokens:
            return None
        words: Sequence[str] = tokens
        # str methods run in C: only tokens that are neither plain words nor
        # plain numbers go through leet decoding.
        if not all(map(str.isalpha, tokens)):
            words = [t if t.isalpha() or t.isdigit() else textnorm.deleet(t) for t in tokens]
            joined = " ".join(words)
        # One regex pass squeezes every token at once; a single space between
        # tokens can never merge two of them.
        keys = textnorm.squeeze(joined).split(" ")
        for n in self._lengths:
            heads = self._heads[n]
            # Set intersection runs in C: the common, all-clear path costs
            # one call per phrase length, whatever the number of entries.
            if not heads.intersection(keys):
                continue
            index = self._by_len[n]
            for i in range(len(keys) - n + 1):
                if keys[i] not in heads:
                    continue
                entries = index.get(" ".join(keys[i : i + n]))
                hit = self._confirm(entries, words[i : i + n]) if entries else None
                if hit is not None:
                    return BlockHit("word" if n == 1 else "phrase", "plain", hit)
        return None

    @staticmethod
    def _confirm(entries: list[_Entry], words: Sequence[str]) -> int | None:
        # Same squeezed key; the post must repeat each letter at least as
        # often as the entry does ("ass" needs two s, "idiooot" has extra o).
        runs = tuple(r for w in words for r in textnorm.run_lengths(w))
        for entry in entries:
            if len(runs) == len(entry.runs) and all(
                have >= need for have, need in zip(runs, entry.runs, strict=True)
            ):
                return entry.index
        return None

    def _lookup_single(self, word: str) -> int | None:
        key = textnorm.squeeze(word)
        entries = self._singles.get(key)
        return self._confirm(entries, [word]) if entries else None

    def _find_variants(self, tokens: Sequence[str], joined: str) -> BlockHit | None:
        # The other reading of "1" and "|" (as "l" rather than "i").
        if not self._singles or not ("1" in joined or "|" in joined):
            return None
        if not _AMBIGUOUS_HINT_RE.search(joined):
            return None
        for tok in tokens:
            variants = textnorm.deleet_variants(tok)
            for word in variants[1:]:
                hit = self._lookup_single(word)
                if hit is not None:
                    return BlockHit("word", "plain", hit)
        return None

    def _find_spaced(self, folded: str, tokens: Sequence[str], joined: str) -> BlockHit | None:
        if not self._singles or 1 not in map(len, tokens) or not _TWO_SINGLES_RE.search(joined):
            return None
        for chars in textnorm.spaced_runs(folded):
            # Also without a lone article or pronoun on either side:
            # "you are a b i t c h", "i d i o t s".
            for lo, hi in ((0, len(chars)), (1, len(chars)), (0, len(chars) - 1)):
                if hi - lo < 2:
                    continue
                for word in textnorm.deleet_variants("".join(chars[lo:hi])):
                    hit = self._lookup_single(word)
                    if hit is not None:
                        return BlockHit("word", "spaced", hit)
        return None

    def _find_glued(self, tokens: Sequence[str]) -> BlockHit | None:
        lengths = list(map(len, tokens))
        if not self._singles or 1 not in lengths:
            return None
        for i in range(len(tokens) - 1):
            short, other = sorted(lengths[i : i + 2])
            if short != 1 or not 2 <= other <= _MAX_GLUE_FRAGMENT:
                continue
            for word in textnorm.deleet_variants(tokens[i] + tokens[i + 1]):
                hit = self._lookup_single(word)
                if hit is not None:
                    return BlockHit("word", "glued", hit)
        return None

    def _find_masked(self, tokens: Sequence[str], joined: str) -> BlockHit | None:
        if not self._masked or "*" not in joined:
            return None
        for tok in tokens:
            if "*" not in tok:
                continue
            word = textnorm.deleet(tok)  # "*" is not a leet character: it survives
            letters = sum(c.isalpha() for c in word)
            stars = word.count("*")
            if letters < _MIN_MASK_LETTERS or stars > letters:
                continue
            shape = re.compile(re.escape(word).replace(r"\*", "."))
            for entry, index in self._masked.get(len(word), ()):
                if shape.fullmatch(entry):
                    return BlockHit("word", "masked", index)
        return None

    def _find_substring(self, folded: str) -> BlockHit | None:
        if not self._substrings:
            return None
        squeezed = textnorm.squeeze(folded)
        for needle, index in self._substrings:
            if needle and needle in squeezed:
                return BlockHit("text", "plain", index)
        return None

    def _find_pattern(self, folded: str) -> BlockHit | None:
        if not self._patterns:
            return None
        deadline = time.monotonic() + self.pattern_timeout
        for index, pattern in self._patterns:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "blocklist patterns ran out of their %.0f ms budget at #%d; "
                    "the rest count as no match",
                    self.pattern_timeout * 1000,
                    index,
                )
                return None
            if _search(pattern, folded, remaining, index):
                return BlockHit("pattern", "plain", index)
        return None


# -- patterns ---------------------------------------------------------------


def _search(pattern: Any, text: str, timeout: float, index: int) -> bool:
    if HAS_REGEX_TIMEOUT:
        try:
            return pattern.search(text, timeout=timeout) is not None
        except TimeoutError:
            log.warning(
                "blocklist pattern #%d timed out after %.0f ms; treated as no match",
                index,
                timeout * 1000,
            )
            return False
    return pattern.search(text[:_RE_FALLBACK_SCAN_LIMIT]) is not None


def pattern_error(pattern: str) -> str | None:
    """Why `pattern` cannot be used, or None if it compiles."""
    try:
        _compile(pattern)
    except Exception as exc:  # re.error, regex.error (unrelated classes), OverflowError
        return str(exc)
    return None


def _compile(pattern: str) -> Any:
    if HAS_REGEX_TIMEOUT:
        assert _regex_mod is not None
        return _regex_mod.compile(pattern, _regex_mod.IGNORECASE | _regex_mod.V0)
    return re.compile(pattern, re.IGNORECASE)


def compile_patterns(patterns: Iterable[str]) -> list[tuple[int, Any]]:
    """Compile moderator patterns; unusable ones are skipped with a warning."""
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            matcher = _compile(pattern)
        except Exception as exc:
            log.warning("blocklist pattern #%d does not compile (%s); skipped", index, exc)
            continue
        if not HAS_REGEX_TIMEOUT and may_backtrack(pattern):
            log.warning(
                "blocklist pattern #%d can backtrack catastrophically and the 'regex' "
                "package (needed for time limits) is not installed; skipped",
                index,
            )
            continue
        compiled.append((index, matcher))
    return compiled


def may_backtrack(pattern: str) -> bool:
    """Heuristic: nested or alternated repetition, several unbounded
    repetitions, or backreferences.

    Only needed without `regex`, where a running match cannot be stopped.
    Errs on the side of True, also when the pattern cannot be analysed
    (it reads CPython's private `re._parser`).
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        unbounded: list[int] = []
        risky = _risky(_parser.parse(pattern), False, unbounded)
    except Exception:
        return True
    return risky or len(unbounded) > 1


def _risky(subpattern: Any, inside_repeat: bool, unbounded: list[int]) -> bool:
    """Walk a parsed pattern; `unbounded` collects one item per open-ended repeat."""
    from re import _constants as c  # type: ignore[attr-defined]

    repeats = (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None))
    children: list[Any] = []
    for op, av in subpattern:
        if op in (c.GROUPREF, c.GROUPREF_EXISTS):
            return True
        if op in repeats:
            is_open = av[1] == c.MAXREPEAT or av[1] > 10
            if is_open and inside_repeat:
                return True
            if is_open:
                unbounded.append(1)
            if _risky(av[2], inside_repeat or is_open, unbounded):
                return True
        elif op == c.BRANCH:
            if inside_repeat:
                return True
            children.extend(av[1])
        elif op == c.SUBPATTERN:
            children.append(av[-1])
        elif op in (c.ASSERT, c.ASSERT_NOT):
            children.append(av[1])
        elif op == getattr(c, "ATOMIC_GROUP", None):
            children.append(av)
    return any(_risky(child, inside_repeat, unbounded) for child in children)
